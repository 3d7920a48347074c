"""C and C++ build systems, as `osless init` proposes them: CMake, Meson, autotools, make, loose files.

languages.c and languages.cxx share this: a tree is C++ when it holds more C++ sources than C ones,
and each language proposes only for its own trees. Every proposal builds statically with the gcc
toolchain's compilers for the platform ({CC}, {CXX}, and {AR}, {RANLIB}: the platform's binutils),
offline; a library the build system asks for (pkg-config, find_library, AC_CHECK_LIB) becomes a
`LibraryNeed`, which a toolchain extending gcc may install (its `libraries`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.languages.proposals import (
    RANK_BUILD_SYSTEM,
    RANK_MAKEFILE,
    RANK_SOURCES,
    BuildProposal,
    LibraryNeed,
    SmokeProposal,
    first_match,
    read_text,
    read_texts,
    relative,
    smoke_proposal,
    texts,
    walk,
)

TOOLCHAIN = "gcc"
C_SOURCES = (".c",)
CXX_SOURCES = (".cc", ".cpp", ".cxx", ".c++")
HEADERS = (".h", ".hh", ".hpp", ".hxx")
MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
STATIC_LINK = "-static -s"  # every link static, the binary stripped (smaller, still verifiable)
# Libraries every libc provides (static glibc and musl): never a need.
_LIBC_PARTS = frozenset({"c", "m", "dl", "pthread", "rt", "util", "crypt", "resolv", "threads", "stdc++"})
_SERVER = re.compile(r"\blisten\s*\(\s*\w+\s*,")
_PASSWD = re.compile(r"\b(?:getpw(?:nam|uid|ent)|getgr(?:nam|gid|ent)|getlogin)(?:_r)?\s*\(")
_CA_CERTIFICATES = re.compile(r"\bSSL_CTX_set_default_verify_paths\b|/etc/ssl/certs")


def tree_language(source: Path) -> str | None:
    """ "c++" when the tree holds more C++ sources than C ones, "c" when it holds C sources, else None."""
    cxx = len(walk(source, CXX_SOURCES))
    c = len(walk(source, C_SOURCES))
    if cxx == 0 and c == 0:
        return None
    return "c++" if cxx > c else "c"


def propose(source: Path, name: str, language: str) -> BuildProposal | None:
    """The build of a C (`language` "c") or C++ ("c++") tree by its build system, in the order a tree
    that has several is best built by: CMake, Meson, autotools, make; else its loose source files."""
    if tree_language(source) != language:
        return None
    sources = texts(walk(source, CXX_SOURCES + C_SOURCES + HEADERS))
    program = _Program(
        smoke=smoke_proposal(sources, serves="calls listen()" if first_match(_SERVER, sources) else None),
        extras=_extras(sources),
    )
    for build_system in _BUILD_SYSTEMS:
        proposal = build_system(source, name, language, program)
        if proposal is not None:
            return proposal
    return _loose_files(source, name, language, program)


@dataclass(frozen=True, kw_only=True)
class _Program:
    """What the sources say about the program, whichever build system builds it."""

    smoke: SmokeProposal
    extras: tuple[tuple[str, str], ...]


def _proposal(
    language: str,
    program: _Program,
    *,
    found: str,
    rank: int,
    command: tuple[str, ...] = (),
    steps: tuple[tuple[str, ...], ...] = (),
    artifact: str | None = None,
    needs: tuple[LibraryNeed, ...] = (),
    env: dict[str, str] | None = None,
    comments: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
) -> BuildProposal:
    """A proposal of the gcc toolchain, with what the sources say about the program."""
    return BuildProposal(
        language=language,
        found=found,
        rank=rank,
        toolchain=TOOLCHAIN,
        needs=needs,
        command=command,
        steps=steps,
        artifact=artifact,
        env=env or {},
        extras=program.extras,
        comments=comments,
        notes=notes,
        smoke=program.smoke,
    )


def _extras(sources: list[str]) -> tuple[tuple[str, str], ...]:
    """The image extras what the sources call reads at run time (the verifier's needs, foreseen)."""
    extras = []
    user = first_match(_PASSWD, sources)
    if user:
        extras.append(("passwd", f"calls {user.rstrip('( ')}(): user lookups read /etc/passwd"))
    if first_match(_CA_CERTIFICATES, sources):
        extras.append(("ca-certificates", "verifies TLS peers against the system's CA bundle"))
    return tuple(extras)


# ---------------------------------------------------------------------------------------------------
# CMake

_CMAKE_EXECUTABLE = re.compile(
    r"^\s*add_executable\s*\(\s*([A-Za-z0-9_.+-]+)(?![^)]*\b(?:IMPORTED|ALIAS)\b)", re.M | re.I
)
_CMAKE_PROJECT = re.compile(r"^\s*project\s*\(\s*([A-Za-z0-9_.+-]+)", re.M | re.I)
_CMAKE_PKG = re.compile(r"\bpkg_(?:check|search)_modules?\s*\(\s*\w+([^)]*)\)", re.I)
_CMAKE_FIND_LIBRARY = re.compile(r"\bfind_library\s*\(\s*\w+\s+(?:NAMES\s+)?([^)]*)\)", re.I)
_CMAKE_CONDITION = re.compile(r"\b(?:if|option)\s*\(\s*(\w*STATIC\w*)\b", re.I)
_CMAKE_SET = re.compile(r"\bset\s*\(\s*(\w+)", re.I)
_CMAKE_KEYWORDS = frozenset(
    {
        "REQUIRED",
        "QUIET",
        "NO_CMAKE_PATH",
        "NO_CMAKE_ENVIRONMENT_PATH",
        "IMPORTED_TARGET",
        "GLOBAL",
        "HINTS",
        "PATHS",
        "NAMES",
        "PATH_SUFFIXES",
        "NO_DEFAULT_PATH",
        "DOC",
    }
)


def _cmake(source: Path, name: str, language: str, program: _Program) -> BuildProposal | None:
    if not (source / "CMakeLists.txt").is_file():
        return None
    files = walk(source, ("CMakeLists.txt",), depth=3)
    lists = {relative(path.parent, source): text for path in files if (text := read_text(path)) is not None}
    root = lists.get(".", "")
    executables = [
        (directory, match) for directory, text in lists.items() for match in _CMAKE_EXECUTABLE.findall(text)
    ]
    project = _CMAKE_PROJECT.search(root)
    directory, executable = _pick(executables, (name, project.group(1) if project else name))
    static_options = sorted(
        {option for text in lists.values() for option in _CMAKE_CONDITION.findall(text)}
        - {variable for text in lists.values() for variable in _CMAKE_SET.findall(text)}
        - {"BUILD_SHARED_LIBS"}
    )
    needs = _needs(
        [
            (module, "pkg-config")
            for text in lists.values()
            for found in _CMAKE_PKG.findall(text)
            for module in _words(found)
        ]
        + [
            (library, "find_library")
            for text in lists.values()
            for found in _CMAKE_FIND_LIBRARY.findall(text)
            for library in _words(found)[:1]
        ],
        "CMakeLists.txt",
    )
    configure = (
        "cmake",
        "-S",
        ".",
        "-B",
        "build",
        "-DCMAKE_BUILD_TYPE=MinSizeRel",
        "-DBUILD_TESTING=OFF",
        f"-DCMAKE_EXE_LINKER_FLAGS={STATIC_LINK}",
        *(f"-D{option}=ON" for option in static_options),
    )
    comments = [
        "CMake configures with the platform's compilers (the toolchain's CC and CXX), links every",
        "executable statically and stripped; BUILD_TESTING=OFF: tests would download their frameworks.",
    ]
    if static_options:
        comments.append(f"{', '.join(static_options)}: the project's own switch(es) for a static build.")
    notes = () if executable else ("no add_executable() found: set `artifact` to the program cmake builds",)
    return _proposal(
        language,
        program,
        found="CMakeLists.txt (cmake)",
        rank=RANK_BUILD_SYSTEM,
        needs=needs,
        steps=(configure, ("cmake", "--build", "build", "--parallel", "{JOBS}")),
        artifact=_joined("build", directory, executable or name),
        comments=tuple(comments),
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------------
# Meson

_MESON_EXECUTABLE = re.compile(r"\bexecutable\s*\(\s*['\"]([^'\"]+)['\"]")
_MESON_DEPENDENCY = re.compile(r"\bdependency\s*\(\s*['\"]([^'\"]+)['\"]")
_MESON_BUILTIN = frozenset({"threads", "dl", "openmp", "intl", "iconv"})
_MESON_CROSS_FILE = "meson-cross.ini"
# Meson's own writer of cross files: compilers and tools from the environment, the host machine from
# the platform table (on every platform, even the builder's own: one recipe, the same configuration).
_MESON_CROSS = (
    "meson",
    "env2mfile",
    "--cross",
    "--system=linux",
    "--subsystem=linux",
    "--kernel=linux",
    "--cpu-family={MESON_CPU_FAMILY}",
    "--cpu={MESON_CPU}",
    "--endian={ENDIAN}",
    "-o",
    _MESON_CROSS_FILE,
)


def _meson(source: Path, name: str, language: str, program: _Program) -> BuildProposal | None:
    if not (source / "meson.build").is_file():
        return None
    files = walk(source, ("meson.build",), depth=3)
    builds = {relative(path.parent, source): text for path in files if (text := read_text(path)) is not None}
    executables = [
        (directory, match) for directory, text in builds.items() for match in _MESON_EXECUTABLE.findall(text)
    ]
    directory, executable = _pick(executables, (name,))
    modules = [
        (module, "dependency()") for text in builds.values() for module in _MESON_DEPENDENCY.findall(text)
    ]
    setup = (
        "meson",
        "setup",
        "build",
        f"--cross-file={_MESON_CROSS_FILE}",
        "--buildtype=minsize",
        "--default-library=static",
        "--prefer-static",
        "--wrap-mode=nodownload",
    )
    return _proposal(
        language,
        program,
        found="meson.build (meson)",
        rank=RANK_BUILD_SYSTEM,
        needs=_needs([(m, w) for m, w in modules if m not in _MESON_BUILTIN], "meson.build"),
        steps=(_MESON_CROSS, setup, ("meson", "compile", "-C", "build", "-j", "{JOBS}")),
        artifact=_joined("build", directory, executable or name),
        env={"LDFLAGS": STATIC_LINK},
        comments=(
            "A cross file for the platform, from the toolchain's CC, CXX, AR, STRIP, PKG_CONFIG and from",
            "LDFLAGS (static, stripped): host_machine is the platform, not the builder; --prefer-static",
            "takes static libraries, --wrap-mode=nodownload keeps it offline.",
        ),
        notes=() if executable else ("no executable() found: set `artifact` to the program meson builds",),
    )


# ---------------------------------------------------------------------------------------------------
# autotools

_AC_PKG = re.compile(r"\bPKG_CHECK_MODULES\s*\(\s*\[?\w+\]?\s*,\s*\[?([^\],)]*)")
_AC_LIB = re.compile(r"\bAC_CHECK_LIB\s*\(\s*\[?([\w+.-]+)")
_AC_SEARCH = re.compile(r"\bAC_SEARCH_LIBS\s*\(\s*\[?\w+\]?\s*,\s*\[?([^\],)]*)")
_LIBTOOL = re.compile(r"\b(?:LT_INIT|AC_PROG_LIBTOOL)\b")


def _autotools(source: Path, name: str, language: str, program: _Program) -> BuildProposal | None:
    script = source / "configure"
    configure_ac = next(
        (source / n for n in ("configure.ac", "configure.in") if (source / n).is_file()), None
    )
    if not script.is_file() and configure_ac is None:
        return None
    definition = (read_text(configure_ac) if configure_ac is not None else None) or ""
    where = configure_ac.name if configure_ac is not None else "configure"
    libraries = [(m, "pkg-config") for found in _AC_PKG.findall(definition) for m in _words(found)]
    libraries += [(m, "AC_CHECK_LIB") for m in _AC_LIB.findall(definition)]
    libraries += [(m, "AC_SEARCH_LIBS") for found in _AC_SEARCH.findall(definition) for m in _words(found)]
    libtool = bool(_LIBTOOL.search(definition))
    steps: list[tuple[str, ...]] = [] if script.is_file() else [("autoreconf", "--install", "--force")]
    steps.append(("./configure", "--host={GNU_TRIPLE}", "--disable-shared", f"LDFLAGS={STATIC_LINK}"))
    # libtool reads -static as "its own libraries statically"; -all-static links the program fully so.
    steps.append(("make", "-j{JOBS}", *(["LDFLAGS=-all-static -s"] if libtool else [])))
    directory, program_name = _pick(_automake_programs(source), (name,))
    if program_name is None:
        directory, program_name = _make_program(source, name)
    return _proposal(
        language,
        program,
        found=f"{'configure' if script.is_file() else where} (autotools)",
        rank=RANK_BUILD_SYSTEM,
        needs=_needs(libraries, where),
        steps=tuple(steps),
        artifact=_joined(".", directory, program_name or name),
        comments=(
            "configure for the platform (--host: its cross compilers, a native build on its own machine),",
            "linked statically and stripped; make builds in the workspace.",
        ),
        notes=_unfound_program(name, program_name),
    )


_BIN_PROGRAMS = re.compile(r"^\s*\w*_PROGRAMS\s*\+?=\s*([^\n#]+)", re.M)


def _automake_programs(source: Path) -> list[tuple[str, str]]:
    return [
        (relative(path.parent, source), program)
        for path in walk(source, ("Makefile.am",), depth=3)
        for found in _BIN_PROGRAMS.findall(read_text(path) or "")
        for program in found.split()
        if not program.startswith("$")
    ]


# ---------------------------------------------------------------------------------------------------
# make

_TOOL_VARIABLES = ("CC", "CXX", "AR", "RANLIB")


def _makefile(source: Path, name: str, language: str, program: _Program) -> BuildProposal | None:
    makefile = next((source / n for n in MAKEFILES if (source / n).is_file()), None)
    if makefile is None:
        return None
    text = "\n".join(texts(_makefiles(source)))
    arguments = []
    for variable in _TOOL_VARIABLES:
        if variable == "CXX" and language != "c++":
            continue
        flags = _assigned_flags(text, variable)
        link = f" {STATIC_LINK}" if variable in ("CC", "CXX") else ""
        arguments.append(f"{variable}={{{variable}}}{flags}{link}")
    directory, program_name = _make_program(source, name)
    return _proposal(
        language,
        program,
        found=f"{makefile.name} (make)",
        rank=RANK_MAKEFILE,
        steps=(("make", "-j{JOBS}", *arguments),),
        artifact=_joined(".", directory, program_name or name),
        comments=(
            "make with the platform's compilers and binutils (flags the Makefile gives them kept); -static",
            "and -s ride on CC, so that every link is static and stripped whatever the Makefile does",
            "with LDFLAGS.",
        ),
        notes=_unfound_program(name, program_name),
    )


def _assigned_flags(text: str, variable: str) -> str:
    """The flags a Makefile gives with a tool it names (`CC= gcc -std=gnu99`: " -std=gnu99"), kept
    when the tool is replaced by the platform's."""
    found = re.search(rf"^\s*{variable}\s*[:?]?=[ \t]*(\S+)((?:[ \t]+[^\s$#][^\n#]*)?)", text, re.M)
    return " " + found.group(2).strip() if found and found.group(2).strip() else ""


_PROGRAM_VARIABLES = re.compile(
    r"^\s*(?:\w+_T|PROG|PROGRAM|TARGET|BIN|EXE)\s*[:?]?=\s*([\w.+-]+)\s*$", re.M | re.I
)


def _make_program(source: Path, name: str) -> tuple[str, str | None]:
    """Where make leaves the program `name` (the directory of the Makefile that builds it, and its file
    name): a rule `name:`, `-o name`, or a variable set to `name` alone; else a program variable's
    value (`PROG = x`, `LUA_T = lua`); ("", None) when the Makefiles say neither."""
    named = re.compile(
        rf"^\s*{re.escape(name)}\s*:(?!=)|-o\s*{re.escape(name)}\b|^\s*\w+\s*[:?]?=\s*{re.escape(name)}\s*$",
        re.M,
    )
    makefiles = [(relative(path.parent, source), read_text(path) or "") for path in _makefiles(source)]
    for directory, text in makefiles:
        if named.search(text):
            return directory, name
    for directory, text in makefiles:
        found = _PROGRAM_VARIABLES.search(text)
        if found:
            return directory, found.group(1)
    return "", None


def _makefiles(source: Path) -> list[Path]:
    """The tree's Makefiles (two levels down at most), the top directory's first."""
    makefiles = [path for path in walk(source, MAKEFILES, depth=2) if path.name in MAKEFILES]
    return sorted(makefiles, key=lambda path: len(path.relative_to(source).parts))


def _unfound_program(name: str, program: str | None) -> tuple[str, ...]:
    """The note of a proposal whose Makefiles name no program: its artifact is a guess."""
    return () if program else (f"no program named {name!r} found in the Makefiles: check `artifact`",)


# ---------------------------------------------------------------------------------------------------
# loose source files

_MAIN = re.compile(r"^\s*(?:int|void)\s+main\s*\(", re.M)
_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([\w/.+-]+)[>"]', re.M)


def _loose_files(source: Path, name: str, language: str, program: _Program) -> BuildProposal | None:
    """The top directory's source files (else src/'s) compiled and linked in one command; of several
    files defining main(), the one named like the service or main.c only."""
    cxx = language == "c++"
    suffixes = CXX_SOURCES + C_SOURCES if cxx else C_SOURCES
    directory = next((d for d in ("", "src") if walk(source / d, suffixes, depth=0)), None)
    if directory is None:
        return None
    files = walk(source / directory, suffixes, depth=0)
    contents = read_texts(files)
    mains = [path for path, text in contents.items() if _MAIN.search(text)]
    notes = []
    if len(mains) > 1:
        keep = next((p for p in mains if p.stem in (name, "main")), mains[0])
        notes.append(
            f"several files define main(): {', '.join(relative(p, source) for p in mains)}; "
            f"the recipe compiles {relative(keep, source)} with the files without main()"
        )
        files = [path for path in files if path == keep or path not in mains]
    includes = {include for text in contents.values() for include in _INCLUDE.findall(text)}
    flags = ["-pthread"] if cxx or includes & {"pthread.h", "threads.h"} else []
    libraries = ["-lm"] if includes & {"math.h", "complex.h", "tgmath.h"} else []
    if (source / "include").is_dir():
        flags.append("-Iinclude")
    compiler = ("{CXX}", "-std=gnu++20") if cxx else ("{CC}",)
    names = [relative(path, source) for path in files]
    return _proposal(
        language,
        program,
        found=f"{len(names)} {'C++' if cxx else 'C'} source file{'s' if len(names) != 1 else ''} "
        f"in {directory or 'the top directory'} (no build system)",
        rank=RANK_SOURCES,
        command=(*compiler, "-static", "-Os", "-s", "-Wall", *flags, "-o", "{output}", *names, *libraries),
        comments=(f"The platform's {'C++' if cxx else 'C'} compiler, linked statically and stripped.",),
        notes=tuple(notes),
    )


_BUILD_SYSTEMS: tuple[Callable[[Path, str, str, _Program], BuildProposal | None], ...] = (
    _cmake,
    _meson,
    _autotools,
    _makefile,
)


# ---------------------------------------------------------------------------------------------------
# shared


def _words(text: str) -> list[str]:
    """Names in a CMake or m4 argument list, without keywords, variables and version constraints."""
    words = re.split(r"[\s,\[\]]+", re.sub(r"[<>=!]=?\s*[\w.]+", " ", text))
    return [
        w.strip("\"'")
        for w in words
        if w and w.upper() not in _CMAKE_KEYWORDS and not w.startswith(("$", "-", "/"))
    ]


def _needs(found: list[tuple[str, str]], where: str) -> tuple[LibraryNeed, ...]:
    """A need per library (`libsodium` by pkg-config and `sodium` by find_library are one), but the
    libc's own parts."""
    needs: dict[str, LibraryNeed] = {}
    for library, how in found:
        base = library.removeprefix("lib").lower()
        if not re.fullmatch(r"[a-z0-9][a-z0-9+._-]*", base) or base in _LIBC_PARTS or base in needs:
            continue
        needs[base] = LibraryNeed(
            what=f"{library} ({how}, {where})",
            package=rf"(?:lib)?{re.escape(base)}[0-9a-z.+-]*-dev",
            example=f"lib{base}-dev",
        )
    return tuple(needs.values())


def _pick(candidates: list[tuple[str, str]], preferred: tuple[str, ...]) -> tuple[str, str | None]:
    """The (directory, name) of the candidate named like one of `preferred`, else the first; ("", None)
    when there is none."""
    for wanted in preferred:
        for directory, candidate in candidates:
            if candidate == wanted:
                return directory, candidate
    return candidates[0] if candidates else ("", None)


def _joined(*parts: str | None) -> str:
    """A workspace path of parts, without the empty ones and `.`."""
    return "/".join(part for part in parts if part and part != ".")

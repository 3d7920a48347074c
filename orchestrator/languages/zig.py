"""Zig: `zig build-exe` / `zig build` programs, static for every platform (`-target <arch>-linux-musl`).

The compiler is the `zig` binary of the pinned `ziglang` wheel (recipes/toolchains/zig.toml): it
carries its standard library and the sources of musl, libc++ and compiler_rt, compiled on first use
into its global cache, which osless keeps in the toolchain's cache volume (ZIG_GLOBAL_CACHE_DIR); the
per-target local cache (ZIG_LOCAL_CACHE_DIR) keeps zig from writing into the read-only source.

A Zig program links no libc unless it asks for one (`-lc`): its standard library calls the kernel
directly. With `-lc` on a -linux-musl target, zig links its own musl statically (zig has no other static
libc). Recognised by these marks, measured on zig 0.17.1 binaries (hello-zig for all seven platforms,
ReleaseSmall, stripped with `-fstrip` and not; small programs in every optimisation mode, stripped and
not, with and without `-lc`, for arm64):

- with a symbol table, the functions of std's start code (lib/std/start.zig): `start._start` and
  `start.posixCallMainAndExit` without libc, `start.main` (the C `main` musl's start calls) with it;
- stripped, strings of the standard library that every program using it holds: the name of the
  environment variable std's progress reporting reads, ZIG_PROGRESS (the `std.Io` implementation
  behind `std.process.Init` links process spawning), and the message of std's panic handler,
  "aborting due to recursive panic".

A stripped program that uses nothing of std (an empty `main`) holds neither and is verified as C, which
its start code then is. Binaries from `zig cc` / `zig c++` are C and C++ (languages.c, languages.cxx):
they hold none of these marks; their libc is musl by the toolchain (its ziglang wheel: c.MUSL_BUNDLES).

Zig itself records no version in a binary: the SBOM takes it from the toolchain image's ziglang wheel
(the tool, and the version of the standard library component), and names musl, when linked, as the
wheel it came from. Whether musl is linked: its `__libc_start_main` in the symbol table, else the C
compiler's `.comment` ("clang version ...") that musl's objects, compiled by zig's clang, add to the
linker's ("Linker: LLD ...", all that a pure Zig program has).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cyclonedx.model.component import Component, ComponentType

from orchestrator.elf.facts import ElfFacts
from orchestrator.elf.load import LoadedElf
from orchestrator.elf.scan import Contents, Note
from orchestrator.languages.c import CLanguage, libc_components
from orchestrator.languages.proposals import (
    RANK_BUILD_SYSTEM,
    RANK_SOURCES,
    BuildProposal,
    first_match,
    read_text,
    relative,
    smoke_proposal,
    texts,
    walk,
)
from orchestrator.outputs.components import DebianPackage, properties, wheel_key
from orchestrator.platforms import Platform
from orchestrator.verify.findings import Finding, info

if TYPE_CHECKING:
    from orchestrator.verify.context import ElfContext

START_FUNCTIONS = frozenset({"start._start", "start.posixCallMainAndExit", "start.main"})
"""std's start code (lib/std/start.zig), as Zig names its functions in the symbol table."""
STD_STRINGS = (b"\0ZIG_PROGRESS", b"\0aborting due to recursive panic")
"""Whole strings (NUL before) of the standard library, in the loaded bytes of stripped binaries."""
MUSL_START = "__libc_start_main"  # musl's, called by its crt1.o: linked only with libc
COMMENT_SECTION = ".comment"
C_COMPILER_COMMENT = b"clang version"  # what zig's clang writes for C objects (musl's, with -lc)
ZIGLANG_WHEEL = wheel_key("ziglang")  # the toolchain image's zig (recipes/toolchains/zig.toml)


class ZigLanguage(CLanguage):
    name = "zig"

    def build_env(self, cache_dir: str, target_cache: str) -> dict[str, str]:
        """zig's global cache (compiled musl, libc++, compiler_rt: 20-70 s per target and optimisation
        mode) shared by the toolchain's builds; its local cache (the program's objects) per target, out
        of the read-only source directory."""
        return {
            "ZIG_GLOBAL_CACHE_DIR": f"{cache_dir}/zig",
            "ZIG_LOCAL_CACHE_DIR": f"{target_cache}/zig-local",
        }

    def recognises(
        self, binary: LoadedElf, facts: ElfFacts, notes: tuple[Note, ...], *, contents: Contents | None
    ) -> bool:
        """std's start functions, or std's strings (see the module's docstring)."""
        if contents is None:
            return False
        if contents.functions is not None and not START_FUNCTIONS.isdisjoint(contents.functions):
            return True
        return any(contents.contains(mark) for mark in STD_STRINGS)

    def cross_compiler(self, platform: Platform) -> str:
        return f"zig -target {platform.zig_target}"

    def info_findings(self, context: ElfContext) -> tuple[Finding, ...]:
        libc = _linked_libc(context.contents)
        how = {
            "musl": "with musl (-lc)",
            "none": "without libc: it calls the kernel directly",
        }.get(libc, "(libc not known: no symbol table, no .comment)")
        return (info("zig.std", f"Zig: the Zig standard library linked statically, {how}"),)

    def libc(self, context: ElfContext, packages: Collection[str]) -> str:
        if context.contents is not None and context.contents.glibc:
            return "glibc"
        return _linked_libc(context.contents)

    def sbom_components(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[Component]:
        """The standard library at the toolchain's Zig version, and the libc when linked."""
        wheel = packages.get(ZIGLANG_WHEEL)
        version = wheel.version if wheel is not None else None
        std = Component(
            type=ComponentType.LIBRARY,
            name="std",
            version=version,
            bom_ref=f"zig:std:{version or 'unknown'}",
            properties=properties({"zig:module": "std"}),
        )
        return [std, *libc_components(libc, platform, packages)]

    def propose_build(self, source: Path, project: Path, name: str) -> BuildProposal | None:
        return propose_zig_build(source, name)

    def tool_packages(
        self, context: ElfContext, libc: str, platform: Platform, packages: Mapping[str, DebianPackage]
    ) -> list[DebianPackage]:
        """The ziglang wheel (zig, its clang and linker)."""
        wheel = packages.get(ZIGLANG_WHEEL)
        return [wheel] if wheel is not None else []


ZIG = ZigLanguage()


def _linked_libc(contents: Contents | None) -> str:
    """The libc linked in: "musl", "none" when no libc, "unknown", when neither the symbols nor the
    .comment section say (see the module's docstring)."""
    if contents is None:
        return "unknown"
    if contents.functions is not None:
        return "musl" if MUSL_START in contents.functions else "none"
    comment = contents.section(COMMENT_SECTION)
    if comment is None:
        return "unknown"
    return "musl" if C_COMPILER_COMMENT in comment else "none"


# ---------------------------------------------------------------------------------------------------
# osless init: how a Zig tree is built

_EXECUTABLE_NAME = re.compile(r"addExecutable\s*\(\s*\.\{[^}]*?\.name\s*=\s*\"([^\"]+)\"", re.DOTALL)
_EXECUTABLE = re.compile(r"addExecutable\s*\((.*?)\}\s*\)\s*;", re.DOTALL)  # up to its first `});`
_ZIG_ROOT = re.compile(r"root_source_file\s*=\s*b\.path\s*\(\s*\"[^\"]+\.zig\"")
_MAIN = re.compile(r"\bpub\s+fn\s+main\s*\(")
_USES_LIBC = re.compile(r"@cImport|\bstd\.c\.|\bc_allocator\b|\blinkLibC\b")
_SERVER = re.compile(r"\.listen\s*\(")
_PACKAGE_DEPENDENCIES = re.compile(r"\.dependencies\s*=\s*\.\{\s*\.")


def propose_zig_build(source: Path, name: str) -> BuildProposal | None:
    """`zig build` for the platform's {ZIG_TARGET} when there is a build.zig (ranked below a C build
    system when its executable has no Zig root file: a C project's alternative build), else
    `zig build-exe` of the file holding `pub fn main` (main.zig, src/main.zig first)."""
    sources = texts(walk(source, (".zig",)))
    serves = "calls listen()" if first_match(_SERVER, sources) else None
    smoke = smoke_proposal(sources, serves=serves)
    build = read_text(source / "build.zig")
    if build is not None:
        executable = _EXECUTABLE_NAME.search(build)
        program = executable.group(1) if executable else name
        notes = [] if executable else [f"no addExecutable() found in build.zig: check `artifact` ({name})"]
        if _PACKAGE_DEPENDENCIES.search(read_text(source / "build.zig.zon") or ""):
            notes.append(
                "build.zig.zon names dependencies, which zig fetches over the network: builds are offline, "
                "so put them in the source (a path dependency) first"
            )
        return BuildProposal(
            language=ZIG.name,
            found="build.zig (zig build)",
            rank=RANK_BUILD_SYSTEM if _zig_root(build) else RANK_SOURCES,
            toolchain="zig",
            steps=(("zig", "build", "-Dtarget={ZIG_TARGET}", "-Doptimize=ReleaseSmall"),),
            artifact=f"zig-out/bin/{program}",
            comments=("zig build for the platform's static musl target, optimised for size.",),
            notes=tuple(notes),
            smoke=smoke,
        )
    candidates = [source / "main.zig", source / "src" / "main.zig", *walk(source, (".zig",), depth=1)]
    main = next((path for path in candidates if _MAIN.search(read_text(path) or "")), None)
    if main is None:
        return None
    libc = ["-lc"] if first_match(_USES_LIBC, sources) else []
    return BuildProposal(
        language=ZIG.name,
        found=f"{relative(main, source)} (zig build-exe)",
        rank=RANK_SOURCES,
        toolchain="zig",
        command=(
            "zig",
            "build-exe",
            "-target",
            "{ZIG_TARGET}",
            "-O",
            "ReleaseSmall",
            "-fstrip",
            *libc,
            "-femit-bin={output}",
            relative(main, source),
        ),
        comments=("For the platform's static musl target, optimised for size, without symbols.",),
        smoke=smoke,
    )


def _zig_root(build: str) -> bool:
    """Whether build.zig's executable has a Zig root source file (else it compiles C sources only)."""
    executable = _EXECUTABLE.search(build)
    return executable is not None and _ZIG_ROOT.search(executable.group(1)) is not None

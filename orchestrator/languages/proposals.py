"""What a language proposes for a source tree it recognises (`osless init`), and the tree reading they share.

Each language module reads a source directory its own way (go.mod, Cargo.toml, build.zig, a C build
system) and answers with a `BuildProposal`: how its toolchain builds the tree offline and statically,
what the image needs, and a first smoke check. The generic code (orchestrator/recipe/init.py) asks
every language, picks a proposal and a toolchain, and writes the recipe; it never names a language.

Reading is bounded and never follows a symbolic link: a source tree is the user's, but may be large
(vendored dependencies) or hold anything.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.recipe.model import FetchSpec

MAX_TEXT = 1024**2  # bytes of one file read for detection: build files and sources are smaller
MAX_TEXTS = 64 * 1024**2  # bytes read from one walk's files: enough to recognise a program
MAX_FILES = 4000  # files looked at in one walk: enough for a program, bounded for a huge tree
MAX_DEPTH = 6
# Directories a walk never enters: version control, dependencies copied in, build output.
SKIPPED_DIRECTORIES = frozenset(
    {".git", ".hg", ".svn", "vendor", "node_modules", "target", "build", "zig-out", ".zig-cache", "out"}
)
SMOKE_TIMEOUT = "10s"


@dataclass(frozen=True, kw_only=True)
class LibraryNeed:
    """A library the build links from its toolchain image: a Debian package the toolchain must install."""

    what: str  # where the build asks for it: "libsodium (pkg-config, CMakeLists.txt)"
    package: str  # a regular expression a package name of the toolchain must match in full
    example: str  # the package to add when no toolchain has one: "libsodium-dev"


@dataclass(frozen=True, kw_only=True)
class SmokeProposal:
    """A first smoke check: arguments that make the program do something small and exit 0."""

    args: tuple[str, ...] = ()
    why: str  # sentences for the recipe's comment


@dataclass(frozen=True, kw_only=True)
class BuildProposal:
    """How one language would build a source tree: what `osless init` writes into a recipe."""

    language: str  # Language.name
    found: str  # what was recognised, for messages: "CMakeLists.txt (cmake)"
    rank: int  # how specific the evidence is: 3 a build system, 2 a Makefile, 1 loose sources
    toolchain: str  # the toolchain that builds it (or one that extends it), e.g. "gcc"
    needs: tuple[LibraryNeed, ...] = ()
    command: tuple[str, ...] = ()  # exactly one of command or steps
    steps: tuple[tuple[str, ...], ...] = ()
    artifact: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    fetch: FetchSpec | None = None  # a [fetch] table, as written (goproxy relative to the project)
    extras: tuple[tuple[str, str], ...] = ()  # [image] extras the program reads at run time, and why
    comments: tuple[str, ...] = ()  # why the build is so, for the [build] table's comment
    notes: tuple[str, ...] = ()  # what the user must check or change: printed and in the recipe
    smoke: SmokeProposal


RANK_BUILD_SYSTEM = 3
RANK_MAKEFILE = 2
RANK_SOURCES = 1


def walk(source: Path, suffixes: tuple[str, ...], *, depth: int = MAX_DEPTH) -> list[Path]:
    """Regular files of `source` whose names end with one of `suffixes`, at most `depth` directories
    down, in sorted order; skips SKIPPED_DIRECTORIES, hidden directories and those starting with `_`
    (Go ignores them, builds leave them), never follows symbolic links; at most MAX_FILES files."""
    found: list[Path] = []
    for path in _walk(source, depth):
        if path.name.endswith(suffixes):
            found.append(path)
            if len(found) >= MAX_FILES:
                break
    return found


def _walk(directory: Path, depth: int) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            yield Path(entry.path)
    if depth <= 0:
        return
    for entry in entries:
        if (
            entry.is_dir(follow_symlinks=False)
            and entry.name not in SKIPPED_DIRECTORIES
            and not entry.name.startswith((".", "_"))
        ):
            yield from _walk(Path(entry.path), depth - 1)


def read_source_file(path: Path, limit: int) -> bytes | None:
    """A file of the source: a regular file (a symbolic link is not followed, a FIFO not opened for
    long) of at most `limit` bytes; None when it is not one."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        data = stream.read(limit + 1)
    return None if len(data) > limit else data


def read_text(path: Path) -> str | None:
    """A file of the source as text (read_source_file, at most MAX_TEXT bytes), decoded as UTF-8 with
    undecodable bytes replaced; None when it is not one."""
    data = read_source_file(path, MAX_TEXT)
    return None if data is None else data.decode("utf-8", errors="replace")


def read_texts(paths: Iterable[Path]) -> dict[Path, str]:
    """The texts of the files that `read_text` can read, until MAX_TEXTS characters are read."""
    found: dict[Path, str] = {}
    total = 0
    for path in paths:
        text = read_text(path)
        if text is not None:
            found[path] = text
            total += len(text)
            if total > MAX_TEXTS:
                break
    return found


def texts(paths: Iterable[Path]) -> list[str]:
    """`read_texts`'s texts."""
    return list(read_texts(paths).values())


def relative(path: Path, source: Path) -> str:
    """`path` relative to `source`, with `/`: how recipes name files of the workspace."""
    return path.relative_to(source).as_posix()


# A line of a program's usage text that documents an option printing its version, in any language's
# string literals: `"  -v, --version   print version information\n"`. The option is followed by two
# spaces or more (an option taking a value, `--api-version V  ...`, is not one).
_OPTION = r"(?:--[A-Za-z][\w-]*|-[A-Za-z0-9])"
_VERSION_LINE = re.compile(
    rf"""^[\s"'`]*({_OPTION}(?:,?[ \t]+{_OPTION})*)[ \t]{{2,}}[^\n]*?"""
    r"(?:\b(?:print|show|display|output|report)s?\b[^\n]*\bversion\b"
    r"|\bversion (?:number|information|info)\b)",
    re.MULTILINE | re.IGNORECASE,
)


def documented_version_option(sources: Iterable[str]) -> str | None:
    """The option a usage text documents as printing the version (the long form when both are given:
    `--version` from `-V, --version`), from the first source that has one; None when none does."""
    for text in sources:
        found = _VERSION_LINE.search(text)
        if found:
            options = found.group(1).replace(",", " ").split()
            return next((option for option in options if option.startswith("--")), options[0])
    return None


def smoke_proposal(
    sources: list[str], *, serves: str | None, version: str | None = None, quick_exit: str | None = None
) -> SmokeProposal:
    """The first smoke check for a program whose source texts are `sources`: its version option (the one
    `version` names, else one its usage text documents), else, for a server (`serves`: what shows it,
    e.g. "calls listen()"), `quick_exit` (an option that makes it exit 0 at once), else no arguments."""
    option = version or documented_version_option(sources)
    if option is not None:
        why = f"Runs the program with {option}, which its sources document as printing its version."
        return SmokeProposal(args=(option,), why=why)
    if serves is not None and quick_exit is not None:
        why = f"A server ({serves}): {quick_exit} makes it print its usage and exit 0 instead of serving."
        return SmokeProposal(args=(quick_exit,), why=why)
    if serves is not None:
        why = (
            f"A server ({serves}): a smoke check runs the image until it exits, so give it arguments "
            "that make it exit at once (a version or help option), or it fails at its timeout."
        )
        return SmokeProposal(why=why)
    return SmokeProposal(why="Runs the program without arguments and with an empty stdin: it must exit 0.")


def first_match(pattern: re.Pattern[str], sources: Iterable[str]) -> str | None:
    """The first text `pattern` finds in `sources` (its first group when it has one), else None."""
    for text in sources:
        found = pattern.search(text)
        if found:
            return found.group(1) if pattern.groups else found.group(0)
    return None

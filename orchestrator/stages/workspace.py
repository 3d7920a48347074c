"""A target's workspace kept between runs: each build syncs it with the source instead of copying the
source afresh, so make, cmake and cargo find their objects and recompile only what changed. The source
tree is read once per run (`read_source`): its digest is part of its targets' keys, its manifest is what
a sync compares.

Where: the workspaces of one toolchain image's builds are in a named volume per (toolchain, project,
out/ directory, toolchain image, cache namespace), mounted at /workspace in its builders, each at its
fixed path `/workspace/<service>/<platform>` (paths end up in binaries). A run holds its out/ (the
lock), so one run at a time uses a volume; `--check-reproducible` builds in a namespace of its own:
fresh volumes, removed afterwards, so its builds start from clean state.

When a workspace is kept: osless records in out/ (`.workspaces/<volume>/<service>/<platform>.json`)
what the last *successful* build synced: the source's manifest, a hash of the build's commands and
environment, and a random token. The workspace's marker file (`/workspace/<service>/.<platform>.token`)
holds the token of the last build that used it, written before anything else is touched. A build
keeps the workspace only when the marker still holds the record's token (a failed or interrupted build
left one that no record holds: a half-written object is never reused), its commands and environment
are the same (make does not notice a new CFLAGS), and the changes fit in one exec's arguments; else,
and with `--rebuild` or the recipe's `incremental = false`, it gets a fresh copy.

Syncing removes what the source no longer has, and copies what changed or is new (a new directory
whole) with `cp -a`, made writable and touched: make, cmake and cargo see it newer than what was built
from it. The manifest is read when the run starts, like the digest of the targets' keys: a file edited
while its target builds may be copied as edited yet recorded as it was (as the key records it).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import RecipeError, RecipeProblem
from orchestrator.outputs.atomic import write_atomic

VOLUME = "osless-work-{toolchain}-{project}-{out}-{image}{namespace}"
RECORDS_DIR = ".workspaces"  # out/.workspaces/<volume>/<service>/<platform>.json
RECORD_FORMAT = 1
# One exec's arguments: Linux allows 128 KiB per argument and about 2 MiB in all; the paths of a sync
# stay well under that (else a fresh copy, which is as fast by then).
MAX_PATHS = 2000
MAX_PATH_BYTES = 512 * 1024
_SHOWN = 5  # changed and removed paths a note names
# Why a build gets a fresh copy, as build.log says it.
NO_RECORD = "no previous successful build in this out/ with this toolchain image"
REBUILD = "--rebuild"
NOT_INCREMENTAL = "incremental = false in the recipe"
OTHER_BUILD = "the build's commands or environment changed"
_FRESH_BECAUSE = {
    "missing": "the previous workspace is gone (its volume was removed)",
    "stale": "the previous build failed or was interrupted",
    "failed": "syncing the kept workspace failed (the previous build changed its directories)",
}
# Arguments: the target's output directory (emptied, with its bin/: one exec less per build), the
# workspace, the source, the marker, the record's token ("": a fresh copy), the new token, how many of
# the paths that follow are removed ones (the rest changed or new: each "./<path>").
# The new token is written first. Prints what it did: kept, fresh, or why it made a fresh copy.
SCRIPT = r"""o=$1 w=$2 s=$3 m=$4 expected=$5 token=$6 removing=$7
shift 7
rm -rf -- "$o" && mkdir -p -- "$o/bin" || exit 1
previous=$(cat -- "$m" 2>/dev/null) || previous=
mkdir -p -- "${m%/*}" && printf '%s\n' "$token" > "$m" || exit 1
fresh() {
  if [ -e "$w" ]; then chmod -R u+w -- "$w"; rm -rf -- "$w"; fi
  mkdir -p -- "$w" && cp -a -- "$s/." "$w/" && chmod -R u+w -- "$w" && echo "$1"
}
update() (
  cd -- "$w" || exit 1
  [ "$#" -eq 0 ] || rm -rf -- "$@" || exit 1
  shift "$removing"
  [ "$#" -eq 0 ] && exit 0
  for p; do [ -d "${p%/*}" ] || exit 1; done
  (cd -- "$s" && cp -a --parents -- "$@" "$w/") || exit 1
  find "$@" ! -type l -exec chmod u+w -- {} + && find "$@" -exec touch -h -- {} +
)
if [ -z "$expected" ]; then fresh fresh
elif [ ! -d "$w" ]; then fresh missing
elif [ "$previous" != "$expected" ]; then fresh stale
elif update "$@"; then echo kept
else fresh failed
fi
"""


@dataclass(frozen=True, kw_only=True)
class SourceEntry:
    """One entry of a source tree, as a workspace sync compares it."""

    kind: str  # "file", "link" or "directory"
    mode: int = 0  # a file's permission bits, which `cp -a` copies (0 for links and directories)
    content: str = ""  # a file's sha256, a link's target ("" for a directory)


@dataclass(frozen=True, kw_only=True)
class SourceTree:
    """A source tree read once: its digest (for target keys) and its manifest (for workspace syncs)."""

    digest: str
    entries: dict[str, SourceEntry]  # relative POSIX path -> entry, in the order of the walk


def read_source(source: Path) -> SourceTree:
    """The source tree's digest (every file's relative path, executable bit and bytes; links' targets)
    and manifest (every entry: its kind, a file's mode and sha256, a link's target), in one walk.

    Walked with lstat, never following a link and never opening anything but a regular file (opened
    with O_NONBLOCK and O_NOFOLLOW, its type checked again on the descriptor), so a FIFO cannot make it
    block. A FIFO, socket or device in the tree, or an unreadable entry, is a RecipeError naming its path:
    nothing is skipped silently.
    """
    digest = hashlib.sha256()
    entries: dict[str, SourceEntry] = {}
    _read_directory(source, source, digest, entries)
    return SourceTree(digest=digest.hexdigest(), entries=entries)


def _read_directory(source: Path, directory: Path, digest: Any, entries: dict[str, SourceEntry]) -> None:
    try:
        listed = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        raise _source_problem(directory, f"cannot read this directory: {exc.strerror or exc}") from exc
    subdirectories = []
    for entry in listed:
        path = Path(entry.path)
        relative = path.relative_to(source).as_posix()
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(path)
                digest.update(f"L {relative} -> {target}\0".encode())
                entries[relative] = SourceEntry(kind="link", content=target)
            elif stat.S_ISDIR(mode):
                subdirectories.append(path)
                entries[relative] = SourceEntry(kind="directory")
            elif stat.S_ISREG(mode):
                entries[relative] = _read_file(path, relative, digest)
            else:
                raise _source_problem(path, _special_message(mode))
        except OSError as exc:
            raise _source_problem(path, f"cannot read it: {exc.strerror or exc}") from exc
    for subdirectory in subdirectories:  # os.walk's order: a directory's files, then its subdirectories
        _read_directory(source, subdirectory, digest, entries)


def _read_file(path: Path, relative: str, digest: Any) -> SourceEntry:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # replaced since the lstat
            raise _source_problem(path, _special_message(info.st_mode))
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"F {relative} {executable} {info.st_size}\0".encode())
        content = hashlib.sha256()
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            content.update(chunk)
    return SourceEntry(kind="file", mode=stat.S_IMODE(info.st_mode), content=content.hexdigest())


def _special_message(mode: int) -> str:
    return f"is {_kind(mode)}: a source tree holds only files, directories and symbolic links"


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), f"a special file (mode {mode:#o})")


def _source_problem(path: Path, message: str) -> RecipeError:
    problem = RecipeProblem(file=str(path), message=message, hint="remove it from the source tree")
    return RecipeError([problem])


@dataclass(frozen=True, kw_only=True)
class Record:
    """The last successful build of a workspace: its marker's token, its commands and environment
    (a hash), and the manifest of the source it synced."""

    token: str
    build: str
    entries: Mapping[str, SourceEntry]


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What one build does to its workspace: sync it (`expected` is the token its marker must hold),
    or a fresh copy (`expected` None, `why`)."""

    token: str  # the marker's new token, recorded when the build succeeds
    build: str
    entries: Mapping[str, SourceEntry]  # the source as this build syncs it
    expected: str | None = None
    changed: tuple[str, ...] = ()  # changed and new paths, a new directory once
    removed: tuple[str, ...] = ()
    why: str | None = None

    @property
    def record(self) -> Record:
        """What to record once the build succeeded."""
        return Record(token=self.token, build=self.build, entries=self.entries)


def volume_name(*, toolchain: str, project: str, out_root: Path, image_id: str, namespace: str) -> str:
    """The workspace volume of a toolchain image's builds for one project and out/ directory."""
    out = hashlib.sha256(str(out_root.resolve()).encode()).hexdigest()
    return VOLUME.format(
        toolchain=toolchain, project=project[:12], out=out[:8], image=image_id[:12], namespace=namespace
    )


def record_path(out_root: Path, volume: str, service: str, slug: str) -> Path:
    return out_root / RECORDS_DIR / volume / service / f"{slug}.json"


def marker_path(workspace: str) -> str:
    """The marker beside the workspace (the workspace itself is emptied by a fresh copy)."""
    parent, name = posixpath.split(workspace)
    return f"{parent}/.{name}.token"


def diff(old: Mapping[str, SourceEntry], new: Mapping[str, SourceEntry]) -> tuple[list[str], list[str]]:
    """(changed, removed) between two manifests: what is new or different in `new`, a new directory
    once for all it holds, and what `old` had that `new` lacks, a removed directory once (a directory in
    both never differs: its mode is not synced)."""
    changed = [path for path, entry in new.items() if old.get(path) != entry]
    removed = [path for path in old if path not in new]
    return _outermost(changed), _outermost(removed, also=set(changed))


def _outermost(paths: list[str], also: set[str] | None = None) -> list[str]:
    """The paths not inside another of them (nor inside one of `also`), sorted."""
    covering = set(paths) | (also or set())
    return sorted(path for path in paths if not any(parent in covering for parent in _parents(path)))


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:index]) for index in range(1, len(parts))]


def plan(
    previous: Record | None, entries: Mapping[str, SourceEntry], build: str, *, refused: str | None
) -> Plan:
    """Sync the workspace when the previous successful build's record allows it, else a fresh copy
    (`refused`: why the build must have one, --rebuild or the recipe)."""
    fresh = Plan(token=secrets.token_hex(16), build=build, entries=entries)
    if refused is not None:
        return _fresh(fresh, refused)
    if previous is None:
        return _fresh(fresh, NO_RECORD)
    if previous.build != build:
        return _fresh(fresh, OTHER_BUILD)
    changed, removed = diff(previous.entries, entries)
    count = len(changed) + len(removed)
    try:  # the engine's API is JSON: a path that is not UTF-8 cannot be passed
        size = sum(len(f"./{path}".encode()) + 1 for path in (*changed, *removed))
    except UnicodeEncodeError:
        return _fresh(fresh, "a changed file's name is not UTF-8")
    if count > MAX_PATHS or size > MAX_PATH_BYTES:
        return _fresh(fresh, f"{count} changes (a sync takes at most {MAX_PATHS})")
    return Plan(
        token=fresh.token,
        build=build,
        entries=entries,
        expected=previous.token,
        changed=tuple(changed),
        removed=tuple(removed),
    )


def _fresh(plan: Plan, why: str) -> Plan:
    return Plan(token=plan.token, build=plan.build, entries=plan.entries, why=why)


def command(plan: Plan, *, output: str, workspace: str, source: str) -> list[str]:
    """The one `sh -c` that prepares the target's output directory and workspace: SCRIPT, its fixed
    arguments, then the paths."""
    return [
        "sh",
        "-c",
        SCRIPT,
        "sh",
        output,
        workspace,
        source,
        marker_path(workspace),
        plan.expected or "",
        plan.token,
        str(len(plan.removed)),
        *(f"./{path}" for path in (*plan.removed, *plan.changed)),
    ]


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What preparing the workspace did: kept and synced, or a fresh copy, and build.log's note."""

    kept: bool
    note: str


def outcome(plan: Plan, printed: bytes, *, source: str) -> Outcome:
    """The script's last line, said for build.log."""
    lines = printed.decode(errors="replace").split()
    done = lines[-1] if lines else ""
    if done == "kept":
        return Outcome(kept=True, note=f"workspace kept from the previous build: {summary(plan)}")
    why = _FRESH_BECAUSE.get(done, plan.why or "")
    return Outcome(kept=False, note=f"a fresh copy of {source}: {why}")


def summary(plan: Plan) -> str:
    """`1 file changed (src/lapi.c), 0 removed`: a new directory is one path, named with a `/`."""

    def named(paths: tuple[str, ...]) -> str:
        shown = [f"{path}/" if plan.entries.get(path, _FILE).kind == "directory" else path for path in paths]
        more = f" and {len(shown) - _SHOWN} more" if len(shown) > _SHOWN else ""
        return f" ({', '.join(shown[:_SHOWN])}{more})" if shown else ""

    directories = any(plan.entries.get(path, _FILE).kind == "directory" for path in plan.changed)
    noun = ("path" if directories else "file") + ("" if len(plan.changed) == 1 else "s")
    changed = f"{len(plan.changed)} {noun} changed{named(plan.changed)}"
    return f"{changed}, {len(plan.removed)} removed{named(plan.removed)}"


_FILE = SourceEntry(kind="file")


def read_record(path: Path) -> Record | None:
    """The record at `path`; None when there is none or it is not one osless wrote (a fresh copy). Its
    paths become arguments of the sync (a removed one is removed): one that is not a plain relative
    path inside the workspace (`..`, absolute, empty parts) makes it no record at all."""
    try:
        document = json.loads(path.read_text())
        if document["format"] != RECORD_FORMAT:
            return None
        entries = {
            str(name): SourceEntry(kind=str(kind), mode=int(mode), content=str(content))
            for name, (kind, mode, content) in document["entries"].items()
        }
        record = Record(token=str(document["token"]), build=str(document["build"]), entries=entries)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if all(map(_inside, entries)) else None


def _inside(path: str) -> bool:
    """A relative path of the source tree as `read_source` names them: no `.`, `..` or empty parts."""
    return all(part not in ("", ".", "..") for part in path.split("/"))


def write_record(path: Path, record: Record) -> None:
    """Atomically: a record is whole or absent."""
    document = {
        "format": RECORD_FORMAT,
        "token": record.token,
        "build": record.build,
        "entries": {name: [e.kind, e.mode, e.content] for name, e in record.entries.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(document, separators=(",", ":")).encode())

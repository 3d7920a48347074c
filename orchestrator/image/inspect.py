"""`osless inspect`'s checks: what a binary or an image holds, and whether it can run as it is.

A binary gets the verifier's report (platform, linkage, Go build info as `go version -m` prints it,
findings). An image, read by `image.reader`, gets the verdict for each ELF inside (its extras counting
as provided, as in the build), which of the extras its binaries need (`needs.*` findings) it lacks,
and whether its entrypoint can start. Pure reports: `cli.render` prints them.
"""

from __future__ import annotations

import dataclasses
import posixpath
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.image.extras import EXTRAS
from orchestrator.image.reader import (
    ELF_MAGIC,
    INPUT_HINT,
    FileInfo,
    FileType,
    ImageContents,
    ImageSettings,
    is_image_archive,
    normalize_platform,
    read_engine_image,
    read_image_path,
)
from orchestrator.languages import build_report
from orchestrator.platforms import PLATFORMS, Platform
from orchestrator.verify.findings import Finding, Verdict
from orchestrator.verify.policy import DEFAULT_POLICY, VerifyPolicy, verify_binary


@dataclass(frozen=True, kw_only=True)
class NeedCheck:
    """One extra a binary needs (a `needs.*` finding) and whether the image provides it."""

    extra: str
    finding: str  # the finding id
    binary: str  # where the binary that needs it is
    provided: bool
    message: str


@dataclass(frozen=True, kw_only=True)
class BinaryReport:
    """The verdict for one ELF file, with its Go build info as `go version -m` prints it."""

    path: str
    ok: bool
    verdict: Verdict
    go_version_m: str | None


@dataclass(frozen=True, kw_only=True)
class FileRow:
    """A FileInfo without its bytes, for reports."""

    path: str
    type: FileType
    mode: str  # octal, "0755"
    permissions: str  # "-rwxr-xr-x"
    uid: int
    gid: int
    size: int
    link: str | None


@dataclass(frozen=True, kw_only=True)
class ImageReport:
    """Everything `osless inspect IMAGE` says."""

    source: str
    image_id: str
    platform: str
    platforms: tuple[str, ...]
    settings: ImageSettings
    layers: int
    files: tuple[FileRow, ...]
    total_size: int
    binaries: tuple[BinaryReport, ...]
    needs: tuple[NeedCheck, ...]
    problems: tuple[str, ...]  # why it fails: errors the image does not make up for, entrypoint, platform

    @property
    def ok(self) -> bool:
        return not self.problems


def inspect_target(target: str, platform: str | None) -> BinaryReport | ImageReport:
    """The report on a binary (a file that is no image archive), an image file or layout, or else an
    image of the local engine; `platform` picks the image of a multi-platform source, or the platform
    a binary is verified for."""
    path = Path(target)
    _refuse_special_file(path)
    if path.is_file() and not is_image_archive(path):
        return inspect_binary(path, _known_platform(platform))
    if path.exists():
        return inspect_image(read_image_path(path, platform))
    if _looks_like_a_path(target):
        raise UsageError(f"{target}: no such file or directory", hint=INPUT_HINT)
    return inspect_image(read_engine_image(target, platform))


def inspect_binary(
    path: Path,
    platform: Platform | None,
    *,
    shown_as: str | None = None,
    policy: VerifyPolicy = DEFAULT_POLICY,
) -> BinaryReport:
    """The verifier's report on one file, named `shown_as` (default: its path)."""
    name = shown_as or str(path)
    verdict = dataclasses.replace(verify_binary(path, platform, policy), path=name)
    return BinaryReport(
        path=name,
        ok=verdict.ok,
        verdict=verdict,
        go_version_m=build_report(verdict.facts, name) if verdict.facts else None,
    )


def inspect_image(contents: ImageContents) -> ImageReport:
    """Verify every ELF in the image for its config's platform, the extras the image holds counting as
    provided (as the build does), and check what the binaries need against the image."""
    platform = _config_platform(contents.settings)
    provided = frozenset(name for name, extra in EXTRAS.items() if extra.provided_by(contents))
    binaries = _verify_elves(contents, platform, VerifyPolicy(provided=provided))
    needs = check_needs(contents, [(b.path, f) for b in binaries for f in b.verdict.findings])
    problems = [f"{b.path}: {f.message}" for b in binaries for f in b.verdict.errors]
    problems += [f"{f.path}: {f.unread}" for f in contents.files.values() if f.unread]
    problems += _entrypoint_problems(contents)
    if platform is None:
        problems.append(f"platform {contents.settings.platform} is not one osless knows")
    return ImageReport(
        source=contents.source,
        image_id=contents.image_id,
        platform=contents.settings.platform,
        platforms=contents.platforms,
        settings=contents.settings,
        layers=contents.layers,
        files=tuple(_row(f) for f in contents.files.values()),
        total_size=contents.total_size,
        binaries=tuple(binaries),
        needs=tuple(needs),
        problems=tuple(problems),
    )


def check_needs(contents: ImageContents, findings: Sequence[tuple[str, Finding]]) -> list[NeedCheck]:
    """For each (binary, finding) naming an image extra, whether the image provides that extra."""
    checks: list[NeedCheck] = []
    for binary, finding in findings:
        name = finding.extra
        if name is None:
            continue
        extra = EXTRAS.get(name)
        what = extra.description if extra else f"image extra {name!r}"
        provided = extra is not None and extra.provided_by(contents)
        hint = extra.hint if extra else f'add extras = ["{name}"] to [image]'
        message = f"provided: {what}" if provided else f"missing: {what} — {hint} (needed by {binary})"
        checks.append(
            NeedCheck(extra=name, finding=finding.id, binary=binary, provided=provided, message=message)
        )
    return checks


def _verify_elves(
    contents: ImageContents, platform: Platform | None, policy: VerifyPolicy
) -> list[BinaryReport]:
    """verify_binary on every ELF in the image, each written to a temporary file first."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="osless-inspect-") as work:
        for number, entry in enumerate(contents.files.values()):
            if entry.data is None or not entry.data.startswith(ELF_MAGIC):
                continue
            copy = Path(work) / f"{number}-{posixpath.basename(entry.path)}"
            copy.write_bytes(entry.data)
            reports.append(inspect_binary(copy, platform, shown_as=entry.path, policy=policy))
    return reports


def _entrypoint_problems(contents: ImageContents) -> list[str]:
    """The program a container starts must be in the image and executable (when named by absolute path)."""
    command = contents.settings.entrypoint or contents.settings.cmd
    if not command:
        return ["the config names no entrypoint and no cmd: a container has nothing to run"]
    program = command[0]
    if not program.startswith("/"):
        return []
    entry = contents.resolve(posixpath.normpath(program))
    if entry is None or entry.type not in (FileType.FILE, FileType.HARDLINK):
        return [f"the entrypoint {program} is not a file in the image"]
    if not entry.mode & 0o111:
        return [f"the entrypoint {program} is not executable ({entry.permissions})"]
    return []


def _config_platform(settings: ImageSettings) -> Platform | None:
    return PLATFORMS.get(normalize_platform(settings.platform))


def _known_platform(name: str | None) -> Platform | None:
    if name is None:
        return None
    platform = PLATFORMS.get(normalize_platform(name))
    if platform is None:
        raise UsageError(f"unknown platform {name}", hint=f"one of: {', '.join(PLATFORMS)}")
    return platform


def _refuse_special_file(path: Path) -> None:
    """A device, FIFO or socket is never opened (a FIFO would block, /dev/zero never end): a usage error,
    like a path that does not exist."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # absent (or unreadable): the caller says so
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kinds = (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    raise UsageError(f"{path} is {kind}, not a regular file", hint=INPUT_HINT)


def _looks_like_a_path(target: str) -> bool:
    """Only a path can start with `/`, `.` or `~`, or end in .tar: no use asking the engine."""
    return target.startswith(("/", ".", "~")) or target.endswith((".tar", ".tar.gz", ".tgz"))


def _row(entry: FileInfo) -> FileRow:
    return FileRow(
        path=entry.path,
        type=entry.type,
        mode=f"{entry.mode:04o}",
        permissions=entry.permissions,
        uid=entry.uid,
        gid=entry.gid,
        size=entry.size,
        link=entry.link,
    )

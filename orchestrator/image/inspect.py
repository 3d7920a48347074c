"""`osless inspect`: what a binary or an image holds, and whether it can run as it is.

A binary gets the verifier's report (platform, linkage, Go build info as `go version -m` prints it,
findings). An image (an OCI layout directory, a docker-archive or OCI tar, or an image in the local
engine) is read without Docker's help: its config, every file its layers leave (whiteouts applied), the
verdict for each ELF inside, and which of the extras its binaries need (`needs.*` findings) it lacks.

Reading images is pure (`read_image_path`): files and tars in, `ImageContents` out. Only
`read_engine_image` talks to Docker, through `docker save` (Docker 20.10 writes the legacy format:
`manifest.json` with `<id>/layer.tar` paths; newer engines add an OCI `index.json`).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.elf.goinfo import format_like_go_version_m
from orchestrator.engine import Engine, ImageMissing
from orchestrator.errors import EngineError, UsageError, VerificationFailed
from orchestrator.outputs.report import human_size, to_jsonable
from orchestrator.platforms import PLATFORMS, Platform, host_platform
from orchestrator.verify.verifier import (
    DEFAULT_POLICY,
    MAX_FILE_SIZE,
    Finding,
    Severity,
    Verdict,
    VerifyPolicy,
    verify_binary,
)

_ELF_MAGIC = b"\x7fELF"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
_MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
_MAX_DOCUMENT = 64 << 20  # an image's index, manifest or config (real ones: a few KiB)
_MAX_ELF_BYTES = 2 * MAX_FILE_SIZE  # ELF bytes kept in memory for one image, all files together
_INPUT_HINT = (
    "pass a binary, an image tar, an OCI layout directory or a local image reference (docker images)"
)


class FileType(str, Enum):
    FILE = "file"
    DIRECTORY = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR_DEVICE = "char"
    BLOCK_DEVICE = "block"
    FIFO = "fifo"


_TAR_TYPES = {
    tarfile.REGTYPE: FileType.FILE,
    tarfile.AREGTYPE: FileType.FILE,
    tarfile.CONTTYPE: FileType.FILE,
    tarfile.DIRTYPE: FileType.DIRECTORY,
    tarfile.SYMTYPE: FileType.SYMLINK,
    tarfile.LNKTYPE: FileType.HARDLINK,
    tarfile.CHRTYPE: FileType.CHAR_DEVICE,
    tarfile.BLKTYPE: FileType.BLOCK_DEVICE,
    tarfile.FIFOTYPE: FileType.FIFO,
}
_STAT_TYPES = {
    FileType.FILE: stat.S_IFREG,
    FileType.HARDLINK: stat.S_IFREG,
    FileType.DIRECTORY: stat.S_IFDIR,
    FileType.SYMLINK: stat.S_IFLNK,
    FileType.CHAR_DEVICE: stat.S_IFCHR,
    FileType.BLOCK_DEVICE: stat.S_IFBLK,
    FileType.FIFO: stat.S_IFIFO,
}


@dataclass(frozen=True, kw_only=True)
class FileInfo:
    """One entry of the image's file system, as the last layer that touched it left it.

    `data` holds an ELF file's bytes (a hard link's: its target's), the only ones inspect verifies, and
    only within the read limits (MAX_FILE_SIZE per file, _MAX_ELF_BYTES per image): `unread` then says
    why an ELF file's bytes were not kept. `link` is a link's target.
    """

    path: str  # absolute, e.g. "/hello-go", "/etc"
    type: FileType
    mode: int  # permission bits, 0o7777
    uid: int
    gid: int
    size: int
    link: str | None = None
    data: bytes | None = field(default=None, repr=False, compare=False)
    unread: str | None = None

    @property
    def permissions(self) -> str:
        """As `ls -l` shows them: `-rwxr-xr-x`, `drwxr-xr-x`."""
        return stat.filemode(_STAT_TYPES[self.type] | self.mode)


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    """What the image config says: platform, creation time and how a container starts."""

    os: str
    architecture: str
    variant: str | None
    created: str | None
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    working_dir: str
    env: tuple[str, ...]  # "KEY=value", as the config lists them
    labels: dict[str, str]

    @property
    def platform(self) -> str:
        return _platform_name(self.os, self.architecture, self.variant)


@dataclass(frozen=True, kw_only=True)
class ImageContents:
    """One single-platform image, read: its config and the file system its layers make."""

    source: str  # what was read: a path or an image reference
    image_id: str  # the config digest, what `docker images` shows
    platforms: tuple[str, ...]  # every platform the source holds
    settings: ImageSettings
    layers: int
    files: dict[str, FileInfo]  # by path, sorted

    @property
    def total_size(self) -> int:
        """Bytes of regular files (hard links not counted twice)."""
        return sum(f.size for f in self.files.values() if f.type is FileType.FILE)

    def resolve(self, path: str) -> FileInfo | None:
        """The entry at `path` with symbolic links followed in every component, as the kernel would
        inside the container (the image root is `/`); None when it does not exist or links loop."""
        parts, current, hops = [p for p in path.split("/") if p], "/", 0
        while parts:
            part = parts.pop(0)
            if part in (".", ".."):
                current = posixpath.dirname(current) if part == ".." else current
                continue
            candidate = posixpath.join(current, part)
            entry = self.files.get(candidate)
            if entry is not None and entry.type is FileType.SYMLINK and entry.link:
                hops += 1
                if hops > 40:
                    return None
                parts = [p for p in entry.link.split("/") if p] + parts
                current = "/" if entry.link.startswith("/") else current
                continue
            current = candidate
        return self.files.get(current)


@dataclass(frozen=True, kw_only=True)
class Extra:
    """An image extra (`[image] extras`) and how to tell an image has it."""

    name: str
    description: str
    provided_by: Callable[[ImageContents], bool]


def _has_file(path: str) -> Callable[[ImageContents], bool]:
    def check(image: ImageContents) -> bool:
        entry = image.resolve(path)
        return entry is not None and entry.type in (FileType.FILE, FileType.HARDLINK)

    return check


def _has_directory(path: str, *, populated: bool = False) -> Callable[[ImageContents], bool]:
    def check(image: ImageContents) -> bool:
        entry = image.resolve(path)
        if entry is None or entry.type is not FileType.DIRECTORY:
            return False
        prefix = path.rstrip("/") + "/"
        return not populated or any(
            p.startswith(prefix) and f.type is not FileType.DIRECTORY for p, f in image.files.items()
        )

    return check


EXTRA_CHECKS: dict[str, Extra] = {
    extra.name: extra
    for extra in (
        Extra(
            name="ca-certificates",
            description="CA bundle (/etc/ssl/certs/ca-certificates.crt)",
            provided_by=_has_file("/etc/ssl/certs/ca-certificates.crt"),
        ),
        Extra(
            name="tzdata",
            description="time zone database (/usr/share/zoneinfo/)",
            provided_by=_has_directory("/usr/share/zoneinfo", populated=True),
        ),
        Extra(name="passwd", description="user database (/etc/passwd)", provided_by=_has_file("/etc/passwd")),
        Extra(name="tmp", description="temporary directory (/tmp)", provided_by=_has_directory("/tmp")),
    )
}


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


# ---------------------------------------------------------------------------------------------------
# The command


def run(target: str, *, platform: str | None, as_json: bool, console: Console) -> int:
    """`osless inspect TARGET`: report on a binary or an image; 0 when it passes, else VerificationFailed."""
    path = Path(target)
    _refuse_special_file(path)
    if path.is_file() and not _is_image_archive(path):
        report: BinaryReport | ImageReport = inspect_binary(path, _known_platform(platform))
    elif path.exists():
        report = inspect_image(read_image_path(path, platform))
    elif _looks_like_a_path(target):
        raise UsageError(f"{target}: no such file or directory", hint=_INPUT_HINT)
    else:
        report = inspect_image(read_engine_image(target, platform))
    if as_json:
        kind = "binary" if isinstance(report, BinaryReport) else "image"
        document = {"kind": kind, **to_jsonable(report), "ok": report.ok}
        console.file.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    elif isinstance(report, BinaryReport):
        _print_binary(console, report)
    else:
        _print_image(console, report)
    if isinstance(report, BinaryReport) and not report.ok:
        raise VerificationFailed(f"{target}: {report.verdict.reason}")
    if isinstance(report, ImageReport) and not report.ok:
        count = len(report.problems)
        raise VerificationFailed(
            f"{target}: {count} problem{'s' if count != 1 else ''}: {report.problems[0]}"
        )
    return 0


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
    go = verdict.facts.go if verdict.facts else None
    return BinaryReport(
        path=name,
        ok=verdict.ok,
        verdict=verdict,
        go_version_m=format_like_go_version_m(go, name) if go else None,
    )


def inspect_image(contents: ImageContents) -> ImageReport:
    """Verify every ELF in the image for its config's platform, the extras the image holds counting as
    provided (as the build does), and check what the binaries need against the image."""
    platform = _config_platform(contents.settings)
    provided = frozenset(name for name, extra in EXTRA_CHECKS.items() if extra.provided_by(contents))
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
        extra = EXTRA_CHECKS.get(name)
        what = extra.description if extra else f"image extra {name!r}"
        provided = extra is not None and extra.provided_by(contents)
        message = (
            f"provided: {what}"
            if provided
            else f'missing: {what} — add extras = ["{name}"] to [image] (needed by {binary})'
        )
        checks.append(
            NeedCheck(extra=name, finding=finding.id, binary=binary, provided=provided, message=message)
        )
    return checks


# ---------------------------------------------------------------------------------------------------
# Reading images


class _Store:
    """Named byte strings: the files of a layout directory or the members of a tar."""

    def __init__(self, names: Sequence[str], opener: Callable[[str], IO[bytes]]) -> None:
        self.names = frozenset(names)
        self._open = opener

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        name = _normalize(name)
        if name not in self.names:
            raise _BadImage(f"{name} is missing")
        stream = self._open(name)
        try:
            yield stream
        finally:
            stream.close()

    def read(self, name: str) -> bytes:
        """A whole member: an index, manifest or config (never a layer), at most _MAX_DOCUMENT bytes."""
        with self.open(name) as stream:
            data = stream.read(_MAX_DOCUMENT + 1)
        if len(data) > _MAX_DOCUMENT:
            raise _BadImage(f"{name} is larger than {human_size(_MAX_DOCUMENT)}: not an image document")
        return data

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as error:
            raise _BadImage(f"{name} is not JSON ({error})") from error


class _BadImage(Exception):
    """The source is not a readable image; the message says what is wrong with it."""


@dataclass(frozen=True, kw_only=True)
class _Candidate:
    """One image the source holds: its platform, config and layers (store names)."""

    platform: str
    config: bytes
    layers: tuple[str, ...]


def read_image_path(path: Path, platform: str | None = None) -> ImageContents:
    """An OCI layout directory, or a docker-archive / OCI layout tar (plain or gzip), read."""
    if path.is_dir():
        if not (path / "index.json").is_file() and not (path / "manifest.json").is_file():
            raise UsageError(
                f"{path} is a directory but not an OCI image layout (no index.json)",
                hint="an image layout is out/<service>/oci; " + _INPUT_HINT,
            )
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        store = _Store(names, lambda name: (path / name).open("rb"))
        return _read_store(store, str(path), platform)
    if not path.is_file():
        raise UsageError(f"{path}: no such file or directory", hint=_INPUT_HINT)
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {_normalize(m.name): m for m in tar.getmembers() if m.isfile()}
            store = _Store(list(members), lambda name: _extract(tar, members[name]))
            return _read_store(store, str(path), platform)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UsageError(f"cannot read {path} as an image archive: {error}", hint=_INPUT_HINT) from error


def read_engine_image(reference: str, platform: str | None = None) -> ImageContents:
    """An image of the local engine, read from what `docker save` writes."""
    try:
        engine = Engine.connect()
    except EngineError as error:
        raise EngineError(
            f"{reference} is no file or directory, and {error.message[0].lower()}{error.message[1:]}",
            hint=error.hint,
        ) from error
    try:
        with tempfile.TemporaryFile() as archive:
            engine.save_image(reference, archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:") as tar:
                members = {_normalize(m.name): m for m in tar.getmembers() if m.isfile()}
                store = _Store(list(members), lambda name: _extract(tar, members[name]))
                return _read_store(store, reference, platform)
    except ImageMissing as error:
        raise UsageError(
            f"{reference}: no such file or directory, and {error.message}", hint=_INPUT_HINT
        ) from error


def _read_store(store: _Store, source: str, platform: str | None = None) -> ImageContents:
    """The image for `platform` in a layout or archive (default: the host's if there, else the first)."""
    try:
        candidates = _candidates(store)
        if not candidates:
            raise _BadImage("it lists no image (neither index.json nor manifest.json names one)")
        chosen = _choose(candidates, platform, source)
        config = json.loads(chosen.config)
        if not isinstance(config, dict):
            raise _BadImage("the image config is not a JSON object")
        files: dict[str, FileInfo] = {}
        budget = [_MAX_ELF_BYTES]
        for layer in chosen.layers:
            with store.open(layer) as stream:
                _apply_layer(files, stream, budget)
    except (_BadImage, ValueError, KeyError, TypeError, tarfile.TarError, OSError, EOFError) as error:
        raise UsageError(f"cannot read the image in {source}: {error}", hint=_INPUT_HINT) from error
    return ImageContents(
        source=source,
        image_id="sha256:" + hashlib.sha256(chosen.config).hexdigest(),
        platforms=tuple(sorted({c.platform for c in candidates})),
        settings=_settings(config),
        layers=len(chosen.layers),
        files=dict(sorted(files.items())),
    )


def _candidates(store: _Store) -> list[_Candidate]:
    """The images an OCI index.json lists or, failing that, Docker's legacy manifest.json."""
    if "index.json" in store.names:
        found = list(_from_index(store, store.json("index.json"), depth=0))
        if found:
            return found
    if "manifest.json" not in store.names:
        return []
    entries = store.json("manifest.json")
    if not isinstance(entries, list):
        raise _BadImage("manifest.json is not a list")
    candidates = []
    for entry in entries:
        config = store.read(entry["Config"])
        settings = _settings(json.loads(config))
        layers = tuple(_normalize(layer) for layer in entry["Layers"])
        candidates.append(_Candidate(platform=settings.platform, config=config, layers=layers))
    return candidates


def _from_index(store: _Store, index: Any, depth: int) -> Iterator[_Candidate]:
    """Every image an index lists, nested indexes included; manifests whose blob is absent are skipped."""
    if depth > 8 or not isinstance(index, dict):
        raise _BadImage("index.json is not an image index")
    for descriptor in index.get("manifests") or []:
        name = _blob_name(descriptor)
        if name not in store.names:
            continue
        media_type = descriptor.get("mediaType")
        if media_type in _INDEX_TYPES:
            yield from _from_index(store, store.json(name), depth + 1)
        elif media_type in _MANIFEST_TYPES:
            manifest = store.json(name)
            config = store.read(_blob_name(manifest["config"]))
            settings = _settings(json.loads(config))
            if settings.platform == "unknown/unknown":  # BuildKit attestations
                continue
            layers = tuple(_blob_name(layer) for layer in manifest.get("layers") or [])
            yield _Candidate(platform=settings.platform, config=config, layers=layers)


def _choose(candidates: Sequence[_Candidate], platform: str | None, source: str) -> _Candidate:
    available = ", ".join(sorted({c.platform for c in candidates}))
    if platform is not None:
        wanted = _normalize_platform(platform)
        match = next((c for c in candidates if _normalize_platform(c.platform) == wanted), None)
        if match is None:
            raise UsageError(
                f"{source} has no image for {platform}", hint=f"it holds: {available} (pass --platform P)"
            )
        return match
    host = host_platform()
    native = next((c for c in candidates if host and _normalize_platform(c.platform) == host.name), None)
    return native or candidates[0]


def _apply_layer(files: dict[str, FileInfo], stream: IO[bytes], budget: list[int]) -> None:
    """Apply one layer (tar, plain or gzip) over `files`: whiteouts delete, entries replace."""
    head = stream.read(4)
    if head.startswith(_ZSTD_MAGIC):
        raise _BadImage("zstd-compressed layers are not supported")
    stream.seek(0)
    source: IO[bytes] | gzip.GzipFile = (
        gzip.GzipFile(fileobj=stream) if head.startswith(_GZIP_MAGIC) else stream
    )
    with tarfile.open(fileobj=source, mode="r|") as layer:
        for member in layer:
            path = "/" + _normalize(member.name)
            if path == "/":
                continue
            directory, base = posixpath.split(path)
            if base == _OPAQUE:
                _remove_under(files, directory)
                continue
            if base.startswith(_WHITEOUT):
                gone = posixpath.join(directory, base[len(_WHITEOUT) :])
                files.pop(gone, None)
                _remove_under(files, gone)
                continue
            kind = _TAR_TYPES.get(member.type, FileType.FILE)
            previous = files.get(path)
            if (
                previous is not None
                and previous.type is FileType.DIRECTORY
                and kind is not FileType.DIRECTORY
            ):
                _remove_under(files, path)
            files[path] = _file_info(files, layer, member, path, kind, budget=budget)


def _file_info(
    files: Mapping[str, FileInfo],
    layer: tarfile.TarFile,
    member: tarfile.TarInfo,
    path: str,
    kind: FileType,
    *,
    budget: list[int],
) -> FileInfo:
    """The entry for one tar member. Only an ELF file's bytes are kept, never more than MAX_FILE_SIZE
    for one file nor, all files together, `budget[0]` (the bytes left for the image)."""
    data: bytes | None = None
    unread: str | None = None
    size = 0
    link = member.linkname or None
    if kind is FileType.FILE:
        extracted = layer.extractfile(member)
        size = member.size
        head = extracted.read(len(_ELF_MAGIC)) if extracted else b""
        if extracted is not None and head == _ELF_MAGIC:
            limit = human_size(MAX_FILE_SIZE if size > MAX_FILE_SIZE else _MAX_ELF_BYTES)
            if size > MAX_FILE_SIZE:
                unread = f"not verified: {human_size(size)}, more than the {limit} osless reads of a file"
            elif size > budget[0]:
                unread = f"not verified: the image's ELF files hold more than the {limit} osless reads"
            else:
                budget[0] -= size
                data = head + extracted.read(size)
    elif kind is FileType.HARDLINK:
        link = "/" + _normalize(member.linkname)
        target = files.get(link)
        data = target.data if target else None
        unread = target.unread if target else None
        size = target.size if target else 0
    return FileInfo(
        path=path,
        type=kind,
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        size=size,
        link=link,
        data=data,
        unread=unread,
    )


def _remove_under(files: dict[str, FileInfo], directory: str) -> None:
    prefix = directory.rstrip("/") + "/"
    for path in [p for p in files if p.startswith(prefix)]:
        del files[path]


def _settings(config: Any) -> ImageSettings:
    if not isinstance(config, dict):
        raise _BadImage("the image config is not a JSON object")
    runtime = config.get("config") or {}
    return ImageSettings(
        os=str(config.get("os") or "unknown"),
        architecture=str(config.get("architecture") or "unknown"),
        variant=config.get("variant") or None,
        created=config.get("created"),
        entrypoint=tuple(runtime.get("Entrypoint") or ()),
        cmd=tuple(runtime.get("Cmd") or ()),
        user=str(runtime.get("User") or ""),
        working_dir=str(runtime.get("WorkingDir") or ""),
        env=tuple(runtime.get("Env") or ()),
        labels=dict(runtime.get("Labels") or {}),
    )


# ---------------------------------------------------------------------------------------------------
# Checking images


def _verify_elves(
    contents: ImageContents, platform: Platform | None, policy: VerifyPolicy
) -> list[BinaryReport]:
    """verify_binary on every ELF in the image, each written to a temporary file first."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="osless-inspect-") as work:
        for number, entry in enumerate(contents.files.values()):
            if entry.data is None or not entry.data.startswith(_ELF_MAGIC):
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
    return PLATFORMS.get(_normalize_platform(settings.platform))


def _known_platform(name: str | None) -> Platform | None:
    if name is None:
        return None
    platform = PLATFORMS.get(_normalize_platform(name))
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
    raise UsageError(f"{path} is {kind}, not a regular file", hint=_INPUT_HINT)


def _looks_like_a_path(target: str) -> bool:
    """Only a path can start with `/`, `.` or `~`, or end in .tar: no use asking the engine."""
    return target.startswith(("/", ".", "~")) or target.endswith((".tar", ".tar.gz", ".tgz"))


def _is_image_archive(path: Path) -> bool:
    """A tar (plain or gzip) holding manifest.json or index.json at its top."""
    with path.open("rb") as file:
        head = file.read(4)
    if head == _ELF_MAGIC:
        return False
    try:
        with tarfile.open(path, "r:*") as tar:
            return any(_normalize(m.name) in ("manifest.json", "index.json") for m in tar)
    except (tarfile.TarError, OSError, EOFError):
        return False


# ---------------------------------------------------------------------------------------------------
# Printing


# Everything shown comes from the file or image (names, config values, labels, strings of the binary):
# it is printed as rich Text, never parsed as markup, so "[/x]" or "[bold]" shows as written.


def _print_binary(console: Console, report: BinaryReport) -> None:
    verdict, facts = report.verdict, report.verdict.facts
    console.print(Text.assemble((report.path, "bold"), ": ", _result(report.ok)), highlight=False)
    if facts is not None:
        console.print(
            Text(
                f"  platform: {facts.platform or 'unknown'}, {facts.machine_name}, "
                f"{facts.elf_class}-bit {'LSB' if facts.little_endian else 'MSB'}; "
                f"linkage: {facts.linkage.value}"
                + (f"; interpreter {facts.interpreter}" if facts.interpreter else "")
            ),
            highlight=False,
        )
    if report.go_version_m:
        console.file.write(report.go_version_m)  # tabs kept, byte for byte as `go version -m`
    console.print(_findings_table(verdict.findings))


def _print_image(console: Console, report: ImageReport) -> None:
    title = Text.assemble((report.source, "bold"), f" ({report.platform}): ", _result(report.ok))
    console.print(title, highlight=False)
    console.print(_settings_table(report))
    files = Table("mode", "type", "owner", "size", "path", title="files", title_justify="left")
    for row in report.files:
        files.add_row(
            row.permissions,
            row.type.value,
            f"{row.uid}:{row.gid}",
            str(row.size),
            Text(row.path + (f" -> {row.link}" if row.link else "")),
        )
    console.print(files)
    console.print(
        Text(
            f"total: {len(report.files)} entries, {report.total_size} bytes "
            f"({human_size(report.total_size)}) in regular files, {report.layers} layer(s)"
        ),
        highlight=False,
    )
    for binary in report.binaries:
        _print_binary(console, binary)
    if report.needs:
        console.print(Text("what the binaries need", "bold"))
        for need in report.needs:
            console.print(
                Text.assemble("  ", (need.message, "green" if need.provided else "red")), highlight=False
            )
    for problem in report.problems:
        console.print(Text.assemble(("✗", "red"), " ", problem), highlight=False)


def _result(ok: bool) -> Text:
    return Text("ok", "green") if ok else Text("FAIL", "red")


def _settings_table(report: ImageReport) -> Table:
    settings = report.settings
    table = Table("setting", "value", title="config", title_justify="left")
    rows = {
        "image id": report.image_id,
        "platform": settings.platform
        + (f" (source holds {', '.join(report.platforms)})" if len(report.platforms) > 1 else ""),
        "created": settings.created or "",
        "entrypoint": json.dumps(list(settings.entrypoint)),
        "cmd": json.dumps(list(settings.cmd)),
        "user": settings.user or "(root)",
        "working dir": settings.working_dir,
        "env": "\n".join(settings.env),
        "labels": "\n".join(f"{key}={value}" for key, value in sorted(settings.labels.items())),
    }
    for key, value in rows.items():
        table.add_row(key, Text(value))
    return table


def _findings_table(findings: Sequence[Finding]) -> Table:
    table = Table("severity", "id", "message", "hint", title_justify="left")
    colours = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "dim"}
    for finding in findings:
        table.add_row(
            Text(finding.severity.value, colours[finding.severity]),
            Text(finding.id),
            Text(finding.message),
            Text(finding.hint or ""),
        )
    return table


# ---------------------------------------------------------------------------------------------------
# Small helpers


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


def _normalize(name: str) -> str:
    """A member or blob name relative to the root: no `./`, no leading or trailing `/`."""
    normalized = posixpath.normpath("/" + name).lstrip("/")
    return "" if normalized == "." else normalized


def _blob_name(descriptor: Any) -> str:
    algorithm, _, digest = str(descriptor["digest"]).partition(":")
    if not digest or "/" in digest or "/" in algorithm:
        raise _BadImage(f"unsupported digest {descriptor['digest']!r}")
    return f"blobs/{algorithm}/{digest}"


def _platform_name(os: str, architecture: str, variant: str | None) -> str:
    return "/".join(part for part in (os, architecture, variant) if part)


def _normalize_platform(name: str) -> str:
    """linux/arm64/v8 is linux/arm64 (containerd treats them alike)."""
    return name.removesuffix("/v8") if name.startswith("linux/arm64") else name


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = tar.extractfile(member)
    if stream is None:
        raise _BadImage(f"{member.name} is not a regular file")
    return stream

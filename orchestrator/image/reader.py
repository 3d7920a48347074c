"""An image's file system, read without Docker's help: an OCI layout directory, a docker-archive or OCI
tar (plain or gzip), or an image of the local engine.

`read_image_path` and `read_engine_image` give `ImageContents`: the config's settings and every file
the layers leave (whiteouts applied), with ELF files' bytes kept for verification. `read_layer` reads
one layer tar the same way (reproduce compares two builds' layers with it). Only `read_engine_image`
talks to Docker, through the engine's `docker save` (Docker 20.10 writes the legacy format:
`manifest.json` with `<id>/layer.tar` paths; newer engines add an OCI `index.json`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
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

from orchestrator.elf.load import MAX_FILE_SIZE
from orchestrator.engine import Engine, ImageMissing
from orchestrator.errors import EngineError, UsageError
from orchestrator.image import oci
from orchestrator.outputs.sizes import human_size
from orchestrator.platforms import host_platform, platform_name

ELF_MAGIC = b"\x7fELF"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_INDEX_TYPES = frozenset({oci.MEDIA_TYPE_INDEX, oci.DOCKER_MEDIA_TYPE_MANIFEST_LIST})
_MANIFEST_TYPES = frozenset({oci.MEDIA_TYPE_MANIFEST, oci.DOCKER_MEDIA_TYPE_MANIFEST})
_MAX_DOCUMENT = 64 << 20  # an image's index, manifest or config (real ones: a few KiB)
MAX_ELF_BYTES = 2 * MAX_FILE_SIZE  # ELF bytes kept in memory for one image, all files together
INPUT_HINT = "pass a binary, an image tar, an OCI layout directory or a local image reference (docker images)"


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
    only within the read limits (MAX_FILE_SIZE per file, MAX_ELF_BYTES per image): `unread` then says
    why an ELF file's bytes were not kept. `link` is a link's target; `digest` the sha256 of a regular
    file's content (a hard link's: its target's), whatever its size.
    """

    path: str  # absolute, e.g. "/hello-go", "/etc"
    type: FileType
    mode: int  # permission bits, 0o7777
    uid: int
    gid: int
    size: int
    mtime: int = 0
    link: str | None = None
    digest: str | None = None
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
        return platform_name({"os": self.os, "architecture": self.architecture, "variant": self.variant})


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

    def has_file(self, path: str) -> bool:
        """Whether `path` (links followed) is a regular file."""
        entry = self.resolve(path)
        return entry is not None and entry.type in (FileType.FILE, FileType.HARDLINK)

    def has_directory(self, path: str, *, populated: bool = False) -> bool:
        """Whether `path` (links followed) is a directory and, with `populated`, holds a non-directory."""
        entry = self.resolve(path)
        if entry is None or entry.type is not FileType.DIRECTORY:
            return False
        prefix = path.rstrip("/") + "/"
        return not populated or any(
            p.startswith(prefix) and f.type is not FileType.DIRECTORY for p, f in self.files.items()
        )


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
                hint="an image layout is out/<service>/oci; " + INPUT_HINT,
            )
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        store = _Store(names, lambda name: (path / name).open("rb"))
        return _read_store(store, str(path), platform)
    if not path.is_file():
        raise UsageError(f"{path}: no such file or directory", hint=INPUT_HINT)
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {_normalize(m.name): m for m in tar.getmembers() if m.isfile()}
            store = _Store(list(members), lambda name: _extract(tar, members[name]))
            return _read_store(store, str(path), platform)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UsageError(f"cannot read {path} as an image archive: {error}", hint=INPUT_HINT) from error


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
            f"{reference}: no such file or directory, and {error.message}", hint=INPUT_HINT
        ) from error


def read_layer(data: bytes) -> dict[str, FileInfo]:
    """One layer tar (plain or gzip) on its own: its entries by path, with content digests, no ELF bytes."""
    files: dict[str, FileInfo] = {}
    _apply_layer(files, io.BytesIO(data), budget=[0])
    return dict(sorted(files.items()))


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
        budget = [MAX_ELF_BYTES]
        for layer in chosen.layers:
            with store.open(layer) as stream:
                _apply_layer(files, stream, budget)
    except (_BadImage, ValueError, KeyError, TypeError, tarfile.TarError, OSError, EOFError) as error:
        raise UsageError(f"cannot read the image in {source}: {error}", hint=INPUT_HINT) from error
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
        wanted = normalize_platform(platform)
        match = next((c for c in candidates if normalize_platform(c.platform) == wanted), None)
        if match is None:
            raise UsageError(
                f"{source} has no image for {platform}", hint=f"it holds: {available} (pass --platform P)"
            )
        return match
    host = host_platform()
    native = next((c for c in candidates if host and normalize_platform(c.platform) == host.name), None)
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
    digest: str | None = None
    size = 0
    link = member.linkname or None
    if kind is FileType.FILE:
        extracted = layer.extractfile(member)
        size = member.size
        content = hashlib.sha256()
        head = extracted.read(len(ELF_MAGIC)) if extracted else b""
        content.update(head)
        if extracted is not None and head == ELF_MAGIC:
            limit = human_size(MAX_FILE_SIZE if size > MAX_FILE_SIZE else MAX_ELF_BYTES)
            if size > MAX_FILE_SIZE:
                unread = f"not verified: {human_size(size)}, more than the {limit} osless reads of a file"
            elif size > budget[0]:
                unread = f"not verified: the image's ELF files hold more than the {limit} osless reads"
            else:
                budget[0] -= size
                data = head + extracted.read(size)
                content.update(data[len(head) :])
        while extracted is not None and data is None and (chunk := extracted.read(1 << 20)):
            content.update(chunk)
        digest = "sha256:" + content.hexdigest()
    elif kind is FileType.HARDLINK:
        link = "/" + _normalize(member.linkname)
        target = files.get(link)
        data = target.data if target else None
        unread = target.unread if target else None
        digest = target.digest if target else None
        size = target.size if target else 0
    return FileInfo(
        path=path,
        type=kind,
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        size=size,
        mtime=int(member.mtime),
        link=link,
        digest=digest,
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


def is_image_archive(path: Path) -> bool:
    """A tar (plain or gzip) holding manifest.json or index.json at its top."""
    with path.open("rb") as file:
        head = file.read(4)
    if head == ELF_MAGIC:
        return False
    try:
        with tarfile.open(path, "r:*") as tar:
            return any(_normalize(m.name) in ("manifest.json", "index.json") for m in tar)
    except (tarfile.TarError, OSError, EOFError):
        return False


# ---------------------------------------------------------------------------------------------------
# Small helpers


def _normalize(name: str) -> str:
    """A member or blob name relative to the root: no `./`, no leading or trailing `/`."""
    normalized = posixpath.normpath("/" + name).lstrip("/")
    return "" if normalized == "." else normalized


def _blob_name(descriptor: Any) -> str:
    algorithm, _, digest = str(descriptor["digest"]).partition(":")
    if not digest or "/" in digest or "/" in algorithm:
        raise _BadImage(f"unsupported digest {descriptor['digest']!r}")
    return f"blobs/{algorithm}/{digest}"


def normalize_platform(name: str) -> str:
    """linux/arm64/v8 is linux/arm64 (containerd treats them alike)."""
    return name.removesuffix("/v8") if name.startswith("linux/arm64") else name


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = tar.extractfile(member)
    if stream is None:
        raise _BadImage(f"{member.name} is not a regular file")
    return stream

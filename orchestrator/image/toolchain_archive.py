"""Toolchain images written by osless itself, so that the same inputs give the same image id everywhere.

`docker import` and `docker commit` stamp the current time into the image config: every machine got
another toolchain image id, hence other cache keys and image labels. Here the image is a `docker load`
archive osless writes: a canonical config (`created` and every mtime clamped to one fixed epoch) and
one layer, normalized from a tar stream:

- a bootstrap's layer is mmdebstrap's root filesystem tarball (made with SOURCE_DATE_EPOCH), re-written
  member by member (owner names and extended headers but xattrs dropped, mtimes clamped), without the
  two files mmdebstrap copies from the host (/etc/hostname, /etc/resolv.conf);
- a derived toolchain's layer (extends, libraries) is what its install container changed (the engine's
  diff), its files taken from the container's export, deleted paths as whiteouts, and logs and caches
  that record times or inodes left out.

Toolchain layers are 1-2 GB: the layer is written once to a file while its digest is computed, and the
archive is then produced as a stream of chunks (`archive_chunks`) that `docker load` consumes: memory
stays bounded by the chunk size. Docker 20.10 reads only the legacy `manifest.json`; a derived image's
archive names its base's layers there without carrying them (the engine has them: measured, `docker
load` looks a layer up by its chain id before opening its file).
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from orchestrator.errors import ToolchainError
from orchestrator.image.oci import canonical_json

CHUNK = 1024 * 1024
# Copied from the build machine by mmdebstrap (its manual says so); Docker bind-mounts its own anyway.
HOST_FILES = frozenset({"etc/hostname", "etc/resolv.conf"})
# Written by dpkg, apt and ldconfig with times, inode numbers or cache state in them: never in a layer.
UNSTABLE_FILES = (
    "var/log/*",
    "var/cache/ldconfig/aux-cache",
    "var/cache/apt/*.bin",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
)
CHANGE_MODIFIED, CHANGE_ADDED, CHANGE_DELETED = 0, 1, 2  # the engine's container diff kinds
WHITEOUT_PREFIX = ".wh."


@dataclass(frozen=True, kw_only=True)
class LayerFile:
    """A layer tar written to disk: its digest (the diff id, uncompressed) and size."""

    path: Path
    diff_id: str
    size: int


@dataclass(frozen=True, kw_only=True)
class Change:
    """One path the install container changed (`docker diff`), relative to the root."""

    path: str
    kind: int


class _HashingWriter:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._target.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def relative(name: str) -> str:
    """A member name or changed path as a normalized path relative to the root ("" for the root);
    ToolchainError for one that leaves it."""
    if ".." in name.split("/"):
        raise ToolchainError(
            f"the root filesystem names {name!r}, which leads outside it",
            hint="the tarball or the container's export is not a root filesystem osless can use",
        )
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def normalized(member: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    """A fresh header for `member`: relative names, numeric owners only, mtime clamped to `epoch`,
    no extended header but the file's xattrs (capabilities)."""
    info = tarfile.TarInfo(relative(member.name))
    info.type = member.type
    info.mode = member.mode
    info.uid, info.gid = member.uid, member.gid
    info.uname = info.gname = ""
    info.mtime = min(int(member.mtime), epoch)
    info.size = member.size if member.isreg() else 0
    if member.islnk():
        info.linkname = relative(member.linkname)
    elif member.issym():
        info.linkname = member.linkname
    info.devmajor, info.devminor = member.devmajor, member.devminor
    info.pax_headers = {
        key: value for key, value in sorted(member.pax_headers.items()) if key.startswith("SCHILY.xattr.")
    }
    return info


def _write_layer(into: Path, members: Iterable[tuple[tarfile.TarInfo, IO[bytes] | None]]) -> LayerFile:
    """The members written as an uncompressed PAX tar at `into`, hashed on the way."""
    with into.open("wb") as file:
        writer = _HashingWriter(file)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:  # type: ignore[call-overload]
            for info, data in members:
                tar.addfile(info, data)
                _forget(tar)
    return LayerFile(path=into, diff_id="sha256:" + writer.digest.hexdigest(), size=writer.size)


def rootfs_layer(tarball: Path, into: Path, epoch: int) -> LayerFile:
    """mmdebstrap's root filesystem tarball as a normalized layer at `into` (one streaming pass)."""

    def members() -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
        with tarfile.open(tarball, mode="r|") as source:
            for member in _streamed(source):
                path = relative(member.name)
                if not path or path in HOST_FILES:
                    continue
                yield normalized(member, epoch), source.extractfile(member) if member.isreg() else None

    return _write_layer(into, members())


def changes_layer(
    changes: Sequence[Change], export: IO[bytes], into: Path, epoch: int, leave_out: Sequence[str] = ()
) -> LayerFile:
    """What a container changed as a normalized layer at `into`: whiteouts for the deleted paths (only
    the topmost of a deleted tree), then the added and modified paths as the container's export (a tar
    stream of its whole filesystem, in the engine's walk order) has them; regular files matching
    UNSTABLE_FILES or `leave_out` (patterns on relative paths) are left out."""
    patterns = (*UNSTABLE_FILES, *leave_out)
    deleted = {relative(change.path) for change in changes if change.kind == CHANGE_DELETED}
    kept = {relative(change.path) for change in changes if change.kind != CHANGE_DELETED} - {""}
    topmost = sorted(path for path in deleted if not _under_any(path, deleted))

    def members() -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
        for path in topmost:
            parent, name = posixpath.split(path)
            whiteout = tarfile.TarInfo(posixpath.join(parent, WHITEOUT_PREFIX + name))
            whiteout.mode, whiteout.mtime = 0o644, epoch
            whiteout.uname = whiteout.gname = ""
            yield whiteout, None
        with tarfile.open(fileobj=export, mode="r|") as source:
            for member in _streamed(source):
                path = relative(member.name)
                if path not in kept:
                    continue
                if not member.isdir() and any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns):
                    continue
                yield normalized(member, epoch), source.extractfile(member) if member.isreg() else None

    return _write_layer(into, members())


def _streamed(source: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members of a tar opened in stream mode, forgotten once read: tarfile keeps every header it
    has seen (memory grows with the file count), and a stream is read once. Only a hard link's
    extraction would need them, and layers copy hard links as links."""
    while (member := source.next()) is not None:
        yield member
        _forget(source)


def _forget(tar: Any) -> None:
    """Empty tarfile's list of the headers it has seen (not in its typed interface): a root filesystem
    has ~10^5 of them."""
    tar.members.clear()


def _under_any(path: str, paths: set[str]) -> bool:
    parent = posixpath.dirname(path)
    while parent:
        if parent in paths:
            return True
        parent = posixpath.dirname(parent)
    return False


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_config(
    *,
    platform: Mapping[str, str],
    runtime: Mapping[str, Any],
    labels: Mapping[str, str],
    diff_ids: Sequence[str],
    history: Sequence[str],
    epoch: int,
) -> bytes:
    """The canonical image config: `platform` (OCI architecture, os, variant), the runtime settings
    (Env, Cmd, ... as Docker spells them; empty ones left out), labels, layers, one history entry per
    layer (`history` says what made each), every date `epoch`."""
    if len(history) != len(diff_ids):
        raise ValueError("one history entry per layer")
    created = rfc3339(epoch)
    settings = {key: value for key, value in runtime.items() if value and key != "Labels"}
    if labels:
        settings["Labels"] = dict(sorted(labels.items()))
    return canonical_json(
        {
            **dict(platform),
            "created": created,
            "config": settings,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [{"created": created, "created_by": what} for what in history],
        }
    )


def config_digest(config: bytes) -> str:
    """What Docker calls the image once loaded: the sha256 of its config."""
    return "sha256:" + hashlib.sha256(config).hexdigest()


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.GNU_FORMAT)  # GNU: sizes over 8 GiB too


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def archive_chunks(
    *, config: bytes, diff_ids: Sequence[str], layer: LayerFile | None, reference: str
) -> Iterator[bytes]:
    """A `docker load` archive of one image, as chunks: the new layer's file (when there is one; the
    last of `diff_ids`), the config, and the legacy manifest that names every layer by its diff id
    (the base's layers are not in the archive: the engine has them)."""
    manifest = canonical_json(
        [
            {
                "Config": _blob_path(config_digest(config)),
                "Layers": [_blob_path(d) for d in diff_ids],
                "RepoTags": [reference],
            }
        ]
    )
    if layer is not None:
        if not diff_ids or diff_ids[-1] != layer.diff_id:
            raise ValueError("the layer must be the config's last")
        yield _header(_blob_path(layer.diff_id), layer.size)
        with layer.path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk
        yield _padding(layer.size)
    for name, data in ((_blob_path(config_digest(config)), config), ("manifest.json", manifest)):
        yield _header(name, len(data)) + data + _padding(len(data))
    yield b"\0" * (2 * tarfile.BLOCKSIZE)

"""Write FROM-scratch images ourselves, as OCI image layouts, bit-identical across runs.

`docker build` is not reproducible (timestamps, hostnames, implicit directories), so osless assembles
the image bytes itself: one uncompressed USTAR layer, canonical JSON for config, manifest and index.
Uncompressed layers keep the digests independent of the zlib build; canonical JSON keeps them
independent of dict order and Python version.

Layout shape: `index.json` is itself the image index, listing one manifest per platform (sorted by
platform name), and the same bytes are also stored as a blob, so the index digest that `write_layout`
returns names a file in `blobs/sha256/` and can be pushed as is (registry digest == local digest).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from orchestrator.outputs.atomic import write_atomic
from orchestrator.platforms import PLATFORMS, Platform, platform_name

MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
# Docker's own types, which `docker save` and registries use for the same documents (read, never written).
DOCKER_MEDIA_TYPE_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MEDIA_TYPE_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER_MEDIA_TYPES = frozenset({MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER + "+gzip", MEDIA_TYPE_LAYER + "+zstd"})
OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
BLOBS_DIR = "blobs/sha256"
# A blob that no descriptor lists (the SBOM) is named by these index annotations: digest, media type.
SBOM_DIGEST_ANNOTATION = "dev.osless.sbom.digest"
SBOM_MEDIA_TYPE_ANNOTATION = "dev.osless.sbom.mediaType"
ANNOTATED_BLOBS = {SBOM_DIGEST_ANNOTATION: SBOM_MEDIA_TYPE_ANNOTATION}


def canonical_json(value: object) -> bytes:
    """The one JSON encoding used for every document, so equal content means equal digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """A regular file (or, with is_dir, a directory) in the image; parent directories are implied (0755)."""

    path: str  # absolute path in the image, e.g. "/hello-go"
    data: bytes = b""
    mode: int = 0o755
    is_dir: bool = False  # e.g. a writable /tmp (mode 0o1777)

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path.startswith("//") or self.path == "/":
            raise ValueError(f"image path must be absolute and name a file: {self.path!r}")
        if posixpath.normpath(self.path) != self.path:
            raise ValueError(f"image path must be normalized: {self.path!r}")
        if not 0 <= self.mode <= 0o7777:
            raise ValueError(f"mode out of range for {self.path}: {oct(self.mode)}")


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """What the image runs and how it is labelled; `created` is SOURCE_DATE_EPOCH."""

    platform: Platform
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    user: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    created: int = 0  # unix seconds


@dataclass(frozen=True, kw_only=True)
class Blob:
    """A content-addressed byte string with its media type."""

    media_type: str
    data: bytes

    @cached_property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def path(self) -> str:
        """Where the blob lives inside a layout: `blobs/sha256/<hex>`."""
        return _blob_path(self.digest)

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True, kw_only=True)
class Image:
    """One single-platform image: its manifest, config and layers."""

    config: Blob
    layers: tuple[Blob, ...]
    manifest: Blob
    platform: Platform

    def blobs(self) -> tuple[Blob, ...]:
        return (self.manifest, self.config, *self.layers)

    @property
    def digest(self) -> str:
        """The manifest digest: what a registry and an index call this image."""
        return self.manifest.digest

    @property
    def image_id(self) -> str:
        """The config digest: what Docker calls this image after `docker load`."""
        return self.config.digest

    @property
    def size(self) -> int:
        return sum(blob.size for blob in self.blobs())


def _ustar(files: Mapping[str, tuple[int, bytes | None]], mtime: int) -> bytes:
    """A tar of relative paths -> (mode, data or None for a directory), with explicit parents, in path order.

    USTAR only (no PAX headers), root-owned with empty owner names and one mtime: nothing in the
    bytes depends on the machine, the user or the clock.
    """
    directories = {path.rsplit("/", depth)[0] for path in files for depth in range(1, path.count("/") + 1)}
    clashes = sorted(path for path in directories & files.keys() if files[path][1] is not None)
    if clashes:
        raise ValueError(f"paths are both a file and a directory: {', '.join(clashes)}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8") as tar:
        for path in sorted(directories | files.keys()):
            info = tarfile.TarInfo(path)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            mode, data = files.get(path, (0o755, None))
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _config_json(config: ImageConfig, diff_ids: list[str]) -> dict[str, Any]:
    """The image config; empty settings are left out, Env is sorted so dict order cannot matter."""
    created = _rfc3339(config.created)
    runtime: dict[str, object] = {
        "Entrypoint": list(config.entrypoint),
        "Cmd": list(config.cmd),
        "User": config.user,
        "Env": [f"{key}={value}" for key, value in sorted(config.env.items())],
        "Labels": dict(config.labels),
    }
    return config.platform.oci_platform | {
        "created": created,
        "config": {key: value for key, value in runtime.items() if value} | {"WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "osless"}],
    }


def build_image(
    files: Sequence[FileEntry], config: ImageConfig, annotations: Mapping[str, str] | None = None
) -> Image:
    """One image with one uncompressed layer holding `files`; the same inputs give the same bytes."""
    paths = [entry.path for entry in files]
    duplicates = sorted({path for path in paths if paths.count(path) > 1})
    if duplicates:
        raise ValueError(f"duplicate image paths: {', '.join(duplicates)}")
    tree = {entry.path[1:]: (entry.mode, None if entry.is_dir else entry.data) for entry in files}
    layer = Blob(media_type=MEDIA_TYPE_LAYER, data=_ustar(tree, config.created))
    config_json = canonical_json(_config_json(config, [layer.digest]))
    config_blob = Blob(media_type=MEDIA_TYPE_CONFIG, data=config_json)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.descriptor()],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Image(
        config=config_blob,
        layers=(layer,),
        manifest=Blob(media_type=MEDIA_TYPE_MANIFEST, data=canonical_json(manifest)),
        platform=config.platform,
    )


def with_layer(image: Image, files: Sequence[FileEntry]) -> Image:
    """`image` with one more layer on top holding `files` (a smoke test's inputs); its config and
    annotations otherwise unchanged. The files shadow what the image has at their paths."""
    tree = {entry.path[1:]: (entry.mode, None if entry.is_dir else entry.data) for entry in files}
    layer = Blob(media_type=MEDIA_TYPE_LAYER, data=_ustar(tree, 0))
    config = json.loads(image.config.data)
    config["rootfs"]["diff_ids"].append(layer.digest)
    config["history"].append({"created": config.get("created", _rfc3339(0)), "created_by": "osless smoke"})
    config_blob = Blob(media_type=MEDIA_TYPE_CONFIG, data=canonical_json(config))
    manifest = json.loads(image.manifest.data)
    manifest["config"] = config_blob.descriptor()
    manifest["layers"].append(layer.descriptor())
    return Image(
        config=config_blob,
        layers=(*image.layers, layer),
        manifest=Blob(media_type=MEDIA_TYPE_MANIFEST, data=canonical_json(manifest)),
        platform=image.platform,
    )


def _index(images: Sequence[Image], annotations: Mapping[str, str] | None) -> Blob:
    """The image index: one manifest per platform, sorted by platform name."""
    names = [image.platform.name for image in images]
    if len(set(names)) != len(names):
        raise ValueError(f"one image per platform, got: {', '.join(sorted(names))}")
    index: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [
            image.manifest.descriptor(platform=image.platform.oci_platform)
            for image in sorted(images, key=lambda image: image.platform.name)
        ],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return Blob(media_type=MEDIA_TYPE_INDEX, data=canonical_json(index))


def _layout_files(
    images: Sequence[Image], annotations: Mapping[str, str] | None, blobs: Sequence[Blob] = ()
) -> tuple[str, dict[str, bytes]]:
    """The index digest and every file of the layout, keyed by relative path."""
    index = _index(images, annotations)
    files = {blob.path: blob.data for blob in blobs}
    files |= {blob.path: blob.data for image in images for blob in image.blobs()}
    files |= {index.path: index.data, "index.json": index.data, "oci-layout": canonical_json(OCI_LAYOUT)}
    return index.digest, files


def write_layout(
    directory: Path,
    images: Sequence[Image],
    annotations: Mapping[str, str] | None = None,
    blobs: Sequence[Blob] = (),
) -> str:
    """Write (or rewrite) an OCI image layout holding `images`; returns the index digest.

    `blobs` are stored beside the images' blobs without being listed in the index (e.g. the SBOM, which
    an index annotation names). Blobs left over from an earlier write are removed, so the directory
    holds exactly this layout.
    """
    digest, files = _layout_files(images, annotations, blobs)
    # index.json goes first and comes back last: while the layout is written (or when writing it
    # fails, e.g. a full disk) the directory is no valid layout, never a mix of two. Every file is
    # written atomically; blobs already there with the right name hold the right bytes.
    index = directory / "index.json"
    try:
        index.unlink(missing_ok=True)
        for relative, data in sorted(files.items()):
            if relative == "index.json":
                continue
            path = directory / relative
            if relative.startswith(BLOBS_DIR + "/") and path.is_file() and path.stat().st_size == len(data):
                continue  # content-addressed and written atomically: the same name, the same bytes
            write_atomic(path, data)
        for stale in (directory / BLOBS_DIR).iterdir():
            if stale.relative_to(directory).as_posix() not in files:
                stale.unlink()
        write_atomic(index, files["index.json"])
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # frees the space; nothing left looks valid
        raise
    return digest


def docker_archive(image: Image, repo_tags: Sequence[str]) -> bytes:
    """A tar that Docker 20.10 `docker load` accepts: the OCI layout plus the legacy manifest.json.

    20.10 ignores index.json and reads only manifest.json; newer engines read either. The archive is
    only a transport, so its entries get mtime 0 (the layer inside keeps SOURCE_DATE_EPOCH).
    """
    _, files = _layout_files([image], None)
    layers = [layer.path for layer in image.layers]
    legacy = {"Config": image.config.path, "RepoTags": list(repo_tags), "Layers": layers}
    files["manifest.json"] = canonical_json([legacy])
    return _ustar({path: (0o644, data) for path, data in files.items()}, mtime=0)


def read_archive(data: bytes) -> Image:
    """The image inside an archive written by `docker_archive`, with its blobs' bytes unchanged.

    Lets a cached target join its service's index without being rebuilt.
    """
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = {member.name: _member_bytes(tar, member) for member in tar.getmembers() if member.isfile()}

    def blob(descriptor: Mapping[str, Any]) -> Blob:
        return Blob(media_type=descriptor["mediaType"], data=files[_blob_path(descriptor["digest"])])

    (entry,) = json.loads(files["index.json"])["manifests"]
    manifest = blob(entry)
    layout = json.loads(manifest.data)
    name = platform_name(entry["platform"])
    return Image(
        config=blob(layout["config"]),
        layers=tuple(blob(layer) for layer in layout["layers"]),
        manifest=manifest,
        platform=PLATFORMS[name],
    )


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = tar.extractfile(member)
    return extracted.read() if extracted else b""


def _blob_path(digest: str) -> str:
    return f"{BLOBS_DIR}/{digest.removeprefix('sha256:')}"


def _read_json(path: Path, label: str, problems: list[str]) -> Any:
    """The parsed document, or None after recording why it could not be read."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        problems.append(f"{label}: cannot read JSON ({error})")
        return None


def _check_descriptor(
    directory: Path, where: str, descriptor: Any, media_types: frozenset[str], problems: list[str]
) -> Path | None:
    """Check one descriptor against its blob; the blob's path when it exists with the right size."""
    if not isinstance(descriptor, dict):
        problems.append(f"{where}: descriptor is not an object")
        return None
    media_type, digest, size = descriptor.get("mediaType"), descriptor.get("digest"), descriptor.get("size")
    if media_type not in media_types:
        problems.append(f"{where}: media type {media_type!r}, expected one of {sorted(media_types)}")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        problems.append(f"{where}: unsupported digest {digest!r}")
        return None
    path = directory / BLOBS_DIR / digest.removeprefix("sha256:")
    if not path.is_file():
        problems.append(f"{where}: blob {digest} is missing")
        return None
    if path.stat().st_size != size:
        problems.append(f"{where}: blob {digest} has {path.stat().st_size} bytes, descriptor says {size}")
        return None
    return path


def _check_manifest(directory: Path, where: str, path: Path, problems: list[str]) -> None:
    """Check an image manifest, its config and layers, and that diff_ids match uncompressed layers."""
    manifest = _read_json(path, where, problems)
    if not isinstance(manifest, dict):
        return
    if manifest.get("mediaType") != MEDIA_TYPE_MANIFEST:
        problems.append(f"{where}: manifest media type {manifest.get('mediaType')!r}")
    layers = manifest.get("layers") or []
    for number, layer in enumerate(layers):
        _check_descriptor(directory, f"{where} layer {number}", layer, LAYER_MEDIA_TYPES, problems)
    config_path = _check_descriptor(
        directory, f"{where} config", manifest.get("config"), frozenset({MEDIA_TYPE_CONFIG}), problems
    )
    config = _read_json(config_path, f"{where} config", problems) if config_path else None
    if isinstance(config, dict):
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        uncompressed = [layer.get("digest") for layer in layers if layer.get("mediaType") == MEDIA_TYPE_LAYER]
        if len(diff_ids) != len(layers) or (len(uncompressed) == len(layers) and diff_ids != uncompressed):
            problems.append(f"{where} config: rootfs.diff_ids do not match the layers")


def _check_index(directory: Path, where: str, index: Any, problems: list[str]) -> None:
    """Check an image index and, recursively, every manifest or index it lists."""
    if not isinstance(index, dict) or index.get("mediaType") != MEDIA_TYPE_INDEX:
        problems.append(f"{where}: not an OCI image index")
        return
    for number, descriptor in enumerate(index.get("manifests") or []):
        entry = f"{where} manifest {number}"
        path = _check_descriptor(
            directory, entry, descriptor, frozenset({MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX}), problems
        )
        if path is None:
            continue
        if descriptor["mediaType"] == MEDIA_TYPE_INDEX:
            _check_index(directory, entry, _read_json(path, entry, problems), problems)
            continue
        if not isinstance(descriptor.get("platform"), dict):
            problems.append(f"{entry}: no platform")
        _check_manifest(directory, entry, path, problems)


def _check_annotated_blobs(directory: Path, index: Any, problems: list[str]) -> None:
    """A blob that an index annotation names (see ANNOTATED_BLOBS) must exist, with its media type named."""
    annotations = index.get("annotations") if isinstance(index, dict) else None
    if not isinstance(annotations, dict):
        return
    for digest_key, media_type_key in sorted(ANNOTATED_BLOBS.items()):
        if digest_key not in annotations:
            continue
        where = f"index.json annotation {digest_key}"
        digest = annotations[digest_key]
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            problems.append(f"{where}: unsupported digest {digest!r}")
        elif not (directory / _blob_path(digest)).is_file():
            problems.append(f"{where}: blob {digest} is missing")
        if not annotations.get(media_type_key):
            problems.append(f"{where}: no {media_type_key} annotation")


def file_digest(path: Path) -> tuple[str, int]:
    """`sha256:<hex>` of a file's bytes and its size, read in chunks (a toolchain's layer is 1-2 GB)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while chunk := stream.read(1024**2):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def _check_blob_names(directory: Path, problems: list[str]) -> None:
    """Every blob's content must hash to its file name (this catches corrupted blobs)."""
    blobs = directory / BLOBS_DIR
    for path in sorted(blobs.iterdir()) if blobs.is_dir() else []:
        if file_digest(path)[0] != f"sha256:{path.name}":
            problems.append(f"{BLOBS_DIR}/{path.name}: content does not match its digest")


def verify_layout(directory: Path) -> list[str]:
    """Problems found in an OCI image layout; an empty list means it is valid and complete."""
    problems: list[str] = []
    if _read_json(directory / "oci-layout", "oci-layout", problems) not in (OCI_LAYOUT, None):
        problems.append(f"oci-layout: expected {OCI_LAYOUT}")
    index = _read_json(directory / "index.json", "index.json", problems)
    if index is not None:
        _check_index(directory, "index.json", index, problems)
        _check_annotated_blobs(directory, index, problems)
    _check_blob_names(directory, problems)
    return problems

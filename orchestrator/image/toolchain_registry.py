"""Toolchain images in a registry: pulled by a recipe's `image = "REGISTRY/REPO@sha256:..."` (or
`:tag`), published by `osless toolchain push`.

Why: a toolchain image bootstrapped once and pushed lets every other machine use the identical image
(the same image id, so the same cache keys and image digests) instead of bootstrapping its own.

Pull: through the engine (`docker pull`), with the inline credentials `docker login` stored (as
`osless push` uses them). The engine checks every blob against its digest; osless then checks that the
image it got is the one the recipe names (`@sha256:` must be among the image's RepoDigests) and records
the digest a `:tag` resolved to. A reference without a registry host (`gcc:14`, `team/builder:1`) is
never pulled: no registry is assumed reachable.

Push: `docker save` streamed into an OCI image layout on disk (never in memory: toolchain layers are
1-2 GB): the config's bytes unchanged (so the pulled image id is the local one) and each layer as the
uncompressed tar Docker saves, whose digest is its diff id. Docker 20.10 pulls such an index (OCI media
types, `application/vnd.oci.image.layer.v1.tar` layers). The layout is pushed byte for byte by
image/registry.py, so the digest printed for the recipe is the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import tarfile
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from orchestrator.engine import Engine, PullRefused
from orchestrator.errors import OslessError, ToolchainError, UsageError
from orchestrator.image import oci, registry

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_METADATA_LIMIT = 16 * 1024**2  # manifest.json and the config: a few KiB in practice
_CHUNK = 1024**2
_REFERENCE_HINT = (
    'e.g. image = "registry.example.com/team/gcc@sha256:<64 hex digits>" (the digest '
    "`osless toolchain push` prints) or a :tag"
)

PullProblem = Literal["unreachable", "unauthorized", "not found", "digest", "refused"]
Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class RemoteImage:
    """An image reference that names a registry host: `registry/repository[:tag][@sha256:...]`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def local(self) -> str:
        """How the engine names the image once pulled: by digest when pinned, else by tag."""
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag or 'latest'}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def remote_image(text: str) -> RemoteImage | None:
    """The reference parsed when its first component is a registry host (has a '.' or a ':port', or is
    localhost, as Docker decides), None for a local name such as `gcc:14`; UsageError when it names a
    registry but is not a valid reference or pins a digest other than sha256."""
    name, at, digest = text.partition("@")
    first, slash, _ = name.partition("/")
    if not slash or not registry.is_registry(first):
        return None
    if at and not DIGEST.fullmatch(digest):
        shown = digest if len(digest) <= 24 else digest[:20] + "..."
        raise UsageError(
            f"image {name}: {shown!r} is not a sha256 digest", hint="sha256: and 64 lowercase hex digits"
        )
    try:
        parsed = registry.parse_reference(name)
    except UsageError as error:
        raise UsageError(f"{text!r}: {error.message}", hint=_REFERENCE_HINT) from error
    return RemoteImage(
        registry=parsed.registry, repository=parsed.repository, tag=parsed.tag, digest=digest or None
    )


class PullFailed(ToolchainError):
    """A toolchain image could not be pulled, or is not the one the recipe names; `problem` says which
    (an unreachable registry lets a toolchain with a bootstrap section bootstrap instead)."""

    def __init__(self, message: str, *, problem: PullProblem, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class Pulled:
    """A registry toolchain image in the engine: its id and `REPO@sha256:...` as the registry has it."""

    image_id: str
    reference: str  # what containers are created from (RemoteImage.local)
    repo_digest: str | None  # None only for an image tagged locally that no registry gave


def provide(engine: Engine, remote: RemoteImage, progress: Progress) -> Pulled:
    """The image in the engine: already there (by digest when pinned), else pulled; its digest checked."""
    image_id = engine.image_id(remote.local)
    pulled = image_id is None
    if image_id is None:
        image_id = _pull(engine, remote, progress)
    digests = [d for d in engine.repo_digests(image_id) if d.startswith(f"{remote.name}@")]
    if remote.digest and f"{remote.name}@{remote.digest}" not in digests:
        raise PullFailed(
            f"{remote} was pulled but the image's digests are {', '.join(digests) or 'none'}",
            problem="digest",
            hint="the registry served another image than the recipe pins: check the registry",
        )
    chosen = f"{remote.name}@{remote.digest}" if remote.digest else (digests[0] if digests else None)
    if pulled:
        progress(f"pulled {chosen or remote} ({image_id[7:19]})")
    return Pulled(image_id=image_id, reference=remote.local, repo_digest=chosen)


def _pull(engine: Engine, remote: RemoteImage, progress: Progress) -> str:
    """`docker pull` with the docker config's inline credentials for the registry: the image id."""
    progress(f"pulling {remote}")
    credentials = registry.docker_credentials(
        registry.Reference(registry=remote.registry, repository=remote.repository)
    )
    try:
        engine.pull_image(
            remote.name,
            remote.digest or remote.tag or "latest",
            credentials={"username": credentials.username, "password": credentials.password}
            if credentials
            else None,
            progress=progress,
        )
    except PullRefused as error:
        raise _pull_failure(remote, error.reason) from error
    image_id = engine.image_id(remote.local)
    if image_id is None:
        raise PullFailed(f"the engine pulled {remote} but has no image by that name", problem="refused")
    return image_id


# Words of the engine's (Go's) errors, checked in this order: a connection error's text names the
# address, so its tokens are specific ones, and no status number is matched (a port could hold it).
_UNREACHABLE = (
    "dial tcp", "connection refused", "no such host", "i/o timeout", "network is unreachable",
    "http response to https client", "x509", "tls handshake", "connection reset", "request canceled",
)  # fmt: skip
_UNAUTHORIZED = ("unauthorized", "authentication required", "no basic auth credentials", "denied")
_NOT_FOUND = ("manifest unknown", "not found", "name unknown")


def _pull_failure(remote: RemoteImage, reason: str) -> PullFailed:
    """The engine's pull error sorted into what the user must fix, with a hint for each."""
    text = reason.lower()
    if any(word in text for word in _UNREACHABLE):
        return PullFailed(
            f"cannot pull {remote}: the engine cannot reach {remote.registry}: {reason}",
            problem="unreachable",
            hint="is the registry running and reachable from the engine's machine? A plain-http registry "
            "outside 127.0.0.0/8 must be in the engine's insecure-registries",
        )
    if any(word in text for word in _UNAUTHORIZED):
        return PullFailed(
            f"{remote.registry} refused to serve {remote.name}: {reason}",
            problem="unauthorized",
            hint=f"log in with `docker login {remote.registry}` (osless passes its inline credentials "
            f"from {registry.docker_config_path()} to the engine)",
        )
    if any(word in text for word in _NOT_FOUND):
        what = f"digest {remote.digest}" if remote.digest else f"tag {remote.tag or 'latest'}"
        return PullFailed(
            f"{remote.name} has no {what} in {remote.registry}",
            problem="not found",
            hint="check the reference: `osless toolchain push NAME --to REGISTRY/REPO` prints the one "
            "to put in the recipe",
        )
    return PullFailed(f"cannot pull {remote}: {reason}", problem="refused")


def write_layout(engine: Engine, reference: str, directory: Path) -> str:
    """The local image `reference` as an OCI image layout in `directory` (created, empty), written as
    `docker save` streams it; returns the index digest (what a registry names the pushed image by).

    Refuses (ToolchainError) an image whose saved config is not its id or whose layers are not its
    diff ids: the pulled image would not be the local one."""
    image_id = engine.image_id(reference)
    if image_id is None:
        raise ToolchainError(f"no image {reference} in the engine")
    blobs = directory / oci.BLOBS_DIR
    blobs.mkdir(parents=True)
    saved = _save_into(engine, reference, blobs)
    if len(saved.manifest) != 1 or not isinstance(saved.manifest[0], dict):
        raise ToolchainError(f"docker save of {reference} holds {len(saved.manifest)} images, not one")
    entry = saved.manifest[0]
    config = saved.file(str(entry.get("Config")))
    if config.digest != image_id:
        raise ToolchainError(f"docker save of {reference} wrote config {config.digest}, not {image_id}")
    document = json.loads((blobs / config.digest.removeprefix("sha256:")).read_bytes())
    diff_ids = list((document.get("rootfs") or {}).get("diff_ids") or [])
    layers = [saved.file(str(path)) for path in entry.get("Layers") or []]
    if [layer.digest for layer in layers] != diff_ids:
        raise ToolchainError(
            f"the layers docker save wrote for {reference} are not the image's diff ids",
            hint="the engine re-encoded them; osless cannot push this image byte for byte",
        )
    manifest = oci.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_TYPE_MANIFEST,
            "config": {"mediaType": oci.MEDIA_TYPE_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [
                {"mediaType": oci.MEDIA_TYPE_LAYER, "digest": layer.digest, "size": layer.size}
                for layer in layers
            ],
        }
    )
    manifest_digest = _write_blob(blobs, manifest)
    platform = {"architecture": str(document.get("architecture")), "os": str(document.get("os"))}
    if document.get("variant"):
        platform["variant"] = str(document["variant"])
    index = oci.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_TYPE_INDEX,
            "manifests": [
                {
                    "mediaType": oci.MEDIA_TYPE_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": platform,
                }
            ],
        }
    )
    (directory / "index.json").write_bytes(index)
    (directory / "oci-layout").write_bytes(oci.canonical_json(oci.OCI_LAYOUT))
    referenced = {config.digest, manifest_digest, *(layer.digest for layer in layers)}
    for path in blobs.iterdir():  # blobs of what the layout does not list (other files of the save)
        if f"sha256:{path.name}" not in referenced:
            path.unlink()
    return "sha256:" + hashlib.sha256(index).hexdigest()


@dataclass(frozen=True, kw_only=True)
class _Blob:
    digest: str
    size: int


@dataclass(frozen=True, kw_only=True)
class _Saved:
    """What a `docker save` stream held: its manifest.json, and each regular file (by path) as a blob,
    symbolic links (a layer saved twice) resolved."""

    manifest: list[Any]
    files: dict[str, _Blob]
    links: dict[str, str]

    def file(self, path: str) -> _Blob:
        for _ in range(8):  # links to links, but never a loop
            if path not in self.links:
                break
            path = self.links[path]
        if path not in self.files:
            raise ToolchainError(f"docker save's manifest names {path!r}, which the archive does not hold")
        return self.files[path]


def _save_into(engine: Engine, reference: str, blobs: Path) -> _Saved:
    """`docker save` read as a stream (a pipe fed by a thread): every regular file hashed into `blobs`
    as it arrives, so memory stays bounded whatever the layers' size."""
    read_end, write_end = os.pipe()
    failure: list[BaseException] = []

    def save() -> None:
        try:
            with os.fdopen(write_end, "wb") as sink:
                engine.save_image(reference, sink)
        except (OslessError, OSError) as error:  # a broken pipe: the reader stopped first
            failure.append(error)

    writer = threading.Thread(target=save, daemon=True, name="osless-save")
    writer.start()
    files: dict[str, _Blob] = {}
    links: dict[str, str] = {}
    manifest: list[Any] = []
    try:
        with os.fdopen(read_end, "rb") as source, tarfile.open(fileobj=source, mode="r|") as tar:
            for member in tar:
                name = posixpath.normpath(member.name)
                if member.issym():
                    links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                elif member.isreg():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    if name == "manifest.json":
                        manifest = _json_list(extracted, member.size)
                    else:
                        files[name] = _stream_blob(blobs, extracted)
            while source.read(_CHUNK):  # what follows the archive's end: the writer finishes its writes
                pass
    except tarfile.TarError as error:
        raise ToolchainError(f"docker save of {reference} is not a readable archive ({error})") from error
    finally:
        writer.join(timeout=60)  # the read end is closed: a writer still going fails on its next write
    if failure:
        if isinstance(failure[0], OslessError):
            raise failure[0]
        raise ToolchainError(f"docker save of {reference} failed: {failure[0]}")
    return _Saved(manifest=manifest, files=files, links=links)


def _json_list(stream: IO[bytes], size: int) -> list[Any]:
    if size > _METADATA_LIMIT:
        raise ToolchainError(f"docker save wrote a manifest.json of {size} bytes")
    try:
        value = json.loads(stream.read())
    except ValueError as error:
        raise ToolchainError(f"docker save wrote an unreadable manifest.json ({error})") from error
    return value if isinstance(value, list) else []


def _stream_blob(blobs: Path, stream: IO[bytes]) -> _Blob:
    """Copy a stream into blobs/ under its sha256, hashing as it goes."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=blobs, prefix=".partial-", delete=False) as partial:
        try:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                partial.write(chunk)
                size += len(chunk)
        except BaseException:
            Path(partial.name).unlink(missing_ok=True)
            raise
    os.replace(partial.name, blobs / digest.hexdigest())
    return _Blob(digest=f"sha256:{digest.hexdigest()}", size=size)


def _write_blob(blobs: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}"

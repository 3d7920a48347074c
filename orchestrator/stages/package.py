"""Stage 4: put the verified binary alone into a scratch image, written by osless itself.

Writing the OCI image directly (instead of `docker build`) is what makes the bytes depend only on the
inputs, and what lets one service's platforms be gathered into one multi-arch index. Each image is also
loaded into the local engine, under a per-platform tag, for the smoke test: a step of its own (`load`),
timed apart from writing the image.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.engine import Engine
from orchestrator.image import oci
from orchestrator.outputs.atomic import write_atomic
from orchestrator.pipeline.provenance import Provenance
from orchestrator.platforms import Platform
from orchestrator.recipe.model import Service


@dataclass(frozen=True, kw_only=True)
class PackageResult:
    """The image built for one target and the tag it has in the local engine."""

    image: oci.Image
    tag: str


ARCHIVE = "image.tar"  # in out/<service>/<platform>/
LOAD_CHUNK = 1024**2
# Which toolchain image built the binary: the image id pins compiler and libc versions.
TOOLCHAIN_ANNOTATION = "dev.osless.toolchain.image"


def image_tag(service: Service, platform: Platform) -> str:
    """`<repository>:<tag>-<arch>`: Docker 20.10 holds one platform per tag."""
    return f"{service.image.repository}:{service.image.tag}-{platform.tag_suffix}"


def image_annotations(service: Service, provenance: Provenance) -> dict[str, str]:
    """The OCI annotations (and labels) that say what the image is and where it comes from."""
    created = datetime.datetime.fromtimestamp(provenance.source_date_epoch, tz=datetime.timezone.utc)
    values = {
        "org.opencontainers.image.title": service.name,
        "org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.version": service.image.tag,
        "org.opencontainers.image.base.name": "scratch",
    }
    if provenance.revision:
        values["org.opencontainers.image.revision"] = provenance.revision
    if provenance.source_url:
        values["org.opencontainers.image.source"] = provenance.source_url
    return values


def build_image(
    service: Service,
    platform: Platform,
    binary: Path,
    provenance: Provenance,
    *,
    toolchain_image_id: str,
    extras: Sequence[oci.FileEntry] = (),
) -> oci.Image:
    """The scratch image for one target: the binary at /<output>, the recipe's extras, its config."""
    annotations = {**image_annotations(service, provenance), TOOLCHAIN_ANNOTATION: toolchain_image_id}
    labels = {**annotations, **service.image.labels}
    config = oci.ImageConfig(
        platform=platform,
        entrypoint=service.image.entrypoint,
        cmd=service.image.cmd,
        user=service.image.user,
        env=service.image.env,
        labels=labels,
        created=provenance.source_date_epoch,
    )
    files = [oci.FileEntry(path=f"/{service.build.output}", data=binary.read_bytes(), mode=0o755), *extras]
    return oci.build_image(files, config, annotations=annotations)


def package(
    service: Service,
    *,
    platform: Platform,
    binary: Path,
    provenance: Provenance,
    output_dir: Path,
    toolchain_image_id: str,
    extras: Sequence[oci.FileEntry] = (),
) -> PackageResult:
    """Build the image and keep its `docker load` archive, tagged, in output_dir (image.tar)."""
    image = build_image(
        service, platform, binary, provenance, toolchain_image_id=toolchain_image_id, extras=extras
    )
    tag = image_tag(service, platform)
    write_atomic(output_dir / ARCHIVE, oci.docker_archive(image, [tag]))
    return PackageResult(image=image, tag=tag)


def load(engine: Engine, output_dir: Path) -> None:
    """Load the target's image.tar into the engine (under its tag), streamed from the file just written:
    the archive is never held in memory while its target waits for its smoke test."""
    with open(output_dir / ARCHIVE, "rb") as archive:
        engine.load_archive(iter(functools.partial(archive.read, LOAD_CHUNK), b""))


def write_service_layout(
    service: Service,
    images: Sequence[oci.Image],
    out_root: Path,
    provenance: Provenance,
    sbom: oci.Blob | None = None,
) -> str:
    """One OCI image layout per service, its index listing every platform that passed; returns its digest.

    An SBOM is stored as a blob of the layout and named by two index annotations (its digest and media
    type): the index's manifests stay the platform images, which is all that Docker 20.10 reads.
    """
    annotations = image_annotations(service, provenance)
    if sbom is not None:
        annotations[oci.SBOM_DIGEST_ANNOTATION] = sbom.digest
        annotations[oci.SBOM_MEDIA_TYPE_ANNOTATION] = sbom.media_type
    return oci.write_layout(
        out_root / service.name / "oci",
        images,
        annotations=annotations,
        blobs=(sbom,) if sbom is not None else (),
    )

"""Per-service outputs: one OCI layout over the platforms that passed every stage, with its SBOM; then
the passed targets' result.json (a target is reusable only once all it contributes is on disk).

A service whose SBOM or layout cannot be written (disk full, engine gone, a bug of ours) gets no layout
(none that looks valid is left) and its targets fail at package with the reason; the others go on.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.engine import Engine
from orchestrator.errors import OslessError
from orchestrator.image import oci
from orchestrator.outputs import sbom as sbom_stage
from orchestrator.outputs.progress import ProgressView
from orchestrator.outputs.report import ServiceImage, Status, TargetReport
from orchestrator.pipeline import cache
from orchestrator.pipeline.provenance import Provenance
from orchestrator.pipeline.target import internal_error, os_reason
from orchestrator.pipeline.targets import Target
from orchestrator.recipe.model import Service
from orchestrator.stages import package as package_stage
from orchestrator.stages.build import RECORDS_DIR
from orchestrator.stages.toolchain import ToolchainImage


@dataclass(frozen=True, kw_only=True)
class BuiltTarget:
    """A target that passed every stage: what its service's OCI layout and SBOM are made of."""

    target: Target
    image: oci.Image
    binary: Path
    key: str | None  # its cache key


def write_layouts(
    targets: Sequence[Target],
    reports: Sequence[TargetReport],
    *,
    images: Mapping[str, oci.Image],
    keys: Mapping[str, str | None],
    unsaved: Mapping[str, tuple[Path, str]],
    engine_for: Callable[[Target], Engine],
    toolchain_for: Callable[[Target], ToolchainImage | OslessError],
    provenance: Mapping[str, Provenance],
    out_root: Path,
    view: ProgressView,
) -> tuple[list[ServiceImage], list[TargetReport]]:
    """Each service's layout and SBOM, then the result.json of its targets in `unsaved` (passed, not
    reused: keyed by target name with their output directory and key); the reports, in target order,
    with the targets of a service whose layout failed failed at package."""
    by_name = {f"{r.service} {r.platform}": r for r in reports}
    written = []
    for service in {t.service.name: t.service for t in targets}.values():
        built = [
            BuiltTarget(target=t, image=images[t.name], binary=Path(binary.path), key=keys[t.name])
            for t in targets
            if t.service is service
            and by_name[t.name].status is Status.PASSED
            and (binary := by_name[t.name].binary) is not None
        ]
        if not built:
            continue
        try:
            sbom = sbom_stage.write_service_sbom(
                engine_for(built[0].target),
                service,
                toolchain=toolchain_for(built[0].target),
                binaries=sbom_binaries(built),
                provenance=provenance[service.name],
                out_root=out_root,
                inputs_key=sbom_inputs_key(built),
            )
            written.append(
                write_service_image(
                    service, built, provenance=provenance[service.name], out_root=out_root, sbom=sbom
                )
            )
            for b in built:
                if b.target.name in unsaved:
                    output_dir, key = unsaved[b.target.name]
                    cache.save(output_dir, key, by_name[b.target.name])
        except Exception as error:
            reason = _failure_reason(error, out_root / service.name)
            for b in built:
                with contextlib.suppress(OSError):
                    (b.target.output_dir(out_root) / cache.RESULT_FILE).unlink(missing_ok=True)
                view.step(b.target.name, f"failed at package: {reason}", done=True)
                by_name[b.target.name] = replace(
                    by_name[b.target.name], status=Status.FAILED, failed_stage="package", reason=reason
                )
    return written, [by_name[t.name] for t in targets]


def _failure_reason(error: Exception, service_dir: Path) -> str:
    """Why a service's layout is not written; a bug of ours leaves its traceback beside the layout."""
    layout = service_dir / "oci"
    if isinstance(error, OSError):
        return f"cannot write the OCI layout: {os_reason(error, layout)}"
    if isinstance(error, OslessError):
        return f"cannot write the OCI layout {layout}: {error.message}"
    return f"cannot write the OCI layout {layout}: {internal_error(error, service_dir)}"


def sbom_binaries(built: Sequence[BuiltTarget]) -> list[sbom_stage.PlatformBinary]:
    return [
        sbom_stage.PlatformBinary(
            platform=b.target.platform,
            path=b.binary,
            image_digest=b.image.digest,
            records=b.binary.parent.parent / RECORDS_DIR,  # out/<service>/<platform>/bin/<output>
        )
        for b in built
    ]


def sbom_inputs_key(built: Sequence[BuiltTarget]) -> str:
    """What a service's SBOM is made of: its targets' cache keys (an SBOM made from the same is reused)."""
    return hashlib.sha256("\n".join(f"{b.target.name} {b.key}" for b in built).encode()).hexdigest()


def write_service_image(
    service: Service,
    built: Sequence[BuiltTarget],
    *,
    provenance: Provenance,
    out_root: Path,
    sbom: tuple[Path, oci.Blob],
) -> ServiceImage:
    """The service's OCI layout in out_root over the built targets (in target order), with its SBOM."""
    sbom_path, sbom_blob = sbom
    digest = package_stage.write_service_layout(
        service, [b.image for b in built], out_root, provenance, sbom=sbom_blob
    )
    return ServiceImage(
        service=service.name,
        layout=str(out_root / service.name / "oci"),
        index_digest=digest,
        platforms=[b.target.platform.name for b in built],
        sbom=str(sbom_path),
    )

"""Per-service outputs: one OCI layout over the platforms that passed every stage, with its SBOM; then
the passed targets' result.json (a target is reusable only once all it contributes is on disk).

A service whose SBOM or layout cannot be written (disk full, engine gone, a bug of ours) gets no layout
(none that looks valid is left) and its targets fail at package with the reason; the others go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
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


class ServiceLayouts:
    """Each service's layout and SBOM, written as soon as its last target has its outcome, on one writer
    thread while other services still build; then the result.json of its targets in `unsaved` (passed,
    not reused). A written service's images are dropped: a run holds only those of unfinished services.

    `images`, `keys` and `unsaved` are the target stages' records (filled before a target's outcome).
    `finish` waits for the writer and gives the layouts and every report, in target order, with the
    targets of a service whose layout failed failed at package; `abandon` drops what is not written.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        images: dict[str, oci.Image],
        keys: Mapping[str, str | None],
        unsaved: Mapping[str, tuple[Path, str]],
        engine_for: Callable[[Target], Engine],
        toolchain_for: Callable[[Target], ToolchainImage | OslessError],
        provenance: Mapping[str, Provenance],
        out_root: Path,
        view: ProgressView,
    ) -> None:
        self.targets = targets
        self.images = images
        self.keys = keys
        self.unsaved = unsaved
        self.engine_for = engine_for
        self.toolchain_for = toolchain_for
        self.provenance = provenance
        self.out_root = out_root
        self.view = view
        self._service_of = {t.name: t.service for t in targets}
        self._waiting = Counter(t.service.name for t in targets)  # service -> targets without an outcome
        self._reports: dict[str, TargetReport] = {}  # target name -> its outcome (package failures applied)
        self._written: dict[str, Future[ServiceImage | None]] = {}
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="osless-layout")

    def outcome(self, name: str, report: TargetReport) -> None:
        """A target's outcome; its service's layout is queued once the service has them all."""
        service = self._service_of[name]
        with self._lock:
            if name in self._reports:
                return
            self._reports[name] = report
            self._waiting[service.name] -= 1
            if self._waiting[service.name] == 0:
                self._written[service.name] = self._writer.submit(self._write, service)

    def finish(self, reports: Sequence[TargetReport]) -> tuple[list[ServiceImage], list[TargetReport]]:
        """Every layout written (a report not given to `outcome` yet is given now); the layouts in service
        order and the reports in target order."""
        for target, report in zip(self.targets, reports, strict=True):
            self.outcome(target.name, report)
        self._writer.shutdown(wait=True)
        written = [
            image
            for service in dict.fromkeys(t.service.name for t in self.targets)
            if service in self._written and (image := self._written[service].result()) is not None
        ]
        return written, [self._reports[t.name] for t in self.targets]

    def wait(self) -> None:
        """Until the layouts queued so far are written (their SBOMs run containers of this run)."""
        with self._lock:
            queued = list(self._written.values())
        futures.wait(queued)

    def abandon(self) -> None:
        """An interrupted run: layouts not started are dropped, the one being written is finished."""
        self._writer.shutdown(wait=True, cancel_futures=True)

    def _write(self, service: Service) -> ServiceImage | None:
        """One service's SBOM and layout, then its targets' result.json; its targets failed at package
        when they cannot be written."""
        with self._lock:
            passed = [
                (t, Path(report.binary.path))
                for t in self.targets
                if t.service is service
                and (report := self._reports[t.name]).status is Status.PASSED
                and report.binary is not None
            ]
            built = [
                BuiltTarget(target=t, image=self.images.pop(t.name), binary=binary, key=self.keys[t.name])
                for t, binary in passed
            ]
        if not built:
            return None
        try:
            sbom = sbom_stage.write_service_sbom(
                self.engine_for(built[0].target),
                service,
                toolchain=self.toolchain_for(built[0].target),
                binaries=sbom_binaries(built),
                provenance=self.provenance[service.name],
                out_root=self.out_root,
                inputs_key=sbom_inputs_key(built),
            )
            image = write_service_image(
                service, built, provenance=self.provenance[service.name], out_root=self.out_root, sbom=sbom
            )
            for b in built:
                if b.target.name in self.unsaved:
                    output_dir, key = self.unsaved[b.target.name]
                    cache.save(output_dir, key, self._reports[b.target.name])
        except Exception as error:
            reason = _failure_reason(error, self.out_root / service.name)
            for b in built:
                with contextlib.suppress(OSError):
                    (b.target.output_dir(self.out_root) / cache.RESULT_FILE).unlink(missing_ok=True)
                self.view.step(b.target.name, f"failed at package: {reason}", done=True)
                with self._lock:
                    self._reports[b.target.name] = replace(
                        self._reports[b.target.name],
                        status=Status.FAILED,
                        failed_stage="package",
                        reason=reason,
                    )
            return None
        return image


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

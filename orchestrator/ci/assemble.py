"""`osless assemble`: output directories built on different machines merged into what one build writes.

Each input is an `out/` directory of a partial build (a shard, a platform, downloaded CI artifacts):
its report.json, and per target `<service>/<os-arch>/` with image.tar, bin/, result.json and the
logs. The merge writes into one output directory:

- every target's directory, copied, with the paths in its result and report entries pointing there;
- one OCI layout per service over every platform that passed, with its SBOM: the same code as a
  build (`pipeline.services.write_service_image`), from the same images (read back from image.tar unchanged)
  in the same order, so the index digest and the SBOM bytes are those of a single build;
- report.json (and its views) over all the targets, in build order. `started` is the earliest
  input's, `seconds` the longest input's (the inputs ran side by side).

A service's SBOM is made from its targets' cache keys (`pipeline.services.sbom_inputs_key`): when an input
built all of a service's platforms, its SBOM is that SBOM and is copied. A service split between
inputs gets its SBOM made here, which reads the toolchain image's package list in the engine: the
image the targets were built with when the engine has it, else the toolchain as provisioned here
(bootstrapped when missing: toolchain images are reproducible, so from the same recipe and lock this is
the same image id; a note only when it is not).

Images must come from the source this checkout holds: each image's annotations (revision, created)
are compared with this checkout's provenance, which the index annotations are made from.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.engine import Engine
from orchestrator.errors import UsageError
from orchestrator.image import oci
from orchestrator.outputs import sbom as sbom_stage
from orchestrator.outputs.atomic import write_atomic
from orchestrator.outputs.report import (
    REPORT_SCHEMA,
    RunReport,
    ServiceImage,
    Status,
    TargetReport,
    Unsupported,
    write_json,
)
from orchestrator.outputs.writers import write_run_files
from orchestrator.pipeline import cache
from orchestrator.pipeline.provenance import Provenance, provenance
from orchestrator.pipeline.services import (
    BuiltTarget,
    sbom_binaries,
    sbom_inputs_key,
    write_service_image,
)
from orchestrator.pipeline.targets import Target, select_targets
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import Project, Service
from orchestrator.stages.package import image_annotations
from orchestrator.stages.toolchain import TOOLCHAIN_WORK_DIR, ToolchainImage, provision

Note = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class _Input:
    """One output directory to merge, with its report."""

    root: Path
    report: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class _Found:
    """A target as one input recorded it."""

    target: Target
    source: _Input
    entry: dict[str, Any]  # its report.json entry, paths rewritten to the output directory


def assemble(
    project: Project,
    inputs: Sequence[Path],
    out_root: Path,
    *,
    connect: Callable[[], Engine] = Engine.connect,
    note: Note = lambda message: None,
) -> RunReport:
    """Merge the output directories `inputs` into out_root; returns (and writes) the merged report.

    `connect` is called only when a service's SBOM has to be made here (the engine reads the
    toolchain's packages); `note` receives what the caller should tell people.
    """
    return _Assembly(project, [_read_input(path) for path in inputs], out_root, connect, note).run()


class _Assembly:
    def __init__(
        self,
        project: Project,
        sources: Sequence[_Input],
        out_root: Path,
        connect: Callable[[], Engine],
        note: Note,
    ) -> None:
        self.project = project
        self.sources = sources
        self.out_root = out_root
        self.engine = functools.cache(connect)
        self.note = note

    def run(self) -> RunReport:
        found = _targets(self.project, self.sources)
        self.out_root.mkdir(parents=True, exist_ok=True)
        for item in found.values():
            _copy_target(item, self.out_root)
        images = []
        services = {item.target.service.name: item.target.service for item in found.values()}
        for service in services.values():
            passed = [
                item
                for item in found.values()
                if item.target.service is service and item.entry["status"] == Status.PASSED.value
            ]
            if not passed:
                continue
            provenance_ = provenance(service.source)
            built = [_built(item, self.out_root, provenance_) for item in passed]
            sbom = self._sbom(service, passed, built, provenance_)
            images.append(
                write_service_image(service, built, provenance=provenance_, out_root=self.out_root, sbom=sbom)
            )
        report = _merged_report(self.sources, found, images, self.note)
        write_run_files(report, self.out_root)
        return report

    def _sbom(
        self,
        service: Service,
        passed: Sequence[_Found],
        built: Sequence[BuiltTarget],
        provenance_: Provenance,
    ) -> tuple[Path, oci.Blob]:
        """The SBOM a build of these targets writes: an input's when it was made from the same target
        keys, else made here from the binaries and the toolchain's packages."""
        inputs_key = sbom_inputs_key(built)
        for root in (self.out_root, *(source.root for source in self.sources)):
            path = root / service.name / sbom_stage.SBOM_FILE
            key_file = path.with_name(path.name + ".key")
            if path.is_file() and key_file.is_file() and key_file.read_text() == inputs_key:
                document = path.read_bytes()
                written = sbom_stage.write_sbom(self.out_root, service, document)
                write_atomic(written.with_name(written.name + ".key"), inputs_key.encode())
                return written, oci.Blob(media_type=sbom_stage.MEDIA_TYPE, data=document)
        return sbom_stage.write_service_sbom(
            self.engine(),
            service,
            toolchain=self._toolchain_image(service, passed),
            binaries=sbom_binaries(built),
            provenance=provenance_,
            out_root=self.out_root,
            inputs_key=inputs_key,
        )

    def _toolchain_image(self, service: Service, passed: Sequence[_Found]) -> ToolchainImage:
        """The toolchain image whose packages go into the service's SBOM: the one its targets were built
        with when this engine has it, else the toolchain provisioned here."""
        recorded = sorted(
            {item.entry["toolchain_image"] for item in passed if item.entry.get("toolchain_image")}
        )
        if len(recorded) > 1:
            self.note(
                f"{service.name}: its platforms were built with different {service.toolchain} toolchain "
                f"images ({', '.join(i[7:19] for i in recorded)}): no single build would give this SBOM"
            )
        engine = self.engine()
        for image_id in recorded:
            if engine.image_id(image_id) == image_id:
                return ToolchainImage(
                    name=service.toolchain, reference=image_id, image_id=image_id, bootstrapped=False
                )
        toolchain = self.project.toolchains[service.toolchain]
        image = provision(engine, toolchain, self.out_root / TOOLCHAIN_WORK_DIR, lambda _: None)
        if recorded and image.image_id not in recorded:  # reproducible: the same recipe gives that id
            self.note(
                f"{service.name}: toolchain image {recorded[0][7:19]} (its targets' builder) is not in "
                f"this engine; the SBOM gives the package versions of {image.reference} "
                f"({image.image_id[7:19]})"
            )
        return image


def _read_input(path: Path) -> _Input:
    file = path / "report.json"
    try:
        report = json.loads(file.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{path} holds no report.json: not an osless output directory",
            hint="give the out/ directories of osless builds (e.g. downloaded CI artifacts)",
        ) from None
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {file}: {error}") from error
    if not isinstance(report, dict) or report.get("schema") != REPORT_SCHEMA:
        raise UsageError(
            f"{file} is not a report of this osless (schema {REPORT_SCHEMA})",
            hint="assemble with the osless version that built the inputs",
        )
    return _Input(root=path.resolve(), report=report)


def _targets(project: Project, sources: Sequence[_Input]) -> dict[str, _Found]:
    """Every target of the inputs, once, in the order a build of all of them would have."""
    known = {t.name: t for t in select_targets(project, [], [])}
    found: dict[str, _Found] = {}
    for source in sources:
        for entry in source.report.get("targets", []):
            name = f"{entry['service']} {entry['platform']}"
            if name not in known:
                raise UsageError(
                    f"{source.root}: {name} is not a target of {project.root}",
                    hint="assemble in a checkout of the commit the inputs were built from",
                )
            if name in found:
                raise UsageError(
                    f"{name} is in both {found[name].source.root} and {source.root}",
                    hint="give each partial build once; the shards of one --shard K/N never overlap",
                )
            found[name] = _Found(target=known[name], source=source, entry=entry)
    if not found:
        raise UsageError("the inputs hold no targets")
    return {name: found[name] for name in known if name in found}


def _copy_target(item: _Found, out_root: Path) -> None:
    """The target's directory into out_root (unless it is there), its paths rewritten to the copy."""
    source = item.target.output_dir(item.source.root)
    destination = item.target.output_dir(out_root)
    old = _recorded_dir(item.entry)
    if source.resolve() != destination.resolve():
        shutil.rmtree(destination, ignore_errors=True)
        if source.is_dir():
            shutil.copytree(source, destination, symlinks=True)
    if old is None:
        return
    item.entry.update(_moved(item.entry, old, destination))
    result = destination / cache.RESULT_FILE
    if result.is_file():
        record = json.loads(result.read_text())
        record["report"] = _moved(record["report"], old, destination)
        write_json(result, record)


def _recorded_dir(entry: dict[str, Any]) -> str | None:
    """The target's directory where it was built, from the paths its report entry records."""
    if entry.get("binary"):
        return str(Path(entry["binary"]["path"]).parent.parent)
    if entry.get("log"):
        return str(Path(entry["log"]).parent)
    return None


def _moved(value: Any, old: str, new: Path) -> Any:
    """value with every path in or under the directory `old` moved to `new`."""
    if isinstance(value, dict):
        return {key: _moved(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_moved(item, old, new) for item in value]
    if isinstance(value, str) and old not in ("", "/"):
        return str(new) if value == old else value.replace(old + "/", f"{new}/")
    return value


def _built(item: _Found, out_root: Path, provenance_: Provenance) -> BuiltTarget:
    """A passed target's image (read back unchanged), binary and cache key, checked."""
    target, where = item.target, item.source.root
    directory = target.output_dir(out_root)
    binary = Path(item.entry["binary"]["path"]) if item.entry.get("binary") else None
    missing = [
        name
        for name, path in (
            ("image.tar", directory / "image.tar"),
            (cache.RESULT_FILE, directory / cache.RESULT_FILE),
            ("the binary", binary),
        )
        if path is None or not path.is_file()
    ]
    if missing or binary is None:
        raise UsageError(
            f"{where}: {target.name} passed but {', '.join(missing)} is missing",
            hint="give each input as the build left it (the whole out/ directory)",
        )
    image = oci.read_archive((directory / "image.tar").read_bytes())
    if image.platform != target.platform:
        raise UsageError(f"{where}: the image of {target.name} is for {image.platform.name}")
    expected = image_annotations(target.service, provenance_)
    recorded = json.loads(image.manifest.data).get("annotations", {})
    differing = sorted(key for key, value in expected.items() if recorded.get(key) != value)
    if differing:
        key = differing[0]
        raise UsageError(
            f"{where}: {target.name} was built from another source state than this checkout's "
            f"({key}: {recorded.get(key)!r}, here {expected[key]!r})",
            hint="assemble in a checkout of the commit the inputs were built from, with its history "
            "(provenance reads git log; in CI: fetch-depth 0) and the same SOURCE_DATE_EPOCH",
        )
    key = json.loads((directory / cache.RESULT_FILE).read_text()).get("key")
    return BuiltTarget(target=target, image=image, binary=binary, key=key)


def _merged_report(
    sources: Sequence[_Input],
    found: dict[str, _Found],
    images: list[ServiceImage],
    note: Note,
) -> RunReport:
    reports = [source.report for source in sources]
    versions = sorted({str(r.get("osless_version", __version__)) for r in reports})
    if len(versions) > 1:
        note(f"the inputs were built by different osless versions: {', '.join(versions)}")
    toolchains, digests, locks = (
        _merged(reports, key) for key in ("toolchains", "toolchain_digests", "toolchain_locks")
    )
    recorded = {
        (u["service"], u["platform"]): Unsupported(**u)
        for report in reports
        for u in report.get("unsupported", [])
    }
    # In the order a build lists them: by service (those with targets first), then platform table order;
    # a service the selection left without any target (`--platform` it does not build for) too.
    services = dict.fromkeys(
        [*(item.target.service.name for item in found.values()), *(s for s, _ in recorded)]
    )
    unsupported = [
        recorded[service, platform]
        for service in services
        for platform in PLATFORMS
        if (service, platform) in recorded
    ]
    return RunReport(
        osless_version=", ".join(versions),
        engine_version=", ".join(sorted({str(r.get("engine_version", "")) for r in reports})),
        started=min(str(r.get("started", "")) for r in reports),
        seconds=max(float(r.get("seconds", 0)) for r in reports),
        toolchains=toolchains,
        toolchain_digests=digests,
        toolchain_locks=locks,
        targets=[_target_report(item.entry) for item in found.values()],
        images=images,
        unsupported=unsupported,
    )


def _merged(reports: Sequence[dict[str, Any]], key: str) -> dict[str, str]:
    """A report's per-toolchain mapping (image ids, pulled digests, locks) over all inputs: the first
    input that names a toolchain gives its value."""
    merged: dict[str, str] = {}
    for report in reports:
        for name, value in report.get(key, {}).items():
            merged.setdefault(name, value)
    return merged


def _target_report(entry: dict[str, Any]) -> TargetReport:
    """A report.json entry read back as it was (from_json marks results as cached: keep the entry's)."""
    return replace(TargetReport.from_json(entry), cached=bool(entry.get("cached", False)))

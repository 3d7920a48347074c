"""The run as a pipeline of plain functions: select targets, provision toolchains, then for each target
build → verify → package → smoke, in parallel, and finally one OCI layout per service and the report.

One failing target never stops the others (unless fail_fast); every failure is recorded with its stage
and a one-line reason. Emulated smoke tests have their own, smaller concurrency cap so that they do not
starve native work.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import re
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from orchestrator import __version__
from orchestrator.cli.progress import ProgressView
from orchestrator.engine import Engine
from orchestrator.errors import EngineError, OslessError, OutputError, UsageError
from orchestrator.image import oci
from orchestrator.image.extras import extra_files
from orchestrator.outputs import outdir
from orchestrator.outputs import sbom as sbom_stage
from orchestrator.outputs.junit import write_junit
from orchestrator.outputs.report import (
    BinaryInfo,
    ImageInfo,
    RunReport,
    ServiceImage,
    Status,
    TargetReport,
    Unsupported,
    human_size,
    to_jsonable,
    write_atomic,
    write_json,
    write_report,
)
from orchestrator.outputs.summary import write_summary
from orchestrator.pipeline import cache
from orchestrator.pipeline.provenance import Provenance, changed_files, provenance
from orchestrator.pipeline.reproduce import Comparison, compare_targets
from orchestrator.platforms import PLATFORMS, Platform, is_emulated
from orchestrator.recipe.loader import Project, Service
from orchestrator.stages import build as build_stage
from orchestrator.stages import package as package_stage
from orchestrator.stages import smoke as smoke_stage
from orchestrator.stages.package import PackageResult
from orchestrator.stages.smoke import SmokeResult
from orchestrator.stages.toolchain import ToolchainImage, debian_slim_size, provision
from orchestrator.verify import verifier as verify_stage


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """What `osless build` was asked to do, resolved."""

    services: tuple[str, ...] = ()  # empty: every service
    platforms: tuple[str, ...] = ()  # empty: every platform of each service
    jobs: int = 2
    emulated_jobs: int = 1
    fail_fast: bool = False
    rebuild: bool = False  # ignore cached results
    cache_namespace: str = ""  # suffix of the compiler cache volumes: a fresh one means a clean build
    out_root: Path


@dataclass(frozen=True, kw_only=True)
class Target:
    """One (service, platform) pair: the unit that is built, verified, packaged and smoke-tested."""

    service: Service
    platform: Platform

    @property
    def name(self) -> str:
        return f"{self.service.name} {self.platform.name}"

    def output_dir(self, out_root: Path) -> Path:
        return out_root / self.service.name / self.platform.slug


T = TypeVar("T")
DEFAULT = "default"  # the engine for every platform not given with --engine


def _default_first(needed: tuple[str, str]) -> tuple[bool, str, str]:
    """The default engine's toolchains first, so that other engines can copy them from it."""
    return (needed[0] != DEFAULT, *needed)


class StageFailed(Exception):
    """A target stopped at a stage; carries the stage name and one-line reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def changed_services(project: Project, ref: str) -> list[str]:
    """Services whose recipe, source or toolchain recipe changed since the git revision `ref`."""
    changed = changed_files(project.root, ref)
    if changed is None:
        raise UsageError(
            f"git cannot compare with {ref!r}", hint="give a commit, branch or tag of this repository"
        )

    def touched(path: Path) -> bool:
        return any(file == path or file.is_relative_to(path) for file in changed)

    return sorted(
        name
        for name, service in project.services.items()
        if touched(service.file)
        or touched(service.source)
        or touched(project.toolchains[service.toolchain].file)
    )


def select_targets(project: Project, services: Sequence[str], platforms: Sequence[str]) -> list[Target]:
    """The targets a command line asks for; unknown names are usage errors with a suggestion."""
    for name in services:
        if name not in project.services:
            raise UsageError(
                f"no service named {name!r}{_suggest(name, project.services)}",
                hint="`osless list` shows the services",
            )
    for name in platforms:
        if name not in PLATFORMS:
            raise UsageError(
                f"unknown platform {name!r}{_suggest(name, PLATFORMS)}",
                hint=f"known platforms: {', '.join(PLATFORMS)}",
            )
    chosen = [project.services[name] for name in services] or list(project.services.values())
    targets = [
        Target(service=service, platform=PLATFORMS[platform])
        for service in chosen
        for platform in service.platforms
        if not platforms or platform in platforms
    ]
    if not targets:
        raise UsageError("nothing to build: no selected service targets the selected platforms")
    return targets


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard K/N` as (K, N), 1 <= K <= N; anything else is a usage error."""
    match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(
            f"--shard {text!r}: expected K/N, a shard number K from 1 to the shard count N",
            hint="e.g. --shard 2/4 builds the second of four parts; the N parts build everything once",
        )
    return int(match[1]), int(match[2])


def shard_key(target: Target) -> tuple[str, str, int]:
    """Where a target falls in the shard order: by toolchain, then service, then platform table order."""
    return (target.service.toolchain, target.service.name, list(PLATFORMS).index(target.platform.name))


def select_shard(targets: Sequence[Target], shard: int, shards: int) -> list[Target]:
    """Shard K of N: the targets in shard order, cut into N consecutive runs whose sizes differ by at
    most one, and run K of them (in the given order).

    The same targets and N always give the same shards; together they hold every target exactly once.
    Consecutive runs keep a toolchain's targets, and a service's platforms, on as few shards as
    possible: a shard bootstraps only the toolchains it uses, and at most N-1 services are split.
    """
    ordered = sorted(targets, key=shard_key)
    chosen = {t.name for t in ordered[(shard - 1) * len(ordered) // shards : shard * len(ordered) // shards]}
    return [t for t in targets if t.name in chosen]


def verify_policy(service: Service) -> verify_stage.VerifyPolicy:
    """The recipe's [verify] table, plus the image extras that satisfy `needs.*` findings."""
    return verify_stage.VerifyPolicy(
        errors=frozenset(service.verify.errors),
        allowed=service.verify.allow,
        max_size=service.verify.max_size,
        provided=frozenset(service.image.extras),
    )


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Runner:
    """Runs the selected targets through every stage; internal to `osless build`."""

    def __init__(
        self,
        project: Project,
        options: BuildOptions,
        engine: Engine,
        view: ProgressView,
        platform_engines: Mapping[str, Engine] | None = None,
    ) -> None:
        self.project = project
        self.options = options
        self.engine = engine  # the default engine
        self.platform_engines = dict(platform_engines or {})  # platform -> the engine given for it
        self.view = view
        self._stop = threading.Event()
        # (engine, toolchain name) -> its image there, or why it could not be provisioned
        self._toolchains: dict[tuple[str, str], ToolchainImage | OslessError] = {}
        self._provenance: dict[str, Provenance] = {}
        self._source_digests: dict[str, str] = {}
        self._keys: dict[str, str | None] = {}  # target name -> its cache key
        self._slim_size: int | None = None
        self._images: dict[str, oci.Image] = {}  # target name -> image that passed every stage
        self._extras: dict[tuple[str, str], list[oci.FileEntry]] = {}  # (engine, service) -> image extras
        self._extras_lock = threading.Lock()
        self._reports: dict[str, TargetReport] = {}  # target name -> how it ended, as targets finish
        self._trackers: dict[str, _StageTracker] = {}  # target name -> its progress (for interrupts)
        # target name -> (output dir, key, whether result.json is still to write) of passed targets
        self._passed: dict[str, tuple[Path, str, bool]] = {}
        self._builders = {
            name: build_stage.Builders(
                engine_, project.root, options.out_root, options.cache_namespace, copy_files=name != DEFAULT
            )
            for name, engine_ in self._engines().items()
        }

    def _engines(self) -> dict[str, Engine]:
        """Every engine of the run by name: "default" and each platform given with --engine."""
        return {DEFAULT: self.engine, **self.platform_engines}

    def _engine_name(self, platform: Platform) -> str:
        return platform.name if platform.name in self.platform_engines else DEFAULT

    def _engine_for(self, platform: Platform) -> Engine:
        return self._engines()[self._engine_name(platform)]

    def _toolchain(self, target: Target) -> ToolchainImage | OslessError:
        return self._toolchains[self._engine_name(target.platform), target.service.toolchain]

    def run(self, targets: Sequence[Target]) -> RunReport:
        """Every stage of every target, then the layouts, then report.json (also when interrupted:
        then it says which targets finished and which were interrupted, and KeyboardInterrupt goes on).
        """
        started = datetime.now(timezone.utc)
        clock = time.monotonic()
        outdir.prepare(self.options.out_root)
        engine_version = self._engine_version()
        try:
            self._remove_stale_containers()
            self.view.phase("toolchains")
            self._provision_toolchains(targets)
            for service in {t.service.name: t.service for t in targets}.values():
                self._provenance[service.name] = provenance(service.source)
                self._source_digests[service.name] = cache.source_digest(service.source)
            self.view.phase(f"targets: build, verify, package, smoke ({len(targets)})")
            reports = self._run_targets(targets)
            self.view.phase("images: OCI layouts and SBOMs")
            images, reports = self._write_layouts(targets, reports)
        except KeyboardInterrupt:
            interrupted = self._run_report(
                targets,
                self._interrupted(targets),
                [],
                engine_version=engine_version,
                started=started,
                clock=clock,
            )
            with _signals_deferred(), contextlib.suppress(OSError):
                write_run_files(interrupted, self.options.out_root)
            raise
        report = self._run_report(
            targets, reports, images, engine_version=engine_version, started=started, clock=clock
        )
        try:
            write_run_files(report, self.options.out_root)
        except OSError as error:
            raise OutputError(
                f"cannot write the run's report {error.filename or self.options.out_root}: "
                f"{error.strerror or error}"
            ) from error
        return report

    def _run_report(
        self,
        targets: Sequence[Target],
        reports: list[TargetReport],
        images: list[ServiceImage],
        *,
        engine_version: str,
        started: datetime,
        clock: float,
    ) -> RunReport:
        return RunReport(
            osless_version=__version__,
            engine_version=engine_version,
            started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            seconds=round(time.monotonic() - clock, 2),
            toolchains={
                name: image.image_id
                for (_, name), image in self._toolchains.items()
                if isinstance(image, ToolchainImage)
            },
            targets=reports,
            images=images,
            unsupported=[
                Unsupported(service=service.name, platform=platform, reason=reason)
                for service in {t.service.name: t.service for t in targets}.values()
                for platform, reason in service.unsupported.items()
                if not self.options.platforms or platform in self.options.platforms
            ],
        )

    def _engine_version(self) -> str:
        try:
            return self.engine.version
        except Exception:  # an engine that stopped answering: the run finds out at its first call
            return "unknown"

    def _interrupted(self, targets: Sequence[Target]) -> list[TargetReport]:
        """Each target as an interrupt left it: finished ones as they ended, the others cancelled with
        reason "interrupted" at the stage they were in."""
        reports = []
        for target in targets:
            finished = self._reports.get(target.name)
            if finished is not None:
                reports.append(finished)
                continue
            tracker = self._trackers.get(target.name) or _StageTracker(
                target, self.view, self._engine_name(target.platform)
            )
            reports.append(tracker.report(Status.CANCELLED, tracker.stage, INTERRUPTED))
        return reports

    def cancel(self) -> None:
        """Ctrl-C: stop starting work and remove this run's containers, on every engine.

        An engine that does not answer any more cannot have its containers removed now: the next
        run removes them (by label) when it starts. That never hides the interrupt itself.
        """
        self._stop.set()
        for name, engine in self._engines().items():
            try:
                engine.cancel()
            except Exception as error:
                self._cleanup_failed(name, error)

    def _remove_run_containers(self) -> None:
        for name, engine in self._engines().items():
            try:
                engine.remove_run_containers()
            except Exception as error:
                self._cleanup_failed(name, error)

    def _remove_stale_containers(self) -> None:
        """Containers of earlier runs that could not be removed (the engine crashed under them)."""
        for name, engine in self._engines().items():
            try:
                removed = engine.remove_stale_containers()
            except Exception as error:
                self._cleanup_failed(name, error)
                continue
            if removed:
                self.view.step(
                    f"cleanup ({name} engine)",
                    f"removed {len(removed)} containers left by an earlier run: {', '.join(removed)}",
                    done=True,
                )

    def _cleanup_failed(self, name: str, error: Exception) -> None:
        message = error.message if isinstance(error, OslessError) else f"{type(error).__name__}: {error}"
        self.view.step(
            f"cleanup ({name} engine)",
            f"could not remove containers: {message.strip().splitlines()[0] if message.strip() else ''}"
            "; the next run removes them",
            done=True,
        )

    def _provision_toolchains(self, targets: Sequence[Target]) -> None:
        """Each toolchain on each engine that builds with it; another engine's copy is transferred."""
        needed = sorted(
            {(self._engine_name(t.platform), t.service.toolchain) for t in targets}, key=_default_first
        )
        for engine_name, name in needed:
            toolchain = self.project.toolchains[name]
            subject = f"toolchain {name}" + (
                "" if engine_name == DEFAULT else f" on the {engine_name} engine"
            )
            self.view.step(subject, "looking for the image")
            try:
                image = provision(
                    self._engines()[engine_name],
                    toolchain,
                    self.options.out_root / ".toolchains",
                    functools.partial(self.view.step, subject),
                    source=None if engine_name == DEFAULT else self.engine,
                )
            except OslessError as error:
                self._toolchains[engine_name, name] = error
                self.view.step(subject, f"failed: {error.message}", done=True)
                continue
            self._toolchains[engine_name, name] = image
            how = "bootstrapped" if image.bootstrapped else "present"
            self.view.step(subject, f"{how}: {image.reference} ({image.image_id[7:19]})", done=True)
        subject = "base debian-slim, for size comparison"
        try:
            self._slim_size = debian_slim_size(
                self.engine, self.options.out_root / ".toolchains", functools.partial(self.view.step, subject)
            )
            self.view.step(subject, human_size(self._slim_size), done=True)
        except OslessError as error:  # only a comparison is lost
            self.view.step(subject, f"skipped: {error.message}", done=True)

    def _run_targets(self, targets: Sequence[Target]) -> list[TargetReport]:
        """Builds on one pool; smoke tests on their own pools, emulated ones capped apart.

        A build worker never waits for a smoke slot, so emulated smoke tests queue up without holding
        back compiles, and builds, packaging and smoke tests of different targets overlap.
        """
        jobs = max(1, self.options.jobs)
        pools = {
            "build": ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="osless-build"),
            "smoke": ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="osless-smoke"),
            "emulated": ThreadPoolExecutor(
                max_workers=max(1, self.options.emulated_jobs), thread_name_prefix="osless-qemu"
            ),
        }
        pending: dict[Future[TargetReport | _SmokeDue], Target] = {}
        reports = self._reports
        try:
            for target in targets:
                self.view.step(target.name, "queued")
                pending[pools["build"].submit(self._run_target, target)] = target
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    target = pending.pop(future)
                    outcome = future.result()
                    if isinstance(outcome, _SmokeDue):
                        emulated = is_emulated(target.platform)
                        self.view.step(target.name, "waiting for a qemu slot" if emulated else "smoke queued")
                        pool = pools["emulated" if emulated else "smoke"]
                        pending[pool.submit(self._run_smoke, outcome)] = target
                        continue
                    reports[target.name] = outcome
                    if outcome.status is not Status.PASSED and self.options.fail_fast:
                        self._stop.set()
        except BaseException:
            with _signals_deferred():  # a second Ctrl-C must not cut the cleanup short
                self.cancel()
                for pool in pools.values():
                    pool.shutdown(wait=True, cancel_futures=True)
                self._remove_run_containers()
                for future, target in pending.items():  # finished while the run was stopping
                    if future.done() and not future.cancelled() and future.exception() is None:
                        outcome = future.result()
                        if isinstance(outcome, TargetReport) and outcome.status is Status.PASSED:
                            reports[target.name] = outcome
            raise
        for pool in pools.values():
            pool.shutdown(wait=True)
        self._remove_run_containers()  # the warm builders
        return [reports[target.name] for target in targets]

    def _run_target(self, target: Target) -> TargetReport | _SmokeDue:
        """Every stage up to packaging; a failure becomes the target's report, never an exception."""
        tracker = self._trackers[target.name] = _StageTracker(
            target, self.view, self._engine_name(target.platform)
        )
        if self._stop.is_set():
            return tracker.report(
                Status.CANCELLED, "queued", "not started: the run was stopped (--fail-fast)"
            )
        output_dir = target.output_dir(self.options.out_root)
        key = self._keys[target.name] = self._key(target)
        if key is not None and not self.options.rebuild:
            reused = self._guarded(tracker, output_dir, lambda: self._reuse(target, output_dir, key))
            if reused is not None:
                return reused
        try:  # also the old result goes: nothing half-done looks valid
            shutil.rmtree(output_dir, ignore_errors=True)
            output_dir.mkdir(parents=True)
        except OSError as error:
            return tracker.report(Status.FAILED, "build", _os_reason(error, output_dir))
        packaged = self._guarded(tracker, output_dir, lambda: self._build_stages(target, output_dir, tracker))
        if isinstance(packaged, TargetReport):
            return packaged
        return _SmokeDue(target=target, tracker=tracker, output_dir=output_dir, key=key, packaged=packaged)

    def _run_smoke(self, due: _SmokeDue) -> TargetReport:
        """The smoke stage. A target that passed it is recorded for reuse (result.json) only once its
        service's OCI layout is written too: everything it contributes is then on disk."""
        failed = self._guarded(due.tracker, due.output_dir, lambda: self._smoke_stage(due))
        if isinstance(failed, TargetReport):
            return failed
        report = due.tracker.report(Status.PASSED, None, None)
        if due.key is not None:
            self._passed[due.target.name] = (due.output_dir, due.key, True)
        return report

    def _guarded(self, tracker: _StageTracker, output_dir: Path, stages: Callable[[], T]) -> T | TargetReport:
        """Run stages; a stage failure, a file that cannot be written or a bug of ours ends the target
        with a report."""
        try:
            return stages()
        except StageFailed as failure:
            status = Status.CANCELLED if self._stop.is_set() and self.engine.cancelled else Status.FAILED
            return tracker.report(status, failure.stage, failure.reason)
        except OSError as error:  # out/ full or unwritable: the stage failed, saying which file
            return tracker.report(Status.FAILED, tracker.stage, _os_reason(error, output_dir))
        except OslessError as error:  # e.g. the engine stopped answering outside a stage
            return tracker.report(Status.FAILED, tracker.stage, error.message)
        except Exception as error:  # a bug of ours: keep the run going, keep the evidence
            where = output_dir / "error.log"
            try:
                write_atomic(where, traceback.format_exc().encode())
            except OSError:
                where = Path("(not written: the output directory is not writable)")
            reason = f"internal error: {type(error).__name__}: {error} (traceback: {where})"
            return tracker.report(Status.FAILED, tracker.stage, reason)

    def _key(self, target: Target) -> str | None:
        """The target's cache key; None when its toolchain is not available."""
        toolchain_image = self._toolchain(target)
        if not isinstance(toolchain_image, ToolchainImage):
            return None
        return cache.target_key(
            cache.KeyInputs(
                service=target.service,
                toolchain=self.project.toolchains[target.service.toolchain],
                toolchain_image_id=toolchain_image.image_id,
                platform=target.platform,
                source_digest=self._source_digests[target.service.name],
                provenance=self._provenance[target.service.name],
            )
        )

    def _reuse(self, target: Target, output_dir: Path, key: str) -> TargetReport | None:
        """A passed result with the same key whose files are still what it recorded (else a rebuild,
        with a note), its image back in the engine if it was removed."""
        try:
            cached = cache.load(output_dir, key, target.platform)
        except cache.InvalidEntry as invalid:
            self.view.step(target.name, f"cached result invalid: {invalid.reason}; rebuilding")
            return None
        if cached is None or cached.report.image is None:
            return None
        report, image = cached.report, cached.report.image
        engine = self._engine_for(target.platform)
        if engine.image_id(image.tag) != image.image_id:
            engine.load_image(cached.archive)
        self._images[target.name] = cached.image
        self._passed[target.name] = (output_dir, key, False)  # its result.json is already there
        self.view.step(target.name, "cached: inputs unchanged", done=True)
        return report

    def _build_stages(self, target: Target, output_dir: Path, tracker: _StageTracker) -> PackageResult:
        service, platform = target.service, target.platform
        toolchain = self._toolchain(target)
        provenance_ = self._provenance[service.name]
        if not isinstance(toolchain, ToolchainImage):
            raise StageFailed("toolchain", toolchain.message)
        tracker.toolchain_image = toolchain.image_id

        with tracker.stage_("build"):
            built = build_stage.build(
                self._builders[self._engine_name(platform)],
                service,
                toolchain=self.project.toolchains[service.toolchain],
                toolchain_image=toolchain.reference,
                platform=platform,
                output_dir=output_dir,
                source_date_epoch=provenance_.source_date_epoch,
            )
            tracker.log = str(built.log)
            if not built.ok:
                raise StageFailed("build", build_stage.failure_reason(built))

        with tracker.stage_("verify"):
            verdict = verify_stage.verify_binary(built.binary, platform, verify_policy(service))
            write_json(output_dir / "verify.json", verdict)
            tracker.verify_findings = [to_jsonable(f) for f in verdict.findings]
            data = built.binary.read_bytes()
            facts = verdict.facts
            tracker.binary = BinaryInfo(
                path=str(built.binary),
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                linkage=facts.linkage.value if facts else None,
                platform=facts.platform if facts else None,
            )
            if not verdict.ok:
                raise StageFailed("verify", verdict.reason or "verification failed")

        with tracker.stage_("package"):
            packaged = package_stage.package(
                self._engine_for(platform),
                service,
                platform=platform,
                binary=built.binary,
                provenance=provenance_,
                output_dir=output_dir,
                toolchain_image_id=toolchain.image_id,
                extras=self._extras_for(service, platform, toolchain.reference),
            )
            tracker.image = ImageInfo(
                tag=packaged.tag,
                image_id=packaged.image.image_id,
                manifest_digest=packaged.image.digest,
                size=packaged.image.size,
                on_debian_slim=self._slim_size + tracker.binary.size
                if self._slim_size and tracker.binary
                else None,
            )

        return packaged

    def _smoke_stage(self, due: _SmokeDue) -> None:
        target, tracker = due.target, due.tracker
        with tracker.stage_(
            "smoke", f"smoke (qemu-{target.platform.qemu})" if is_emulated(target.platform) else None
        ):
            result = smoke_stage.smoke(
                self._engine_for(target.platform), target.service, target.platform, due.packaged.tag
            )
            tracker.smoke = result
            if not result.passed:
                raise StageFailed("smoke", result.reason or "smoke test failed")
        self._images[target.name] = due.packaged.image

    def _extras_for(self, service: Service, platform: Platform, toolchain_image: str) -> list[oci.FileEntry]:
        """The service's image extras, read from its toolchain image once per engine and run."""
        key = (self._engine_name(platform), service.name)
        with self._extras_lock:
            if key not in self._extras:
                self._extras[key] = extra_files(
                    self._engine_for(platform), toolchain_image, service.image, service.source
                )
            return self._extras[key]

    def _write_layouts(
        self, targets: Sequence[Target], reports: Sequence[TargetReport]
    ) -> tuple[list[ServiceImage], list[TargetReport]]:
        """One OCI layout per service, over the platforms that passed every stage, with its SBOM; then
        the passed targets' result.json (a target is reusable only once all it contributes is on disk).

        A service whose SBOM or layout cannot be written (disk full, engine gone) gets no layout (none
        that looks valid is left) and its targets fail at package with the reason; the others go on.
        """
        by_name = {f"{r.service} {r.platform}": r for r in reports}
        images = []
        for service in {t.service.name: t.service for t in targets}.values():
            built = [
                BuiltTarget(
                    target=t,
                    image=self._images[t.name],
                    binary=Path(binary.path),
                    key=self._keys[t.name],
                )
                for t in targets
                if t.service is service
                and by_name[t.name].status is Status.PASSED
                and (binary := by_name[t.name].binary) is not None
            ]
            if not built:
                continue
            try:
                sbom = sbom_stage.write_service_sbom(
                    self._engine_for(built[0].target.platform),
                    service,
                    toolchain=self._toolchain(built[0].target),
                    binaries=sbom_binaries(built),
                    provenance=self._provenance[service.name],
                    out_root=self.options.out_root,
                    inputs_key=sbom_inputs_key(built),
                )
                images.append(
                    write_service_image(
                        service,
                        built,
                        provenance=self._provenance[service.name],
                        out_root=self.options.out_root,
                        sbom=sbom,
                    )
                )
                for b in built:
                    if b.target.name in self._passed:
                        output_dir, key, fresh = self._passed[b.target.name]
                        if fresh:
                            cache.save(output_dir, key, by_name[b.target.name])
            except (OSError, OslessError) as error:
                layout = self.options.out_root / service.name / "oci"
                if isinstance(error, OSError):
                    reason = f"cannot write the OCI layout: {_os_reason(error, layout)}"
                else:
                    reason = f"cannot write the OCI layout {layout}: {error.message}"
                for b in built:
                    with contextlib.suppress(OSError):
                        (b.target.output_dir(self.options.out_root) / cache.RESULT_FILE).unlink(
                            missing_ok=True
                        )
                    self.view.step(b.target.name, f"failed at package: {reason}", done=True)
                    by_name[b.target.name] = replace(
                        by_name[b.target.name], status=Status.FAILED, failed_stage="package", reason=reason
                    )
        return images, [by_name[t.name] for t in targets]


INTERRUPTED = "interrupted"  # the reason of a target a Ctrl-C or SIGTERM stopped


def _os_reason(error: OSError, fallback: Path) -> str:
    """'cannot write PATH: No space left on device', from an OSError of any write in out/."""
    return f"cannot write {error.filename or fallback}: {error.strerror or error}"


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the run cleans up after an interrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass(frozen=True, kw_only=True)
class BuiltTarget:
    """A target that passed every stage: what its service's OCI layout and SBOM are made of."""

    target: Target
    image: oci.Image
    binary: Path
    key: str | None  # its cache key


def sbom_binaries(built: Sequence[BuiltTarget]) -> list[sbom_stage.PlatformBinary]:
    return [
        sbom_stage.PlatformBinary(platform=b.target.platform, path=b.binary, image_digest=b.image.digest)
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


def write_run_files(report: RunReport, out_root: Path) -> None:
    """What a run leaves in out_root besides the targets and images: report.json and its views."""
    write_report(report, out_root)
    write_junit(report, out_root)  # the same run for CI test reports
    write_summary(report, out_root)


@dataclass(frozen=True, kw_only=True)
class _SmokeDue:
    """A target that passed every stage up to packaging, waiting for its smoke test."""

    target: Target
    tracker: _StageTracker
    output_dir: Path
    key: str | None
    packaged: PackageResult


class _StageTracker:
    """Collects what a target produced, stage by stage, and times each stage."""

    def __init__(self, target: Target, view: ProgressView, engine: str) -> None:
        self.target = target
        self.view = view
        self.engine = engine
        self.stage = "queued"
        self.seconds: dict[str, float] = {}
        self.toolchain_image: str | None = None
        self.binary: BinaryInfo | None = None
        self.verify_findings: list[dict[str, object]] = []
        self.image: ImageInfo | None = None
        self.smoke: SmokeResult | None = None
        self.log: str | None = None

    @contextlib.contextmanager
    def stage_(self, name: str, waiting: str | None = None) -> Iterator[None]:
        """Time a stage; an engine error inside it becomes that stage's failure."""
        self.stage = name
        self.view.step(self.target.name, waiting or name)
        started = time.monotonic()
        try:
            yield
        except EngineError as error:
            raise StageFailed(name, error.message) from error
        finally:
            self.seconds[name] = round(time.monotonic() - started, 2)

    def report(self, status: Status, stage: str | None, reason: str | None) -> TargetReport:
        outcome = status.value if stage is None else f"{status.value} at {stage}: {reason}"
        self.view.step(self.target.name, outcome, done=True)
        return TargetReport(
            service=self.target.service.name,
            platform=self.target.platform.name,
            status=status,
            failed_stage=stage,
            reason=reason,
            toolchain_image=self.toolchain_image,
            binary=self.binary,
            verify_findings=self.verify_findings,
            image=self.image,
            smoke=self.smoke,
            seconds=self.seconds,
            log=self.log,
            engine=self.engine,
        )


@dataclass(frozen=True, kw_only=True)
class ReproducibilityReport:
    """Two clean builds of the same targets compared: targets and service indexes."""

    targets: list[Comparison]
    indexes: dict[str, tuple[str, str]]  # service -> (first, second) index digests

    @property
    def reproducible(self) -> bool:
        return all(c.same for c in self.targets) and all(a == b for a, b in self.indexes.values())


def check_reproducible(
    project: Project,
    options: BuildOptions,
    engine: Engine,
    view: ProgressView,
    targets: Sequence[Target],
    *,
    platform_engines: Mapping[str, Engine] | None = None,
) -> tuple[RunReport, ReproducibilityReport]:
    """Build every target twice, each time from clean state (no cached result, empty compiler caches)."""
    namespace = f"-check-{engine.run_id}"
    runs = []
    try:
        for label, out_root in (("a", options.out_root), ("b", options.out_root / ".reproducible")):
            clean = replace(options, rebuild=True, out_root=out_root, cache_namespace=f"{namespace}-{label}")
            view.step("reproducibility", f"clean build {label} of 2")
            runs.append(Runner(project, clean, engine, view, platform_engines).run(targets))
    finally:
        engine.remove_volumes(containing=namespace)
    first, second = runs
    comparison = ReproducibilityReport(
        targets=[
            compare_targets(
                a, b, t.output_dir(options.out_root), t.output_dir(options.out_root / ".reproducible")
            )
            for a, b, t in zip(first.targets, second.targets, targets, strict=True)
        ],
        indexes={
            a.service: (a.index_digest, b.index_digest)
            for a, b in zip(first.images, second.images, strict=False)
            if a.service == b.service
        },
    )
    write_json(options.out_root / "reproducible.json", comparison)
    view.step("reproducibility", "same" if comparison.reproducible else "DIFFERENT", done=True)
    return first, comparison

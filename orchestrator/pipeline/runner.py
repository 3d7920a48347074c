"""`osless build` as a run: select engines, provision toolchains, read the sources, run every target's
stages on the scheduler's pools, write one OCI layout per service, and always write the report.

One failing target never stops the others (unless fail_fast); every failure is recorded with its stage
and a one-line reason. The run's phases are timed back to back, from the process's start to the report,
for its profile (outputs.profile). The modules beside this one each do one of these jobs: engines
(routing and cleanup), scheduler (pools, fail-fast, cancellation, core shares), target (one target's
stages), services (layouts, SBOMs, result.json).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from orchestrator import __version__
from orchestrator.bootstrap.lock_checks import lock_path
from orchestrator.engine import Engine
from orchestrator.errors import OslessError, OutputError, RecipeError, RegistryError, ToolchainError
from orchestrator.image.registry import Reference
from orchestrator.outputs import outdir
from orchestrator.outputs.profile import peak_rss, process_seconds, run_profile
from orchestrator.outputs.progress import ProgressView
from orchestrator.outputs.report import RunReport, ServiceImage, Status, TargetReport, Unsupported
from orchestrator.outputs.sizes import human_size
from orchestrator.outputs.writers import write_run_files
from orchestrator.pipeline import cache, remote_cache
from orchestrator.pipeline.engines import DEFAULT, Engines
from orchestrator.pipeline.provenance import PROVENANCE_RECORD, Provenance, provenances
from orchestrator.pipeline.scheduler import Scheduler, signals_deferred
from orchestrator.pipeline.services import ServiceLayouts
from orchestrator.pipeline.target import STAGING_DIR, StageTracker, TargetStages, os_reason, smoke_host
from orchestrator.pipeline.targets import Target, skipped_platforms
from orchestrator.recipe.model import Project
from orchestrator.stages.build import Builders
from orchestrator.stages.toolchain import TOOLCHAIN_WORK_DIR, ToolchainImage, debian_slim_size, provision
from orchestrator.stages.workspace import SourceTree, read_source

INTERRUPTED = "interrupted"  # the reason of a target a Ctrl-C or SIGTERM stopped


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
    cache_from: tuple[Reference, ...] = ()  # registry repositories to look results up in, in order
    cache_to: Reference | None = None  # the registry repository passed results are uploaded to
    trust_cache_smoke: bool = False  # a remote entry's smoke pass on this machine platform is not rerun
    out_root: Path


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
        self.engines = Engines(engine, platform_engines)
        self.view = view
        self._stop = threading.Event()
        # (engine, toolchain name) -> its image there, or why it could not be provisioned
        self._toolchains: dict[tuple[str, str], ToolchainImage | OslessError] = {}
        self._provenance: dict[str, Provenance] = {}
        self._source_digests: dict[str, str | OslessError] = {}
        self._source_trees: dict[str, SourceTree] = {}  # for the builds' workspace syncs
        self._slim_size: int | None = None
        self._stages: TargetStages | None = None  # while and after the targets run
        self._scheduler: Scheduler[TargetReport] | None = None
        self._layouts: ServiceLayouts | None = None  # while and after the targets run

    def run(self, targets: Sequence[Target]) -> RunReport:
        """Every stage of every target, then the layouts, then report.json (also when interrupted:
        then it says which targets finished and which were interrupted, and KeyboardInterrupt goes on).
        """
        phases = _Phases("toolchains")
        started = datetime.now(timezone.utc)
        outdir.prepare(self.options.out_root)
        engine_version = self._engine_version()
        try:
            self.engines.remove_stale_containers(self.view)
            self.view.phase("toolchains")
            self._provision_toolchains(targets)
            phases.enter("sources")
            self._read_sources(targets)
            phases.enter("targets")
            self.view.phase(f"targets: build, verify, package, smoke ({len(targets)})")
            reports, stages, layouts = self._run_targets(targets)
            phases.enter("layouts")
            self.view.phase("images: OCI layouts and SBOMs")
            images, reports = layouts.finish(reports)
            phases.enter("upload")
            reports = self._upload(targets, reports, stages)
        except KeyboardInterrupt:
            interrupted = self._run_report(
                self._interrupted(targets),
                [],
                engine_version=engine_version,
                started=started,
                phases=phases,
            )
            with signals_deferred(), contextlib.suppress(OSError):
                write_run_files(interrupted, self.options.out_root)
            raise
        report = self._run_report(
            reports, images, engine_version=engine_version, started=started, phases=phases
        )
        try:
            write_run_files(report, self.options.out_root)
        except OSError as error:
            raise OutputError(
                f"cannot write the run's report {error.filename or self.options.out_root}: "
                f"{error.strerror or error}"
            ) from error
        return report

    def cancel(self) -> None:
        """Ctrl-C: stop starting work and remove this run's containers, on every engine.

        An engine that does not answer any more cannot have its containers removed now: the next
        run removes them (by label) when it starts. That never hides the interrupt itself. A layout
        being written is finished first (its SBOM reads a container), the queued ones are dropped.
        """
        self._stop.set()
        if self._layouts is not None:
            self._layouts.abandon()
        self.engines.cancel(self.view)

    def _run_report(
        self,
        reports: list[TargetReport],
        images: list[ServiceImage],
        *,
        engine_version: str,
        started: datetime,
        phases: _Phases,
    ) -> RunReport:
        """The run's report, with its profile: the phase in progress ends here, "report" starts."""
        phases.enter("report")
        unsupported = [
            Unsupported(service=skipped.service, platform=skipped.platform, reason=skipped.reason)
            for skipped in skipped_platforms(self.project, self.options.services, self.options.platforms)
        ]
        locks = self._locks()
        seconds = phases.finish()
        report = RunReport(
            osless_version=__version__,
            engine_version=engine_version,
            started=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            seconds=round(sum(seconds.values()) - seconds["startup"], 2),
            toolchains={
                name: image.image_id
                for (_, name), image in self._toolchains.items()
                if isinstance(image, ToolchainImage)
            },
            toolchain_digests={
                name: image.repo_digest
                for (_, name), image in self._toolchains.items()
                if isinstance(image, ToolchainImage) and image.repo_digest
            },
            toolchain_locks=locks,
            targets=reports,
            images=images,
            unsupported=unsupported,
        )
        return replace(report, profile=run_profile(report, phases=seconds, peak_rss=peak_rss()))

    def _engine_version(self) -> str:
        try:
            return self.engines.default.version
        except Exception:  # an engine that stopped answering: the run finds out at its first call
            return "unknown"

    def _interrupted(self, targets: Sequence[Target]) -> list[TargetReport]:
        """Each target as an interrupt left it: finished ones as they ended, the others cancelled with
        reason "interrupted" at the stage they were in."""
        finished = self._scheduler.finished if self._scheduler else {}
        trackers = self._stages.trackers if self._stages else {}
        reports = []
        for target in targets:
            if target.name in finished:
                reports.append(finished[target.name])
                continue
            tracker = trackers.get(target.name) or StageTracker(
                target, self.view, self.engines.name_for(target.platform)
            )
            reports.append(tracker.report(Status.CANCELLED, tracker.stage, INTERRUPTED))
        return reports

    def _locks(self) -> dict[str, str]:
        """The report's `toolchain_locks`: each provisioned locked toolchain's lock file and digest."""
        locks = {}
        for (_, name), image in self._toolchains.items():
            lock = self.project.toolchains[name].lock
            if isinstance(image, ToolchainImage) and lock is not None:
                path = lock_path(self.project.toolchains[name]).relative_to(self.project.root)
                locks[name] = f"{path.as_posix()} {lock.digest}"
        return locks

    def _provision_toolchains(self, targets: Sequence[Target]) -> None:
        """Each toolchain on each engine that builds with it; another engine's copy is transferred."""
        needed = sorted(
            {
                (self.engines.name_for(t.platform), t.service.toolchain)
                for t in targets
                if t.service.unbuildable is None  # fails at once: needs no toolchain
            },
            key=Engines.default_first,
        )
        work_dir = self.options.out_root / TOOLCHAIN_WORK_DIR
        for engine_name, name in needed:
            toolchain = self.project.toolchains[name]
            subject = f"toolchain {name}" + (
                "" if engine_name == DEFAULT else f" on the {engine_name} engine"
            )
            self.view.step(subject, "looking for the image")
            try:
                image = provision(
                    self.engines.by_name()[engine_name],
                    toolchain,
                    work_dir,
                    functools.partial(self.view.step, subject),
                    source=None if engine_name == DEFAULT else self.engines.default,
                    project=self.project.root,
                )
            except (OslessError, OSError) as error:
                failure = _toolchain_error(error, work_dir)
                self._toolchains[engine_name, name] = failure
                self.view.step(subject, f"failed: {failure.message}", done=True)
                continue
            self._toolchains[engine_name, name] = image
            how = "bootstrapped" if image.bootstrapped else "present"
            self.view.step(subject, f"{how}: {image.reference} ({image.image_id[7:19]})", done=True)
        subject = "base debian-slim, for size comparison"
        try:
            self._slim_size = debian_slim_size(
                self.engines.default, work_dir, functools.partial(self.view.step, subject)
            )
            self.view.step(subject, human_size(self._slim_size), done=True)
        except (OslessError, OSError) as error:  # only a comparison is lost
            self.view.step(subject, f"skipped: {_toolchain_error(error, work_dir).message}", done=True)

    def _read_sources(self, targets: Sequence[Target]) -> None:
        """Each service's provenance and source tree (its digest for its targets' keys, its manifest for
        their workspace syncs); a source that cannot be read fails that service's targets, not the run."""
        services = [
            service
            for service in {t.service.name: t.service for t in targets}.values()
            if service.unbuildable is None  # else no source to read: its targets fail with the reason
        ]
        self._provenance.update(
            provenances({s.name: s.source for s in services}, self.options.out_root / PROVENANCE_RECORD)
        )
        for service in services:
            try:
                tree = self._source_trees[service.name] = read_source(service.source)
                self._source_digests[service.name] = tree.digest
            except RecipeError as error:
                unreadable = "; ".join(f"{problem.file}: {problem.message}" for problem in error.problems)
                self._source_digests[service.name] = OslessError(f"the source cannot be read: {unreadable}")

    def _run_targets(
        self, targets: Sequence[Target]
    ) -> tuple[list[TargetReport], TargetStages, ServiceLayouts]:
        """Every target's stages on the scheduler's pools, with one set of warm builders per engine
        (removed when the targets are done, whatever happens)."""
        by_name = {t.name: t for t in targets}
        with contextlib.ExitStack() as stack:
            builders = {
                name: stack.enter_context(
                    Builders(
                        engine,
                        self.project.root,
                        self.options.out_root,
                        self.options.cache_namespace,
                        copy_files=not Engines.sees_local_files(name),
                        rebuild=self.options.rebuild,
                        sources=self._source_trees,
                    )
                )
                for name, engine in self.engines.by_name().items()
            }
            stages = self._stages = TargetStages(
                self.project,
                engines=self.engines,
                builders=builders,
                toolchains=self._toolchains,
                provenance=self._provenance,
                source_digests=self._source_digests,
                slim_size=self._slim_size,
                out_root=self.options.out_root,
                rebuild=self.options.rebuild,
                stop=self._stop,
                view=self.view,
                cache_from=tuple(remote_cache.RemoteCache(ref) for ref in self.options.cache_from),
                trust_cache_smoke=self.options.trust_cache_smoke,
            )
            layouts = self._layouts = ServiceLayouts(
                targets,
                images=stages.images,
                keys=stages.keys,
                unsaved=stages.unsaved,
                engine_for=lambda target: self.engines.for_platform(target.platform),
                toolchain_for=stages.toolchain,
                provenance=self._provenance,
                out_root=self.options.out_root,
                view=self.view,
            )
            scheduler = self._scheduler = Scheduler[TargetReport](
                jobs=self.options.jobs,
                emulated_jobs=self.options.emulated_jobs,
                fail_fast=self.options.fail_fast,
                stop=self._stop,
                passed=lambda report: report.status is Status.PASSED,
                not_started=lambda name: stages.not_started(by_name[name]),
                cancel=self.cancel,
                release=functools.partial(self._release, layouts),
                note=self.view.step,
                outcome=layouts.outcome,
            )
            stack.enter_context(_prestarting(stages, targets))  # ends before the builders are removed
            finished = scheduler.run({t.name: functools.partial(stages.up_to_package, t) for t in targets})
        return [finished[t.name] for t in targets], stages, layouts

    def _release(self, layouts: ServiceLayouts) -> None:
        """Once the targets are done: the layouts written so far, then this run's containers removed."""
        layouts.wait()
        self.engines.remove_run_containers(self.view)

    def _upload(
        self, targets: Sequence[Target], reports: Sequence[TargetReport], stages: TargetStages
    ) -> list[TargetReport]:
        """With --cache-to, each passed target's result uploaded unless the repository has its key
        already; a failed upload is a note on the target, never a failure."""
        if self.options.cache_to is None:
            return list(reports)
        remote = remote_cache.RemoteCache(self.options.cache_to)
        self.view.phase(f"remote cache: upload to {remote}")

        def upload(target: Target, report: TargetReport) -> TargetReport:
            key = stages.keys.get(target.name)
            if report.status is not Status.PASSED or key is None:
                return report
            note = self._upload_one(remote, target, report, key, stages)
            return replace(report, notes=[*report.notes, note]) if note else report

        with concurrent.futures.ThreadPoolExecutor(max_workers=self.options.jobs) as pool:
            return list(pool.map(upload, targets, reports))

    def _upload_one(
        self,
        remote: remote_cache.RemoteCache,
        target: Target,
        report: TargetReport,
        key: str,
        stages: TargetStages,
    ) -> str | None:
        """One target's entry uploaded; the note to add to its report when it was not."""
        unusable = remote.unusable()
        if unusable is not None:
            return f"not uploaded to the remote cache {remote}: {unusable}"
        try:
            if remote.has(key):
                self.view.step(target.name, f"remote cache {remote}: has it already", done=True)
                return None
            where = remote.upload(
                key,
                report=report,
                output_dir=target.output_dir(self.options.out_root),
                smoke_host=stages.smoke_hosts.get(target.name, smoke_host()),
                work=self.options.out_root / STAGING_DIR,
            )
        except cache.InvalidEntry as invalid:
            reason = invalid.reason
        except RegistryError as error:
            reason = error.message
        except OSError as error:
            reason = f"cannot read {error.filename or 'a file'}: {error.strerror or error}"
        else:
            self.view.step(target.name, f"uploaded to the remote cache: {where}", done=True)
            return None
        note = f"not uploaded to the remote cache {remote}: {reason}"
        self.view.step(target.name, note, done=True)
        return note


class _Phases:
    """The run's phases timed back to back: "startup" (from the process's start: imports, recipes,
    engines) up to the run's start, then each phase up to the next one's start."""

    def __init__(self, first: str) -> None:
        self.seconds = {"startup": process_seconds()}
        self._current: str | None = first
        self._since = time.monotonic()

    def enter(self, name: str | None) -> None:
        """The phase in progress ends (a phase entered again adds up), `name` starts (None: none)."""
        now = time.monotonic()
        if self._current is not None:
            self.seconds[self._current] = self.seconds.get(self._current, 0.0) + now - self._since
        self._current, self._since = name, now

    def finish(self) -> dict[str, float]:
        """Every phase's seconds, the one in progress ended."""
        self.enter(None)
        return dict(self.seconds)


@contextlib.contextmanager
def _prestarting(stages: TargetStages, targets: Sequence[Target]) -> Iterator[None]:
    """Builders started ahead of the builds on their own thread, which is stopped and waited for on
    exit (a builder it started afterwards would outlive the run's cleanup)."""
    done = threading.Event()
    thread = threading.Thread(
        target=stages.prestart_builders, args=(targets, done), name="osless-prestart", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _toolchain_error(error: OslessError | OSError, work_dir: Path) -> OslessError:
    """A toolchain that could not be provisioned, as the error its targets fail with."""
    if isinstance(error, OslessError):
        return error
    return ToolchainError(os_reason(error, work_dir))

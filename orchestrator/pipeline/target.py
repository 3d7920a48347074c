"""One target's stages: its cached result reused, or build → verify → package; then its smoke test.

Every failure ends the target with a report (the stage and a one-line reason), never an exception: a
stage that fails, a file of out/ that cannot be written, an engine that stops answering, a bug of ours.
Every part of a target's time in this run is in its report's `seconds` (outputs.profile.STAGES): the
waits for a slot, the cache lookup, the build's parts, verify, package, load and the smoke test.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from orchestrator.errors import EngineError, OslessError, RegistryError
from orchestrator.image import oci
from orchestrator.image.extras import extra_files
from orchestrator.outputs.atomic import write_atomic
from orchestrator.outputs.progress import ProgressView
from orchestrator.outputs.report import BinaryInfo, ImageInfo, Status, TargetReport, to_jsonable
from orchestrator.pipeline import cache, remote_cache
from orchestrator.pipeline.engines import Engines
from orchestrator.pipeline.provenance import Provenance
from orchestrator.pipeline.scheduler import Slot, SmokeDue
from orchestrator.pipeline.targets import Target
from orchestrator.platforms import Platform, host_platform, is_emulated
from orchestrator.recipe.model import Project, Service
from orchestrator.stages import build as build_stage
from orchestrator.stages import fetch as fetch_stage
from orchestrator.stages import package as package_stage
from orchestrator.stages import smoke as smoke_stage
from orchestrator.stages import verify as verify_stage
from orchestrator.stages.build import StepTime
from orchestrator.stages.fetch import FetchInfo
from orchestrator.stages.package import PackageResult
from orchestrator.stages.smoke import SmokeResult
from orchestrator.stages.toolchain import ToolchainImage

T = TypeVar("T")
NOT_STARTED = "not started: the run was stopped (--fail-fast)"
STAGING_DIR = ".remote-cache"  # out/.remote-cache/<key>: an entry being downloaded, or its document uploaded


def smoke_host() -> str | None:
    """The machine platform smoke tests run on here: what a cache entry records its smoke pass with."""
    host = host_platform()
    return host.name if host else None


class StageFailed(Exception):
    """A target stopped at a stage; carries the stage name and one-line reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class StageTracker:
    """Collects what a target produced, stage by stage, and times each stage and its parts."""

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
        self.fetch: FetchInfo | None = None
        self.result_from = "built"  # or "remote-cache" (a local-cache hit returns its recorded report)
        self.notes: list[str] = []
        self.steps: tuple[StepTime, ...] = ()
        self.jobs: int | None = None

    @contextlib.contextmanager
    def stage_(self, name: str, waiting: str | None = None, *, part: str | None = None) -> Iterator[None]:
        """Time a stage, or a `part` of it under that name (`docker load` is the package stage's); an
        engine error inside it becomes that stage's failure."""
        self.stage = name
        self.view.step(self.target.name, waiting or part or name)
        with self.timed(part or name):
            try:
                yield
            except EngineError as error:
                raise StageFailed(name, error.message) from error

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the seconds spent inside to seconds[name]."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - started, 2)

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
            seconds=dict(self.seconds),
            log=self.log,
            engine=self.engine,
            fetch=self.fetch,
            cached=self.result_from != "built",
            result_from=self.result_from,
            notes=list(self.notes),
            steps=self.steps,
            jobs=self.jobs,
        )


def os_reason(error: OSError, fallback: Path) -> str:
    """'cannot write PATH: No space left on device', from an OSError of any write in out/."""
    return f"cannot write {error.filename or fallback}: {error.strerror or error}"


def internal_error(error: Exception, directory: Path) -> str:
    """The reason for a bug of ours, its traceback kept in directory/error.log (called while handling it)."""
    where = directory / "error.log"
    try:
        write_atomic(where, traceback.format_exc().encode())
    except OSError:
        where = Path("(not written: the output directory is not writable)")
    return f"internal error: {type(error).__name__}: {error} (traceback: {where})"


@dataclass(frozen=True, kw_only=True)
class _Packaged:
    """A target that passed every stage up to packaging, waiting for its smoke test."""

    target: Target
    tracker: StageTracker
    output_dir: Path
    key: str | None
    packaged: PackageResult


class TargetStages:
    """Runs targets through their stages with what the run provisioned and read; records, for the
    service layouts, each passed target's image and key and which results are still to save."""

    def __init__(
        self,
        project: Project,
        *,
        engines: Engines,
        builders: Mapping[str, build_stage.Builders],
        toolchains: Mapping[tuple[str, str], ToolchainImage | OslessError],
        provenance: Mapping[str, Provenance],
        source_digests: Mapping[str, str | OslessError],
        slim_size: int | None,
        out_root: Path,
        rebuild: bool,
        stop: threading.Event,
        view: ProgressView,
        cache_from: tuple[remote_cache.RemoteCache, ...] = (),
        trust_cache_smoke: bool = False,
    ) -> None:
        self.project = project
        self.engines = engines
        self.builders = builders
        self.toolchains = toolchains  # (engine name, toolchain name) -> its image there, or why not
        self.provenance = provenance  # service name -> its source's provenance
        self.source_digests = source_digests  # service name -> its source tree's digest, or why not
        self.slim_size = slim_size
        self.out_root = out_root
        self.rebuild = rebuild
        self.stop = stop
        self.view = view
        self.cache_from = cache_from  # looked up in order after out/'s own result
        self.trust_cache_smoke = trust_cache_smoke
        self.trackers: dict[str, StageTracker] = {}  # target name -> its progress (for interrupts)
        # target name -> the machine platform its smoke pass was on, for a trusted remote entry's
        self.smoke_hosts: dict[str, str | None] = {}
        self.keys: dict[str, str | None] = {}  # target name -> its cache key
        self.images: dict[str, oci.Image] = {}  # target name -> image that passed every stage
        # target name -> (output dir, key) of passed targets whose result.json is still to write
        self.unsaved: dict[str, tuple[Path, str]] = {}
        self._extras: dict[tuple[str, str], list[oci.FileEntry]] = {}  # (engine, service) -> extras
        self._memo_lock = threading.Lock()
        self._tags: dict[str, dict[str, str]] = {}  # engine name -> its image tags and ids, listed once

    def toolchain(self, target: Target) -> ToolchainImage | OslessError:
        return self.toolchains[self.engines.name_for(target.platform), target.service.toolchain]

    def not_started(self, target: Target) -> TargetReport:
        return self._track(target).report(Status.CANCELLED, "queued", NOT_STARTED)

    def up_to_package(self, target: Target, slot: Slot) -> TargetReport | SmokeDue[TargetReport]:
        """Every stage up to packaging (or the cached result); then the smoke test is due. A service
        that cannot be built (its source is missing) fails at build with the reason, touching nothing.
        `slot`: how long it waited for a build worker, and its share of the cores for its build."""
        tracker = self._track(target)
        tracker.seconds["queued"] = round(slot.waited, 2)
        if target.service.unbuildable is not None:
            return tracker.report(Status.FAILED, "build", target.service.unbuildable)
        output_dir = target.output_dir(self.out_root)
        with tracker.timed("cache"):  # the key, and out/'s own result for it
            key = self._guarded(tracker, output_dir, lambda: self._key(target))
            cached = (
                self._guarded(tracker, output_dir, lambda: self._cached(target, output_dir, key, tracker))
                if isinstance(key, str) and not self.rebuild
                else None
            )
        if isinstance(key, TargetReport):
            return key
        if isinstance(cached, TargetReport):
            return cached
        self.keys[target.name] = key
        if key is not None and not self.rebuild:
            reused = self._guarded(
                tracker, output_dir, lambda: self._reuse(target, output_dir, key, cached, tracker)
            )
            if reused is not None:
                return reused
        try:  # also the old result goes: nothing half-done looks valid
            shutil.rmtree(output_dir, ignore_errors=True)
            output_dir.mkdir(parents=True)
        except OSError as error:
            return tracker.report(Status.FAILED, "build", os_reason(error, output_dir))
        packaged = self._guarded(
            tracker, output_dir, lambda: self._build_stages(target, output_dir, tracker, slot)
        )
        if isinstance(packaged, TargetReport):
            return packaged
        due = _Packaged(target=target, tracker=tracker, output_dir=output_dir, key=key, packaged=packaged)
        return SmokeDue(smoke=functools.partial(self._smoke, due), emulated=is_emulated(target.platform))

    def _track(self, target: Target) -> StageTracker:
        tracker = StageTracker(target, self.view, self.engines.name_for(target.platform))
        self.trackers[target.name] = tracker
        return tracker

    def _smoke(self, due: _Packaged, waited: float) -> TargetReport:
        """The smoke stage, `waited` seconds after it was due. A target that passed it is recorded for
        reuse (result.json) only once its service's OCI layout is written too: everything it
        contributes is then on disk."""
        due.tracker.seconds["smoke-queued"] = round(waited, 2)
        failed = self._guarded(due.tracker, due.output_dir, lambda: self._smoke_stage(due))
        if isinstance(failed, TargetReport):
            return failed
        report = due.tracker.report(Status.PASSED, None, None)
        if due.key is not None:
            self.unsaved[due.target.name] = (due.output_dir, due.key)
        return report

    def _guarded(self, tracker: StageTracker, output_dir: Path, stages: Callable[[], T]) -> T | TargetReport:
        """Run stages; a stage failure, a file that cannot be written or a bug of ours ends the target
        with a report."""
        try:
            return stages()
        except StageFailed as failure:
            cancelled = self.stop.is_set() and self.engines.default.cancelled
            return tracker.report(
                Status.CANCELLED if cancelled else Status.FAILED, failure.stage, failure.reason
            )
        except OSError as error:  # out/ full or unwritable: the stage failed, saying which file
            return tracker.report(Status.FAILED, tracker.stage, os_reason(error, output_dir))
        except OslessError as error:  # e.g. the engine stopped answering outside a stage
            return tracker.report(Status.FAILED, tracker.stage, error.message)
        except Exception as error:  # a bug of ours: keep the run going, keep the evidence
            return tracker.report(Status.FAILED, tracker.stage, internal_error(error, output_dir))

    def prestart_builders(self, targets: Sequence[Target], done: threading.Event) -> None:
        """The builders of the services that will build (no result in out/ for the key; none when a
        remote cache may still have it), started in target order ahead of their first build, until
        `done`: a build then finds its builder started instead of waiting half a second for it. What
        fails here is left for the build to meet and report."""
        if self.cache_from:
            return
        for target in targets:
            if done.is_set() or self.stop.is_set():
                return
            if target.service.unbuildable is not None:  # fails at once: no toolchain was provisioned
                continue
            toolchain = self.toolchain(target)
            if not isinstance(toolchain, ToolchainImage):
                continue
            try:
                key = self._key(target)
                if not self.rebuild and cache.recorded_key(target.output_dir(self.out_root)) == key:
                    continue
                self.builders[self.engines.name_for(target.platform)].container(
                    self.project.toolchains[target.service.toolchain], toolchain.reference, target.service
                )
            except (StageFailed, OslessError, OSError):
                continue

    def _key(self, target: Target) -> str | None:
        """The target's cache key; None when its toolchain is not available."""
        toolchain_image = self.toolchain(target)
        if not isinstance(toolchain_image, ToolchainImage):
            return None
        digest = self.source_digests[target.service.name]
        if isinstance(digest, OslessError):
            raise StageFailed("build", digest.message)
        return cache.target_key(
            cache.KeyInputs(
                service=target.service,
                toolchain=self.project.toolchains[target.service.toolchain],
                toolchain_image_id=toolchain_image.image_id,
                platform=target.platform,
                source_digest=digest,
                provenance=self.provenance[target.service.name],
            )
        )

    def _reuse(
        self, target: Target, output_dir: Path, key: str, cached: cache.Cached | None, tracker: StageTracker
    ) -> TargetReport | SmokeDue[TargetReport] | None:
        """out/'s own result for the key, else the first --cache-from entry for it that checks out;
        None: build it."""
        if cached is not None:
            return self._reuse_local(target, cached, tracker)
        for remote in self.cache_from:
            hit = self._reuse_remote(remote, target, output_dir, key, tracker)
            if hit is not None:
                return hit
        return None

    def _cached(
        self, target: Target, output_dir: Path, key: str, tracker: StageTracker
    ) -> cache.Cached | None:
        """A passed result in out/ with the same key whose files are still what it recorded (else None:
        a rebuild, with a note)."""
        try:
            return cache.load(output_dir, key, target.platform)
        except cache.InvalidEntry as invalid:
            self.view.step(target.name, f"cached result invalid: {invalid.reason}; rebuilding")
            tracker.notes.append(f"the result in out/ was ignored: {invalid.reason}")
            return None

    def _reuse_local(self, target: Target, cached: cache.Cached, tracker: StageTracker) -> TargetReport:
        """The recorded result, its image back in the engine if it was removed; its seconds, steps and
        jobs are this run's (queued, cache, load), not those of the run that built it."""
        report, image = cached.report, cached.report.image
        engine = self.engines.for_platform(target.platform)
        with tracker.timed("load"):
            if image is None or self._tagged(target.platform).get(image.tag) != image.image_id:
                engine.load_image(cached.archive)
        self.images[target.name] = cached.image
        self.view.step(target.name, "cached: inputs unchanged", done=True)
        return replace(
            report, result_from="local-cache", notes=[], seconds=dict(tracker.seconds), steps=(), jobs=None
        )

    def _reuse_remote(
        self,
        remote: remote_cache.RemoteCache,
        target: Target,
        output_dir: Path,
        key: str,
        tracker: StageTracker,
    ) -> TargetReport | SmokeDue[TargetReport] | None:
        """The entry for the key in `remote`, downloaded and checked (remote_cache), its binary verified
        and packaged again here into the very image it records; then its smoke test, unless trusted.
        An entry that fails any check, or a registry that fails, is a note, and the target is built."""
        unusable = remote.unusable()
        if unusable is not None:
            tracker.notes.append(f"remote cache {remote} not used: {unusable}")
            return None
        staging = self.out_root / STAGING_DIR / key
        remote_cache.discard(staging)
        try:
            with tracker.stage_("cache", f"remote cache {remote}"):
                entry = remote.fetch(
                    key,
                    service=target.service.name,
                    platform=target.platform,
                    staging=staging,
                    output_dir=output_dir,
                )
            if entry is None:
                return None
            shutil.rmtree(output_dir, ignore_errors=True)
            output_dir.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(output_dir)
            packaged = self._check_entry(target, output_dir, entry, tracker)
        except (cache.InvalidEntry, RegistryError, OSError) as error:  # OSError: out/ cannot take it
            reason = (
                error.reason
                if isinstance(error, cache.InvalidEntry)
                else error.message
                if isinstance(error, RegistryError)
                else os_reason(error, staging)
            )
            note = f"remote cache {remote}: the entry for key {key[:12]} was ignored: {reason}"
            self.view.step(target.name, f"{note}; building")
            tracker.notes.append(note)
            return None
        finally:
            remote_cache.discard(staging)
        tracker.result_from = remote_cache.RESULT_FROM_REMOTE
        self.view.step(target.name, f"remote cache hit: {entry.source}")
        tracker.notes.append(f"from {entry.source}")
        recorded = entry.report.smoke
        here = smoke_host()
        if self.trust_cache_smoke and recorded and recorded.passed and here and entry.smoke_host == here:
            tracker.smoke = recorded
            tracker.notes.append(f"smoke test not run: --trust-cache-smoke, the entry passed it on {here}")
            self.images[target.name] = packaged.image
            self.unsaved[target.name] = (output_dir, key)
            self.smoke_hosts[target.name] = entry.smoke_host
            return tracker.report(Status.PASSED, None, None)
        due = _Packaged(target=target, tracker=tracker, output_dir=output_dir, key=key, packaged=packaged)
        return SmokeDue(smoke=functools.partial(self._smoke, due), emulated=is_emulated(target.platform))

    def _check_entry(
        self, target: Target, output_dir: Path, entry: remote_cache.Entry, tracker: StageTracker
    ) -> PackageResult:
        """The downloaded binary verified again and packaged into its image, which must be the image
        the entry records; the tracker learns what the target has only once all of it checked out."""
        service, platform, recorded = target.service, target.platform, entry.report
        toolchain = self.toolchain(target)
        if not isinstance(toolchain, ToolchainImage) or recorded.binary is None or recorded.image is None:
            raise cache.InvalidEntry("it records no binary or image")
        binary = Path(recorded.binary.path)
        with tracker.stage_("verify"):
            verdict = verify_stage.verify(binary, service, platform, output_dir)
            info = verify_stage.binary_info(binary, verdict)
        if not verdict.ok:
            raise cache.InvalidEntry(f"its binary fails verification: {verdict.reason}")
        if (info.sha256, info.size) != (recorded.binary.sha256, recorded.binary.size):
            raise cache.InvalidEntry("its binary is not the one its report records (sha256)")
        packaged = self._package(target, binary, output_dir, toolchain, tracker)
        if (packaged.image.digest, packaged.image.image_id) != (
            recorded.image.manifest_digest,
            recorded.image.image_id,
        ):
            raise cache.InvalidEntry("its binary packages into another image than the one it records")
        tracker.toolchain_image = toolchain.image_id
        tracker.verify_findings = [to_jsonable(f) for f in verdict.findings]
        tracker.binary = info
        tracker.image = self._image_info(packaged, info)
        tracker.log = recorded.log
        tracker.fetch = recorded.fetch
        return packaged

    def _image_info(self, packaged: PackageResult, binary: BinaryInfo | None) -> ImageInfo:
        return ImageInfo(
            tag=packaged.tag,
            image_id=packaged.image.image_id,
            manifest_digest=packaged.image.digest,
            size=packaged.image.size,
            on_debian_slim=self.slim_size + binary.size if self.slim_size and binary else None,
        )

    def _build_stages(
        self, target: Target, output_dir: Path, tracker: StageTracker, slot: Slot
    ) -> PackageResult:
        service, platform = target.service, target.platform
        toolchain = self.toolchain(target)
        provenance = self.provenance[service.name]
        if not isinstance(toolchain, ToolchainImage):
            raise StageFailed("toolchain", toolchain.message)
        tracker.toolchain_image = toolchain.image_id
        fetched = self._fetch(target, output_dir, tracker, toolchain.reference, provenance.source_date_epoch)

        builders = self.builders[self.engines.name_for(platform)]
        with tracker.stage_("build"):
            tracker.jobs = slot.cores(builders.engine.cpus, builders.jobs(service))
            built = build_stage.build(
                builders,
                fetch_stage.with_fetched(service, fetched),
                toolchain=self.project.toolchains[service.toolchain],
                toolchain_image=toolchain.reference,
                platform=platform,
                output_dir=output_dir,
                source_date_epoch=provenance.source_date_epoch,
                jobs=tracker.jobs,
            )
        tracker.seconds.update(_build_seconds(built.timings))  # the stage's time, split into its parts
        tracker.log, tracker.steps = str(built.log), built.steps
        if not built.ok:
            raise StageFailed("build", build_stage.failure_reason(built))

        with tracker.stage_("verify"):
            verdict = verify_stage.verify(built.binary, service, platform, output_dir)
            tracker.verify_findings = [to_jsonable(f) for f in verdict.findings]
            tracker.binary = verify_stage.binary_info(built.binary, verdict)
            if not verdict.ok:
                raise StageFailed("verify", verdict.reason or "verification failed")

        packaged = self._package(target, built.binary, output_dir, toolchain, tracker)
        tracker.image = self._image_info(packaged, tracker.binary)
        return packaged

    def _package(
        self, target: Target, binary: Path, output_dir: Path, toolchain: ToolchainImage, tracker: StageTracker
    ) -> PackageResult:
        """The target's image from its binary, written to out/ ("package") and loaded into the engine
        ("load", a part of the package stage): what a build and a remote cache hit both do."""
        service, platform = target.service, target.platform
        with tracker.stage_("package"):
            packaged = package_stage.package(
                service,
                platform=platform,
                binary=binary,
                provenance=self.provenance[service.name],
                output_dir=output_dir,
                toolchain_image_id=toolchain.image_id,
                extras=self._extras_for(service, platform, toolchain.reference),
            )
        with tracker.stage_("package", "docker load", part="load"):
            package_stage.load(self.engines.for_platform(platform), output_dir)
        return packaged

    def _fetch(
        self, target: Target, output_dir: Path, tracker: StageTracker, image: str, source_date_epoch: int
    ) -> fetch_stage.Fetched | None:
        """The fetch step before the build (none without [fetch]), timed as "fetch"; it fails the
        target at build: the build is what needs what it fetches."""
        spec = target.service.fetch
        if spec is None:
            return None
        tracker.stage = "build"
        self.view.step(target.name, "fetch (with a network)" if spec.network else "fetch")
        try:
            with tracker.timed("fetch"):
                fetched = fetch_stage.fetch(
                    self.builders[self.engines.name_for(target.platform)],
                    target.service,
                    toolchain=self.project.toolchains[target.service.toolchain],
                    toolchain_image=image,
                    platform=target.platform,
                    output_dir=output_dir,
                    source_date_epoch=source_date_epoch,
                )
        except fetch_stage.FetchFailed as failure:
            raise StageFailed("build", failure.reason) from failure
        except EngineError as error:
            raise StageFailed("build", f"the fetch step: {error.message}") from error
        tracker.fetch = fetched.info if fetched is not None else None
        return fetched

    def _smoke_stage(self, due: _Packaged) -> None:
        target, tracker = due.target, due.tracker
        with tracker.stage_(
            "smoke", f"smoke (qemu-{target.platform.qemu})" if is_emulated(target.platform) else None
        ):
            result = smoke_stage.smoke(
                self.engines.for_platform(target.platform),
                target.service,
                target.platform,
                due.packaged.tag,
                built=due.packaged.image,
            )
            tracker.smoke = result
            if not result.passed:
                raise StageFailed("smoke", result.reason or "smoke test failed")
        self.images[target.name] = due.packaged.image

    def _tagged(self, platform: Platform) -> dict[str, str]:
        """The engine's image tags when its first cached target was checked: one listing, not a call per
        cached target (two targets never share a tag, so a tag loaded since is this run's own)."""
        name = self.engines.name_for(platform)
        with self._memo_lock:
            if name not in self._tags:
                self._tags[name] = self.engines.for_platform(platform).tagged_images()
            return self._tags[name]

    def _extras_for(self, service: Service, platform: Platform, toolchain_image: str) -> list[oci.FileEntry]:
        """The service's image extras, read from its toolchain image once per engine and run."""
        key = (self.engines.name_for(platform), service.name)
        with self._memo_lock:
            if key not in self._extras:
                self._extras[key] = extra_files(
                    self.engines.for_platform(platform), toolchain_image, service.image, service.source
                )
            return self._extras[key]


def _build_seconds(timings: Mapping[str, float]) -> dict[str, float]:
    """The build's own timings as report stages: its steps are the "build" stage."""
    return {"build" if part == "steps" else part: seconds for part, seconds in timings.items()}

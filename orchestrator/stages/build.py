"""Stage 2: compile one (service, platform) inside its service's warm builder container.

One builder container per (toolchain image, service) lives for the whole run and every build of that
service is a series of `docker exec` in it: starting a container per target costs more than many
compiles. A builder sees only its service's source (read-only, at `/project/<source>` as always), a
private scratch volume for outputs, the project's workspace volume and compiler cache volume for its
toolchain image, and a tmpfs /tmp; no network, no capabilities, read-only root, a fixed non-root user,
and the recipe's pids/memory/CPU limits.

Each build runs in its target's workspace: a writable copy of the source at a fixed path,
`/workspace/<service>/<platform>`, kept from the previous build and synced with the source, or copied
afresh (`cp -a`: mtimes kept, as make and autotools need; stages/workspace.py says when). Fixed, because
paths end up in binaries: the same on every machine and run, so builds stay reproducible; per target,
because the builder is shared by the service's platforms, which build at the same time. The recipe's
command, steps or script run there in order, each with its own section in build.log, all within the
build's timeout. osless copies the binary (`{output}` or the recipe's `artifact`) out through the
engine's archive API (one regular file, bounded) and writes it to out/ itself: a build cannot write to
out/ at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import posixpath
import re
import shlex
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from orchestrator.engine import (
    PROJECT_LABEL,
    ROLE_LABEL,
    ContainerResult,
    ContainerSpec,
    Engine,
    FileRefused,
    Mount,
    project_label,
)
from orchestrator.errors import EngineError
from orchestrator.languages import build_env_defaults, build_records
from orchestrator.outputs.atomic import write_atomic
from orchestrator.platforms import Platform
from orchestrator.recipe.model import Service, Toolchain
from orchestrator.recipe.placeholders import build_env, build_values, fill, script_env
from orchestrator.stages import workspace as workspaces
from orchestrator.stages.workspace import SourceTree, read_source

PROJECT_DIR = "/project"
OUTPUT_DIR = "/osless-out"  # a scratch volume in the builder: never out/ itself
WORKSPACE_DIR = "/workspace"  # the workspace volume (stages/workspace.py): one directory per target
CACHE_DIR = "/cache"
# Per project and toolchain image: one project's recipes cannot poison another's compiler cache.
CACHE_VOLUME = "osless-cache-{toolchain}-{project}-{image}{namespace}"
# Build commands run as this user, never as the caller: a fixed uid keeps caches and paths the same.
BUILD_USER = "65532:65532"
BINARY_LIMIT = 1024**3  # a binary larger than this is refused
RECORDS_DIR = "records"  # out/<service>/<platform>/records: workspace files kept for the SBOM
RECORD_LIMIT = 16 * 1024**2  # a larger one is not kept
LOG_STREAM_LIMIT = 2 * 1024**2  # bytes of stdout and of stderr kept in build.log (4 MiB in all)
STEP_LOG_MINIMUM = 256 * 1024  # ...but every step keeps at least this much of each: its errors
# Compilers want a writable home and cache, and must never fetch anything (each language's own settings).
BUILD_ENV_DEFAULTS = {"HOME": "/tmp", "XDG_CACHE_HOME": CACHE_DIR}
# Where a platform's libraries are found (its GNU and musl triples filled in): Debian's multiarch
# directory, the cross toolchain's, musl's.
_LIBRARY_DIRS = ("/usr/lib/{gnu}", "/lib/{gnu}", "/usr/{gnu}/lib", "/usr/local/lib/{gnu}", "/usr/lib/{musl}")
_CANNOT_FIND = re.compile(rb"(?:cannot find|unable to find library) -l([A-Za-z0-9_.+-]{1,100})")
_ERROR_LINE = re.compile(r"\b(?:error|fatal)\b", re.IGNORECASE)
_SHELL_NOT_FOUND = re.compile(rb"^sh: (?:\d+: )?(.{1,200}): (not found|Permission denied)$", re.MULTILINE)


def target_cache(service: Service, platform: Platform) -> str:
    """The cache directory of one (service, platform), in the toolchain's cache volume: what only this
    target's builds reuse (a cargo target directory)."""
    return f"{CACHE_DIR}/targets/{service.name}/{platform.slug}"


def workspace_dir(service: Service, platform: Platform) -> str:
    """The target's workspace, `{WORKSPACE}`: the same path on every machine and run, one per target."""
    return f"{WORKSPACE_DIR}/{service.name}/{platform.slug}"


@dataclass(frozen=True, kw_only=True)
class PreparedWorkspace:
    """How a build's workspace was prepared: the exec, the plan it followed, what it did, and where
    the record goes once the build succeeds."""

    result: ContainerResult
    plan: workspaces.Plan
    outcome: workspaces.Outcome
    source: str  # the service's source in the builder
    record: Path


@dataclass(frozen=True, kw_only=True)
class StepTime:
    """How long one step of a build ran, named as build.log names it ("step 2/3 (make)")."""

    label: str
    seconds: float
    exit_code: int


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a build produced: the binary (when it succeeded) and where its log is."""

    ok: bool
    binary: Path
    log: Path
    exit_code: int
    timed_out: bool
    seconds: float
    problem: str | None = None  # why the binary could not be taken out of the builder
    reason: str | None = None  # why the build failed, naming the step and the tool
    steps: tuple[StepTime, ...] = ()  # the steps that ran, in order
    # seconds (2 decimals) of "builder", "workspace", "steps" and "copy-out": the build's whole time
    timings: dict[str, float] = field(default_factory=dict)
    incremental: bool = False  # the workspace was kept from the previous build and synced


def container_env(
    service: Service, toolchain: Toolchain, platform: Platform, source_date_epoch: int
) -> dict[str, str]:
    """Defaults that keep compilers offline and writable, then the recipes' merged env (which wins).
    (Their names are recipe.placeholders.osless_env_names: a placeholder may use them.)"""
    return {
        **BUILD_ENV_DEFAULTS,
        **build_env_defaults(CACHE_DIR, target_cache(service, platform)),
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
        **build_env(toolchain, platform.name, service.build.env),
    }


def build_commands(service: Service, values: dict[str, str]) -> list[list[str]]:
    """Every step's argv, placeholders filled from `values` (placeholders.build_values), in the order
    the recipe loader checked them; a script is `sh -eu -c SCRIPT`, its text untouched."""
    if service.build.script is not None:
        return [list(argv) for argv in service.build.argv_templates]
    return [[fill(argument, values) for argument in argv] for argv in service.build.argv_templates]


def build_command(
    service: Service, platform: Platform, env: dict[str, str], output: str, *, jobs: int = 1
) -> list[str]:
    """The first step's argv (a `command` recipe's only one), for tests that run it themselves."""
    values = build_values(platform, env, output=output, jobs=jobs, workspace=workspace_dir(service, platform))
    return build_commands(service, values)[0]


def artifact_path(service: Service, values: dict[str, str], workspace: str) -> str | None:
    """Where the recipe's `artifact` is in the builder (relative: to the workspace); None: `{output}`."""
    if service.build.artifact is None:
        return None
    return posixpath.normpath(posixpath.join(workspace, fill(service.build.artifact, values)))


class Builders:
    """The run's warm builder containers, one per (toolchain image, service), started on first use;
    a context manager: `with Builders(...) as builders:` removes them on exit, whatever happens.

    On the local engine the service's source is bind-mounted read-only. An engine given with
    `--engine` may run elsewhere and not see this machine's files (copy_files): the service's source
    is copied into the builder once, at the same path, so the binaries come out the same. Either way
    each build syncs it into (or copies it into) its target's workspace, and each binary is copied out
    of the builder. `sources` are the services' source trees as the run read them (else read on first
    use); `rebuild`: every build gets a fresh copy.
    """

    def __init__(
        self,
        engine: Engine,
        project_root: Path,
        out_root: Path,
        cache_namespace: str = "",
        *,
        copy_files: bool = False,
        rebuild: bool = False,
        sources: Mapping[str, SourceTree] | None = None,
    ) -> None:
        self.engine = engine
        self.cache_namespace = cache_namespace
        self.project_root = project_root
        self.out_root = out_root
        self.copy_files = copy_files
        self.rebuild = rebuild
        self.project = project_label(project_root)
        self._sources = dict(sources or {})
        self._containers: dict[tuple[str, str], Any] = {}
        self._starting: dict[tuple[str, str], threading.Lock] = {}
        self._workspaces: dict[tuple[str, str], threading.Lock] = {}
        self._image_ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Builders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Remove the builders (never raises: what the engine could not remove is in its leftovers)."""
        with self._lock:
            containers, self._containers = list(self._containers.values()), {}
        self.engine.remove_containers(containers)

    def container(self, toolchain: Toolchain, image: str, service: Service) -> Any:
        """The service's builder for the toolchain image (started by the first build that needs it)."""
        key = (image, service.name)
        with self._lock:
            starting = self._starting.setdefault(key, threading.Lock())
        with starting:  # builders of other services start meanwhile
            if key not in self._containers:
                self._containers[key] = self._start(toolchain, image, service)
            return self._containers[key]

    def cache_volume(self, toolchain: Toolchain, image: str) -> str:
        """The compiler cache volume of this project and toolchain image."""
        return CACHE_VOLUME.format(
            toolchain=toolchain.name,
            project=self.project[:12],
            image=self._image_id(image)[:12],
            namespace=self.cache_namespace,
        )

    def workspace_volume(self, toolchain: Toolchain, image: str) -> str:
        """The workspace volume of this project, out/ directory and toolchain image."""
        return workspaces.volume_name(
            toolchain=toolchain.name,
            project=self.project,
            out_root=self.out_root,
            image_id=self._image_id(image),
            namespace=self.cache_namespace,
        )

    def _image_id(self, image: str) -> str:
        """The image's id without `sha256:` (the reference when the engine does not know it), asked once."""
        with self._lock:
            known = self._image_ids.get(image)
        if known is None:
            known = (self.engine.image_id(image) or image).removeprefix("sha256:")
            with self._lock:
                self._image_ids[image] = known
        return known

    def source_tree(self, service: Service) -> SourceTree:
        """The service's source tree: as the run read it, else read now (once)."""
        with self._lock:
            tree = self._sources.get(service.name)
        if tree is None:
            tree = read_source(service.source)
            with self._lock:
                self._sources[service.name] = tree
        return tree

    def source_dir(self, service: Service) -> str:
        """Where the service's source is in its builder (read-only; each build copies it)."""
        return f"{PROJECT_DIR}/{service.source.relative_to(self.project_root)}"

    def jobs(self, service: Service) -> int:
        """`{JOBS}`: the build's CPU limit rounded up, at most the engine's cores, at least 1."""
        return max(1, min(math.ceil(service.build.limits.cpus), self.engine.cpus))

    @contextlib.contextmanager
    def workspace(self, image: str, path: str) -> Iterator[None]:
        """Hold a workspace of one builder: two builds of one target never share it at once (a run
        holds its out/, so runs never share a workspace volume)."""
        with self._lock:
            lock = self._workspaces.setdefault((image, path), threading.Lock())
        with lock:
            yield

    def prepare_workspace(
        self,
        container: Any,
        service: Service,
        platform: Platform,
        *,
        output: str,
        toolchain: Toolchain,
        image: str,
        build_key: str,
        timeout: float,
    ) -> PreparedWorkspace:
        """The target's output directory emptied, and its workspace synced with the service's source
        when the previous successful build left it usable, else emptied and filled with a fresh
        writable copy (stages/workspace.py)."""
        record = workspaces.record_path(
            self.out_root, self.workspace_volume(toolchain, image), service.name, platform.slug
        )
        refused = (
            workspaces.REBUILD
            if self.rebuild
            else None
            if service.build.incremental
            else workspaces.NOT_INCREMENTAL
        )
        plan = workspaces.plan(
            workspaces.read_record(record), self.source_tree(service).entries, build_key, refused=refused
        )
        source = os.path.normpath(self.source_dir(service))
        result = self.engine.exec(
            container,
            workspaces.command(
                plan, output=output, workspace=workspace_dir(service, platform), source=source
            ),
            env={},
            working_dir="/",
            user=BUILD_USER,
            timeout=max(timeout, 1.0),
            output_limit=STEP_LOG_MINIMUM,
        )
        return PreparedWorkspace(
            result=result,
            plan=plan,
            outcome=workspaces.outcome(plan, result.stdout, source=source),
            source=source,
            record=record,
        )

    def remember(self, prepared: PreparedWorkspace) -> None:
        """Record the workspace of a build that succeeded (its binary copied out): the next build of the
        target may keep it. Not in a run with a cache namespace (--check-reproducible's clean builds):
        its volumes are removed after it."""
        if not self.cache_namespace:
            workspaces.write_record(prepared.record, prepared.plan.record)

    def library_files(self, container: Any, platform: Platform, name: str) -> list[str]:
        """The `lib<name>.a`, `lib<name>.so` and `lib<name>.so.*` files in the platform's library
        directories of the builder (the name comes from a linker message: an argument, never code)."""
        directories = [d.format(gnu=platform.gnu_triple, musl=platform.musl_triple) for d in _LIBRARY_DIRS]
        listed = self.engine.exec(
            container,
            [
                "sh",
                "-c",
                'n=$1; shift; for d; do for f in "$d/lib$n.a" "$d/lib$n.so" "$d/lib$n.so".*; do '
                '[ -e "$f" ] && printf "%s\\n" "$f"; done; done; true',
                "sh",
                name,
                *dict.fromkeys(directories),
            ],
            env={},
            working_dir="/",
            user=BUILD_USER,
            timeout=30,
            output_limit=64 * 1024,
        )
        return listed.stdout.decode(errors="replace").splitlines() if listed.exit_code == 0 else []

    def _start(self, toolchain: Toolchain, image: str, service: Service) -> Any:
        volume = self.engine.ensure_volume(
            self.cache_volume(toolchain, image), labels={PROJECT_LABEL: self.project}
        )
        work_volume = self.engine.ensure_volume(
            self.workspace_volume(toolchain, image),
            labels={PROJECT_LABEL: self.project, ROLE_LABEL: "workspace"},
        )
        source_dir = os.path.normpath(self.source_dir(service))
        limits = service.build.limits
        container = self.engine.start_long_lived(
            ContainerSpec(
                image=image,
                command=(),
                role="builder",
                user=BUILD_USER,
                mounts=()
                if self.copy_files
                else (Mount(source=str(service.source), target=source_dir, read_only=True),),
                volumes={volume: CACHE_DIR, work_volume: WORKSPACE_DIR},
                scratch=(OUTPUT_DIR, PROJECT_DIR) if self.copy_files else (OUTPUT_DIR,),
                # Compilers and configure scripts run programs from /tmp: exec allowed, size bounded.
                tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={limits.memory}"},
                limits=limits,
                labels={PROJECT_LABEL: self.project},
            )
        )
        if self.copy_files:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                tar.add(service.source, arcname=os.path.relpath(source_dir, PROJECT_DIR))
            self.engine.put_archive(container, PROJECT_DIR, buffer.getvalue())
        # The volumes are created root-owned; uid 0 owns them, so its chmod needs no capability.
        opened = self.engine.exec(
            container,
            ["chmod", "1777", CACHE_DIR, OUTPUT_DIR, WORKSPACE_DIR],
            env={},
            working_dir="/",
            user="0:0",
            timeout=30,
        )
        if opened.exit_code != 0:
            raise EngineError(
                f"cannot prepare the {service.name} builder: chmod exited with {opened.exit_code}: "
                + opened.stderr.decode(errors="replace").strip()[:200]
            )
        return container

    def copy_out(self, container: Any, inside: str, binary: Path) -> str | None:
        """The built binary copied to out/ (atomically); why not, when it is not one regular file. A
        symbolic link (an artifact such as `result/bin/app`) is followed inside the builder."""
        try:
            with self.engine.read_file(container, inside, limit=BINARY_LIMIT) as content:
                _write_stream_atomic(binary, content, mode=0o755)
        except FileRefused as refused:
            if "symbolic link" not in refused.reason:
                return refused.reason
            target = self._resolved(container, inside)
            if target is None or target == inside:
                return refused.reason
            return self.copy_out(container, target, binary)
        return None

    def keep_records(
        self, container: Any, service: Service, toolchain: Toolchain, workspace: str, records: Path
    ) -> None:
        """The workspace's build records (a Cargo.lock cargo wrote) that the source lacks, copied to
        `records` for the SBOM; one that is not a regular file of bounded size is not kept."""
        for name in build_records(toolchain.languages):
            if (service.source / name).exists():
                continue
            try:
                with self.engine.read_file(container, f"{workspace}/{name}", limit=RECORD_LIMIT) as content:
                    records.mkdir(parents=True, exist_ok=True)
                    _write_stream_atomic(records / name, content, mode=0o644)
            except FileRefused:
                continue

    def _resolved(self, container: Any, path: str) -> str | None:
        resolved = self.engine.exec(
            container, ["readlink", "-f", "--", path], env={}, working_dir="/", user=BUILD_USER, timeout=30
        )
        target = resolved.stdout.decode(errors="replace").strip()
        return target if resolved.exit_code == 0 and target.startswith("/") else None


@dataclass(frozen=True, kw_only=True)
class _Failed:
    """Where a build stopped: a step (None: preparing the workspace), how it ended, whether by the timeout."""

    step: _Step | None
    result: ContainerResult
    timed_out: bool


@dataclass(frozen=True, kw_only=True)
class _Step:
    """One program of a build: its argv and how messages name it."""

    argv: list[str]
    where: str  # "step 2/3", "the build command", "the build script"
    tool: str | None  # the program's name, as messages show it; None for a script

    @property
    def label(self) -> str:
        return f"{self.where} ({self.tool})" if self.tool else self.where


def _steps(service: Service, commands: list[list[str]]) -> list[_Step]:
    if service.build.script is not None:
        return [_Step(argv=commands[0], where="the build script", tool=None)]
    if not service.build.steps:
        return [_Step(argv=commands[0], where="the build command", tool=_tool(commands[0]))]
    total = len(commands)
    return [
        _Step(argv=argv, where=f"step {number}/{total}", tool=_tool(argv))
        for number, argv in enumerate(commands, start=1)
    ]


def _tool(argv: list[str]) -> str:
    return posixpath.basename(argv[0]) or argv[0]


class _Log:
    """build.log, section by section: each step's command line, output, exit code and seconds."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.sections = 0
        self.kept = 0  # the most bytes kept of one stream so far

    def output_limit(self) -> int:
        """What the next step may keep of each stream: what is left of the build's, or a minimum."""
        return max(STEP_LOG_MINIMUM, LOG_STREAM_LIMIT - self.kept)

    def section(self, header: str, result: ContainerResult, seconds: float, limit: int) -> None:
        self.kept += max(len(result.stdout), len(result.stderr))
        self.sections += 1
        self.parts.append(
            f"{'' if self.sections == 1 else chr(10)}$ {header}\n".encode()
            + _lines(result.stdout)
            + _truncation_note("stdout", result.stdout_truncated, limit)
            + _lines(result.stderr)
            + _truncation_note("stderr", result.stderr_truncated, limit)
            + f"[osless] exit code {result.exit_code} after {seconds:.1f}s\n".encode()
        )

    def note(self, text: str) -> None:
        self.parts.append(f"[osless] {text}\n".encode())

    def write(self, path: Path) -> None:
        write_atomic(path, b"".join(self.parts))


def build(
    builders: Builders,
    service: Service,
    *,
    toolchain: Toolchain,
    toolchain_image: str,
    platform: Platform,
    output_dir: Path,
    source_date_epoch: int,
    jobs: int | None = None,
) -> BuildResult:
    """Build the target in its workspace, copy the binary to output_dir/bin and write
    output_dir/build.log. `jobs` is its `{JOBS}` (None: builders.jobs(service))."""
    bin_dir = output_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    binary = bin_dir / service.build.output
    log_path = output_dir / "build.log"
    records = output_dir / RECORDS_DIR
    shutil.rmtree(records, ignore_errors=True)  # a previous build's, never this one's
    env = container_env(service, toolchain, platform, source_date_epoch)
    # The same in-container path as out/<service>/<platform>/bin/<output>: {output} does not change.
    scratch = f"{OUTPUT_DIR}/{output_dir.relative_to(builders.out_root).as_posix()}"
    inside = f"{scratch}/bin/{service.build.output}"
    clock = _Clock()
    container = builders.container(toolchain, toolchain_image, service)
    clock.lap("builder")
    workspace = workspace_dir(service, platform)
    values = build_values(
        platform,
        env,
        output=inside,
        jobs=builders.jobs(service) if jobs is None else jobs,
        workspace=workspace,
    )
    steps = _steps(service, build_commands(service, values))
    step_env = script_env(values) if service.build.script is not None else env
    artifact = artifact_path(service, values, workspace)
    timeout = service.build.timeout
    log = _Log()
    problem = None
    with builders.workspace(toolchain_image, workspace):
        clock.lap("builder")  # waiting for the target's previous build in this run
        deadline = time.monotonic() + timeout  # the whole build: preparing the workspace and every step
        preparing = time.monotonic()
        prepared = builders.prepare_workspace(
            container,
            service,
            platform,
            output=scratch,
            toolchain=toolchain,
            image=toolchain_image,
            build_key=_build_key(service, platform, env, output=inside, workspace=workspace),
            timeout=timeout,
        )
        _log_workspace(log, prepared, workspace, time.monotonic() - preparing)
        clock.lap("workspace")
        times: list[StepTime] = []
        failed: _Failed | None = None
        if prepared.result.exit_code != 0:
            failed = _Failed(step=None, result=prepared.result, timed_out=prepared.result.timed_out)
        else:
            times, failed = _run_steps(
                builders, container, steps, env=step_env, workspace=workspace, deadline=deadline, log=log
            )
        clock.lap("steps")
        if failed is None:
            problem = builders.copy_out(container, artifact or inside, binary)
            builders.keep_records(container, service, toolchain, workspace, records)
            if problem is None:
                builders.remember(prepared)
        reason = (
            _failure(builders, container, service, toolchain=toolchain, platform=platform, failed=failed)
            if failed is not None
            else _missing_binary(service, artifact or inside, problem)
            if problem is not None
            else None
        )
    clock.lap("copy-out")
    if reason is not None:
        log.note(reason)
    log.note(f"{'build failed' if reason else 'built'} in {clock.total:.1f}s")
    log.write(log_path)
    return BuildResult(
        ok=reason is None,
        binary=binary,
        log=log_path,
        exit_code=failed.result.exit_code if failed else 0,
        timed_out=bool(failed and failed.timed_out),
        seconds=clock.total,
        problem=problem,
        reason=reason,
        steps=tuple(times),
        timings=clock.timings(),
        incremental=prepared.outcome.kept,
    )


def _run_steps(
    builders: Builders,
    container: Any,
    steps: list[_Step],
    *,
    env: dict[str, str],
    workspace: str,
    deadline: float,
    log: _Log,
) -> tuple[list[StepTime], _Failed | None]:
    """The steps in order, each with what is left of the build's time, until one fails."""
    times = []
    for step in steps:
        started = time.monotonic()
        budget = deadline - started
        limit = log.output_limit()
        result = (
            builders.engine.exec(
                container,
                step.argv,
                env=env,
                working_dir=workspace,
                user=BUILD_USER,
                timeout=budget,
                output_limit=limit,
            )
            if budget >= 1
            else ContainerResult(exit_code=124, stdout=b"", stderr=b"", timed_out=True)
        )
        seconds = time.monotonic() - started
        times.append(StepTime(label=step.label, seconds=round(seconds, 2), exit_code=result.exit_code))
        log.section(shlex.join(step.argv), result, seconds, limit)
        if result.exit_code != 0:
            # coreutils timeout: 124 when it fired, 137 when it had to kill; only then is it ours
            timed_out = result.exit_code in (124, 137) and seconds >= budget * 0.95
            return times, _Failed(step=step, result=result, timed_out=timed_out)
    return times, None


class _Clock:
    """A build's time, lap by lap: each lap's seconds go to a stage of `BuildResult.timings`."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.laps = dict.fromkeys(("builder", "workspace", "steps", "copy-out"), 0.0)

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.laps[stage] += now - self.last
        self.last = now

    @property
    def total(self) -> float:
        return self.last - self.started

    def timings(self) -> dict[str, float]:
        return {stage: round(seconds, 2) for stage, seconds in self.laps.items()}


def _build_key(
    service: Service, platform: Platform, env: dict[str, str], *, output: str, workspace: str
) -> str:
    """What shapes a build besides its source: every step's arguments and environment, `{JOBS}` left
    out (a kept workspace holds what they made: make does not notice a changed CFLAGS)."""
    values = build_values(platform, env, output=output, jobs=0, workspace=workspace)
    step_env = script_env(values) if service.build.script is not None else env
    document = {"steps": build_commands(service, values), "env": step_env}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _log_workspace(log: _Log, prepared: PreparedWorkspace, workspace: str, seconds: float) -> None:
    """build.log's first section: what was done to the workspace, and why when it is a fresh copy."""
    source, result = prepared.source, prepared.result
    if prepared.outcome.kept:
        log.note(f"workspace {workspace}: kept from the previous build, synced with {source}")
        header = f"cp -a -- {source}/. {workspace}/ (only what changed since the previous build)"
    else:
        log.note(f"workspace {workspace}: a writable copy of {source}")
        header = f"cp -a -- {source}/. {workspace}/"
    if result.exit_code == 0:  # what it did, said for people (else its errors)
        result = replace(result, stdout=f"{prepared.outcome.note}\n".encode())
    log.section(header, result, seconds, STEP_LOG_MINIMUM)


def _failure(
    builders: Builders,
    container: Any,
    service: Service,
    *,
    toolchain: Toolchain,
    platform: Platform,
    failed: _Failed,
) -> str:
    """Why a step failed, naming the step and the program: not found, timed out, killed, or its exit
    code and first error line (a missing static library explained)."""
    step, result = failed.step, failed.result
    if step is None:
        return f"cannot copy the source into the workspace: {_error_line(result)}"
    timeout = f"{service.build.timeout:g}s"
    if failed.timed_out:
        return f"{step.label} timed out: the build took longer than its timeout of {timeout}"
    missing = _not_run(step, result, toolchain)
    if missing is not None:
        return missing
    detail = _library_reason(builders, container, platform, result) or _error_line(result)
    if result.exit_code == 137:
        memory = service.build.limits.memory // 1024**2
        detail += f" (killed: the build may have used up its memory limit, {memory} MiB)"
    return f"{step.label} exited with {result.exit_code}: {detail}"


def _not_run(step: _Step, result: ContainerResult, toolchain: Toolchain) -> str | None:
    """A program that could not be started: coreutils timeout says so with 127 (not found) or 126 (not
    executable); in a script, the shell does."""
    if result.exit_code not in (126, 127):
        return None
    if step.tool is not None:
        if b"timeout: failed to run command" not in result.stderr:
            return None
        program = step.argv[0]
    else:
        found = _SHELL_NOT_FOUND.search(result.stderr)
        if found is None:
            return None
        program = found[1].decode(errors="replace")
    where, image = step.where, f"the {toolchain.name} toolchain image"
    if result.exit_code == 126:
        hint = f'run it through its interpreter, e.g. ["sh", "{program}"]' if "/" in program else image
        return f"{where}: {program!r} is not executable ({hint})"
    if "/" in program:
        missing = f"it is not in the workspace, or its #! interpreter is not in {image}"
        return f"{where}: {program!r} cannot be run: {missing}"
    return (
        f"{where}: {program!r} is not in {image} (add the package that "
        f"provides it: a toolchain that extends {toolchain.name}, docs/recipes.md)"
    )


def _library_reason(
    builders: Builders, container: Any, platform: Platform, result: ContainerResult
) -> str | None:
    """`cannot find -lNAME`: whether the platform has libNAME only as a shared library (a -dev package
    without a static archive) or not at all, looked up in the builder."""
    found = _CANNOT_FIND.search(result.stderr) or _CANNOT_FIND.search(result.stdout)
    if found is None:
        return None
    name = found[1].decode()
    files = builders.library_files(container, platform, name)
    if any(path.endswith(f"/lib{name}.a") for path in files):
        return None  # it is there: the linker was looking elsewhere, its own message says more
    if any(path.endswith(f"/lib{name}.so") for path in files):
        shared = next(path for path in files if path.endswith(f"/lib{name}.so"))
        return (
            f"lib{name}.a is missing for {platform.name}: the -dev package ships only a shared library "
            f"({shared}); a static binary cannot link it"
        )
    return (
        f"lib{name} is not installed for {platform.name}: add the -dev package that ships lib{name}.a to "
        f"the toolchain's packages, such as lib{name}-dev:{{DEBIAN_ARCH}} (here lib{name}-dev:"
        f"{platform.debian_arch}; docs/recipes.md)"
    )


def _error_line(result: ContainerResult) -> str:
    """The program's first `error` line (compilers print the cause first; stderr before stdout, where
    configure scripts print `checking for strerror`), else its last line."""
    streams = [
        [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
        for data in (result.stderr, result.stdout)
    ]
    errors = [line for lines in streams for line in lines if _ERROR_LINE.search(line)]
    last = streams[0][-1:] or streams[1][-1:]
    chosen = errors[0] if errors else (last[0] if last else "no output")
    return chosen[:200]


def _missing_binary(service: Service, where: str, problem: str) -> str:
    """The build succeeded, but what should be the binary is not one regular file."""
    if service.build.artifact is not None:
        named = f"its artifact {where}"
    else:
        named = "$OUTPUT" if service.build.script is not None else "{output}"
        named = f"{named} ({where})"
    if problem == "it does not exist":
        return f"the build succeeded but left no {service.build.output} at {named}"
    return f"the build succeeded but {named} is refused: {problem}"


def failure_reason(result: BuildResult) -> str:
    """One line that says why a build failed, pointing at its log."""
    return f"{result.reason or 'the build failed'} (log: {result.log})"


def _lines(output: bytes) -> bytes:
    """Output that ends a line, so that what follows it in build.log starts one."""
    return output + b"\n" if output and not output.endswith(b"\n") else output


def _truncation_note(stream: str, truncated: bool, limit: int) -> bytes:
    if not truncated:
        return b""
    return f"\n[osless: {stream} truncated after {limit // 1024} KiB]\n".encode()


def _write_stream_atomic(path: Path, content: IO[bytes], *, mode: int) -> None:
    """Like atomic.write_atomic, for a file streamed from another (a binary need not fit in memory):
    a temporary file in the same directory, flushed, then renamed over `path`."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            while chunk := content.read(1024**2):
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise

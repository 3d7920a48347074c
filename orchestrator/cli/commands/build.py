"""`osless build`: a plain list of steps over one shared context, run in order.

Each step reads what earlier steps put in the `Build` context and adds its own part; a step that returns
an exit code ends the command there (nothing to build is 0). Reading the steps is reading the command:
recipes, targets, --engine options, the output directory lock, engines, the run, its outcome.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from orchestrator.cli import render, shared
from orchestrator.engine import Engine
from orchestrator.errors import EngineError, TargetsFailed, UsageError
from orchestrator.image.registry import Reference
from orchestrator.outputs import outdir
from orchestrator.outputs.progress import ProgressView, previous_seconds
from orchestrator.outputs.report import RunReport
from orchestrator.pipeline.remote_cache import parse_cache_reference
from orchestrator.pipeline.reproduce import ReproducibilityReport, check_reproducible
from orchestrator.pipeline.runner import BuildOptions, Runner
from orchestrator.pipeline.targets import (
    Target,
    changed_services,
    parse_shard,
    select_shard,
    select_targets,
    unbuildable_only,
)
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.model import Project


@dataclass
class Build:
    """What the steps share; each field is set by the step named beside it."""

    args: argparse.Namespace
    console: Console
    resources: contextlib.ExitStack  # what must be released when the command ends (the out/ lock)
    project: Project | None = None  # load_recipes
    services: list[str] = field(default_factory=list)  # select
    targets: list[Target] = field(default_factory=list)  # select
    engine_hosts: dict[str, str] = field(default_factory=dict)  # check_engine_options
    cache_from: tuple[Reference, ...] = ()  # check_cache_options
    cache_to: Reference | None = None  # check_cache_options
    out_root: Path | None = None  # lock_output
    engine: Engine | None = None  # connect_engines
    platform_engines: dict[str, Engine] = field(default_factory=dict)  # connect_engines
    options: BuildOptions | None = None  # run_targets
    report: RunReport | None = None  # run_targets
    reproducibility: ReproducibilityReport | None = None  # run_targets, with --check-reproducible


Step = Callable[[Build], int | None]
T = TypeVar("T")


def load_recipes(build: Build) -> None:
    build.project = shared.project(build.args)


def select(build: Build) -> int | None:
    """The services and platforms asked for, narrowed by --changed-since and --shard; when all of them
    are services that cannot be built (a missing source), the command fails here, naming why."""
    args, project = build.args, _given(build.project)
    build.services = list(args.services)
    if args.changed_since:
        changed = changed_services(project, args.changed_since)
        build.services = [name for name in build.services or project.services if name in changed]
        if not build.services:
            build.console.print(
                f"nothing to build: no service changed since {args.changed_since}", markup=False
            )
            return 0
    build.targets = select_targets(project, build.services, args.platform)
    if args.shard:
        shard, shards = parse_shard(args.shard)
        build.targets = select_shard(build.targets, shard, shards)
        if not build.targets:
            build.console.print(f"nothing to build: shard {shard}/{shards} is empty", markup=False)
            return 0
    if (unbuildable := unbuildable_only(build.targets)) is not None:
        raise unbuildable  # before the engine: no target would start
    return None


def check_engine_options(build: Build) -> None:
    """`--engine PLATFORM=DOCKER_HOST`, checked before anything is created or asked."""
    build.engine_hosts = engine_options(build.args.engine)


def check_cache_options(build: Build) -> None:
    """`--cache-from`/`--cache-to REGISTRY/REPO`, checked before anything is created or asked; a
    reproducibility check builds from clean state, so it takes no result from a cache nor gives one."""
    args = build.args
    build.cache_from = tuple(parse_cache_reference(text, "--cache-from") for text in args.cache_from)
    build.cache_to = parse_cache_reference(args.cache_to, "--cache-to") if args.cache_to else None
    if args.check_reproducible and (build.cache_from or build.cache_to):
        raise UsageError(
            "--check-reproducible builds every target from clean state: it does not combine with "
            "--cache-from or --cache-to",
            hint="run the reproducibility check without the cache options",
        )
    if args.trust_cache_smoke and not build.cache_from:
        raise UsageError("--trust-cache-smoke needs --cache-from", hint="e.g. --cache-from REGISTRY/REPO")


def lock_output(build: Build) -> None:
    """Before the engine: a bad --out, or one another run holds, is a usage error whatever the engine."""
    build.out_root = shared.out_root(build.args, _given(build.project))
    build.resources.enter_context(outdir.locked(build.out_root))


def connect_engines(build: Build) -> None:
    build.engine = Engine.connect()
    build.platform_engines = {
        platform: Engine.connect(host, purpose=f"the engine for {platform}")
        for platform, host in build.engine_hosts.items()
    }


def run_targets(build: Build) -> None:
    """The pipeline over the targets (twice from clean state with --check-reproducible); on Ctrl-C the
    run's containers are removed before the interrupt goes on."""
    args, engine = build.args, _given(build.engine)
    build.options = options = BuildOptions(
        services=tuple(build.services),
        platforms=tuple(args.platform),
        jobs=args.jobs,
        emulated_jobs=args.emulated_jobs,
        fail_fast=args.fail_fast,
        rebuild=args.rebuild,
        cache_from=build.cache_from,
        cache_to=build.cache_to,
        trust_cache_smoke=args.trust_cache_smoke,
        out_root=_given(build.out_root),
    )
    project, targets, engines = _given(build.project), build.targets, build.platform_engines
    previous = previous_seconds(options.out_root / "report.json")  # what the ETA goes by at first
    expected = {t.name: previous.get((t.service.name, t.platform.name)) for t in targets}
    view = ProgressView(
        build.console, quiet=args.quiet, verbose=args.verbose, targets=expected, slots=args.jobs
    )
    with view:
        runner = Runner(project, options, engine, view, engines)
        try:
            if args.check_reproducible:
                build.report, build.reproducibility = check_reproducible(
                    project, options, engine, view, targets, platform_engines=engines
                )
            else:
                build.report = runner.run(targets)
        except KeyboardInterrupt:
            with contextlib.suppress(EngineError):  # an engine gone: the next run removes them
                runner.cancel()
            raise


def report_outcome(build: Build) -> None:
    """The summary (with --profile, where the time went, after it); failed targets raise with the exit
    code of the earliest failing stage."""
    report = _given(build.report)
    try:
        shared.finish_run(build.console, report, _given(build.out_root), build.args)
    finally:
        if build.args.profile and report.profile is not None:
            render.print_profile(build.console, report)


def report_reproducibility(build: Build) -> int:
    if build.reproducibility is None:
        return 0
    render.print_reproducibility(build.console, build.reproducibility, _given(build.out_root))
    if not build.reproducibility.reproducible:
        raise TargetsFailed("the two clean builds differ")
    return 0


STEPS: tuple[Step, ...] = (
    load_recipes,
    select,
    check_engine_options,
    check_cache_options,
    lock_output,
    connect_engines,
    run_targets,
    report_outcome,
    report_reproducibility,
)


def run(args: argparse.Namespace, console: Console) -> int:
    with contextlib.ExitStack() as resources:
        build = Build(args=args, console=console, resources=resources)
        for step in STEPS:
            code = step(build)
            if code is not None:
                return code
    return 0


def engine_options(values: Sequence[str]) -> dict[str, str]:
    """`--engine PLATFORM=DOCKER_HOST` options as a mapping, checked."""
    engines: dict[str, str] = {}
    for value in values:
        platform, _, host = value.partition("=")
        if platform not in PLATFORMS:
            raise UsageError(
                f"--engine {value}: unknown platform {platform!r}", hint=f"known: {', '.join(PLATFORMS)}"
            )
        if not host.startswith(("unix://", "tcp://", "ssh://")):
            raise UsageError(f"--engine {value}: the host must start with unix://, tcp:// or ssh://")
        engines[platform] = host
    return engines


def _given(value: T | None) -> T:
    """A context field an earlier step has set."""
    assert value is not None, "a build step ran before the step that sets what it reads"
    return value

"""The `osless` command line: parses arguments, runs one command, turns errors into exit codes.

Exit codes (stable; scripts and CI may rely on them):

    0    success
    2    usage: unknown service, platform or option
    3    invalid recipes (nothing was started)
    4    Docker engine unavailable
    5    toolchain: a toolchain image could not be provisioned, so its targets were not built
    6    a target failed otherwise: at package, or an internal error; or `--check-reproducible` found
         that two clean builds differ; or a file could not be written (disk full, say), named with its
         path
    7    `verify` or `inspect` rejected a file
    8    `push` failed (broken layout, registry unreachable or refused)
    10   a target failed to build
    11   a target's binary failed verification (not static, wrong architecture, policy)
    12   a target failed its smoke test (stdout or exit code not as the recipe expects)
    130  interrupted (Ctrl-C or SIGTERM): report.json says which targets were interrupted

When targets fail at different stages, `build` exits with the code of the earliest failing stage in
pipeline order (toolchain 5, build 10, verify 11, package 6, smoke 12): the first thing to look at.
Under GitHub Actions (GITHUB_ACTIONS=true) the log is folded into groups per phase and recipe problems
and failed targets are `::error` annotations; with GITHUB_STEP_SUMMARY set, the run's Markdown summary
is appended to the job summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator import __version__
from orchestrator.ci import matrix as build_matrix
from orchestrator.ci.assemble import assemble
from orchestrator.cli.progress import ProgressView
from orchestrator.elf.goinfo import format_like_go_version_m
from orchestrator.engine import Engine
from orchestrator.errors import (
    EngineError,
    Interrupted,
    OslessError,
    OutputError,
    RecipeError,
    TargetsFailed,
    UsageError,
    VerificationFailed,
    targets_failed,
)
from orchestrator.host import doctor
from orchestrator.image import registry
from orchestrator.image.inspect import run as inspect_target
from orchestrator.outputs import github, outdir, summary
from orchestrator.outputs.report import (
    RunReport,
    Status,
    human_size,
    print_failures,
    summary_table,
    to_jsonable,
)
from orchestrator.pipeline.runner import (
    BuildOptions,
    ReproducibilityReport,
    Runner,
    Target,
    changed_services,
    check_reproducible,
    parse_shard,
    select_shard,
    select_targets,
)
from orchestrator.platforms import PLATFORMS, host_platform
from orchestrator.recipe.loader import Project, load_project
from orchestrator.stages.package import image_tag
from orchestrator.stages.smoke import run_image
from orchestrator.verify.verifier import verify_binary


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns: give them room instead.
    # User text (names, paths, messages) is never markup: it is escaped or printed with markup off.
    width = None if sys.stdout.isatty() else 160
    console = Console(highlight=False, soft_wrap=True, width=width, emoji=False)
    errors = Console(stderr=True, highlight=False, soft_wrap=True, width=width, emoji=False)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        code: int = args.command(args, console)
        return code
    except RecipeError as error:
        errors.print(f"[bold red]osless: {escape(error.message)}[/] (nothing was started):")
        for problem in error.problems:
            errors.print(f"  {problem}", markup=False)
        if github.active():
            _workflow_commands(console, github.recipe_annotations(error.problems, args.project.resolve()))
        github.append_step_summary(summary.recipe_markdown(error.problems))
        return error.exit_code
    except OslessError as error:
        return _report_error(console, errors, error)
    except KeyboardInterrupt:
        errors.print("[bold red]osless: interrupted[/]; this run's containers were removed")
        return Interrupted.exit_code
    except OSError as error:  # out/ unwritable mid-run, disk full: the file and the reason, one line
        return _report_error(console, errors, OutputError(_os_error_text(error)))
    except Exception as error:  # a bug of ours: still one line, the traceback only on request
        if os.environ.get("OSLESS_TRACEBACK"):
            raise
        message = f"internal error: {type(error).__name__}: {_first_line(str(error))}"
        return _report_error(
            console, errors, OslessError(message, hint="OSLESS_TRACEBACK=1 shows the traceback")
        )


def _report_error(console: Console, errors: Console, error: OslessError) -> int:
    """An error as one line (and its hint), and a CI annotation under GitHub Actions."""
    errors.print(f"[bold red]osless:[/] {escape(error.message)}", highlight=False)
    if error.hint:
        errors.print(f"  hint: {error.hint}", markup=False)
    if github.active():
        message = error.message + (f" (hint: {error.hint})" if error.hint else "")
        _workflow_commands(console, [github.command("error", message, title="osless")])
    return error.exit_code


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _os_error_text(error: OSError) -> str:
    """'cannot write PATH: No space left on device' from an OSError, whichever call raised it."""
    reason = error.strerror or _first_line(str(error)) or type(error).__name__
    if error.filename is None:
        return f"a file could not be read or written: {reason}"
    return f"cannot use {error.filename}: {reason}"


def _workflow_commands(console: Console, lines: Sequence[str]) -> None:
    """GitHub Actions workflow commands, on stdout as they are (no markup, emoji or wrapping)."""
    for line in lines:
        console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM behaves like Ctrl-C, so containers are cleaned up the same way."""
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osless", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"osless {__version__}")
    parser.add_argument(
        "-C",
        "--project",
        type=Path,
        default=Path.cwd(),
        help="project root holding recipes/ and sources/ (default: the current directory)",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="build, verify, package and smoke-test targets")
    build.add_argument("services", nargs="*", metavar="SERVICE", help="services to build (default: all)")
    build.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="P",
        help="only these platforms, e.g. linux/arm64 (repeatable)",
    )
    cores = os.cpu_count() or 2
    build.add_argument(
        "--jobs",
        "-j",
        type=_positive,
        default=cores,
        help=f"targets worked on at once (default: cores = {cores})",
    )
    build.add_argument(
        "--emulated-jobs",
        type=_positive,
        default=max(1, cores // 2),
        help=f"emulated (qemu) smoke tests at once (default: {max(1, cores // 2)})",
    )
    build.add_argument(
        "--changed-since",
        metavar="GIT_REF",
        help="only services whose recipe, sources or toolchain recipe changed since this git revision",
    )
    build.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="PLATFORM=DOCKER_HOST",
        help="build and smoke-test PLATFORM on that engine (unix://, tcp://, ssh://); repeatable",
    )
    build.add_argument(
        "--check-reproducible",
        action="store_true",
        help="build every target twice from clean state and compare binaries and image digests",
    )
    build.add_argument(
        "--rebuild", action="store_true", help="rebuild every target, even those whose inputs are unchanged"
    )
    build.add_argument(
        "--fail-fast", action="store_true", help="stop starting targets after the first failure"
    )
    build.add_argument(
        "--shard",
        metavar="K/N",
        help="only part K of N: the N parts split the selected targets, each exactly once (for CI jobs)",
    )
    build.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    build.set_defaults(command=_build)

    _add_ci_commands(commands)

    listing = commands.add_parser("list", help="list services and their platforms")
    listing.set_defaults(command=_list)

    verify = commands.add_parser("verify", help="check that files are static ELF binaries for a platform")
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE")
    verify.add_argument(
        "--platform", choices=list(PLATFORMS), metavar="P", help="the platform the files must be built for"
    )
    verify.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    verify.set_defaults(command=_verify)

    show = commands.add_parser("inspect", help="show a binary's or an image's contents and verdicts")
    show.add_argument("target", metavar="PATH|IMAGE", help="a binary, an image tar, an OCI layout or a tag")
    show.add_argument("--platform", metavar="P", help="which platform (binary: verify for it)")
    show.add_argument("--json", action="store_true", help="print the report as JSON")
    show.set_defaults(command=_inspect)

    run = commands.add_parser("run", help="run a built image for one platform (under qemu when foreign)")
    run.add_argument("service", metavar="SERVICE")
    host = host_platform()
    run.add_argument(
        "--platform",
        default=host.name if host else "linux/amd64",
        metavar="P",
        help="which platform's image (default: this machine's)",
    )
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="-- ARGS", help="arguments for the program")
    run.set_defaults(command=_run)

    push = commands.add_parser("push", help="push a service's OCI layout to a registry, digests unchanged")
    push.add_argument("service", metavar="SERVICE")
    push.add_argument("--to", required=True, metavar="REGISTRY/REPO[:TAG]", help="default tag: the recipe's")
    push.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    push.add_argument(
        "--insecure", action="store_true", help="plain http (always so for 127.0.0.1/localhost)"
    )
    push.set_defaults(command=_push)

    check = commands.add_parser(
        "doctor", help="check the engine, mmdebstrap and qemu-user for every platform"
    )
    check.set_defaults(command=_doctor)
    return parser


def _add_ci_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`matrix` and `assemble`: a build split over CI machines, and its parts merged back."""
    jobs = commands.add_parser("matrix", help="the CI build matrix: jobs, their build arguments and runners")
    jobs.add_argument(
        "--by", choices=build_matrix.BY, default="platform", help="one job per platform, service or target"
    )
    jobs.add_argument(
        "--max-jobs",
        type=_positive,
        metavar="N",
        help="at most N jobs: group platforms or services, shard targets",
    )
    jobs.add_argument(
        "--format",
        choices=("github", "json"),
        default="json",
        help="github: one line for a GitHub Actions strategy.matrix; json: the jobs and their targets",
    )
    jobs.set_defaults(command=_matrix)

    merge = commands.add_parser(
        "assemble", help="merge out/ directories built on several machines into one multi-arch output"
    )
    merge.add_argument(
        "inputs", nargs="+", type=Path, metavar="ARTIFACT_DIR", help="out/ directories of builds"
    )
    merge.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    merge.set_defaults(command=_assemble)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _load(args: argparse.Namespace) -> Project:
    root = args.project.resolve()
    if not (root / "recipes").is_dir():
        raise UsageError(
            f"{root} has no recipes/ directory", hint="run osless from the project root or pass -C DIR"
        )
    return load_project(root)


def _build(args: argparse.Namespace, console: Console) -> int:
    project = _load(args)
    services = list(args.services)
    if args.changed_since:
        changed = changed_services(project, args.changed_since)
        services = [name for name in services or project.services if name in changed]
        if not services:
            console.print(f"nothing to build: no service changed since {args.changed_since}", markup=False)
            return 0
    targets = select_targets(project, services, args.platform)
    if args.shard:
        shard, shards = parse_shard(args.shard)
        targets = select_shard(targets, shard, shards)
        if not targets:
            console.print(f"nothing to build: shard {shard}/{shards} is empty", markup=False)
            return 0
    _engine_options(args.engine)  # checked before anything is created or asked
    out_root = (args.out or project.root / "out").resolve()
    # Before the engine: a bad --out, or one another run holds, is a usage error whatever the engine.
    with outdir.locked(out_root):
        return _build_locked(args, console, project, targets, services=services, out_root=out_root)


def _build_locked(
    args: argparse.Namespace,
    console: Console,
    project: Project,
    targets: list[Target],
    *,
    services: list[str],
    out_root: Path,
) -> int:
    """`osless build` once it holds out_root."""
    engine = Engine.connect()
    platform_engines = {
        platform: Engine.connect(host, purpose=f"the engine for {platform}")
        for platform, host in _engine_options(args.engine).items()
    }
    options = BuildOptions(
        services=tuple(services),
        platforms=tuple(args.platform),
        jobs=args.jobs,
        emulated_jobs=args.emulated_jobs,
        fail_fast=args.fail_fast,
        rebuild=args.rebuild,
        out_root=out_root,
    )
    with ProgressView(console) as view:
        runner = Runner(project, options, engine, view, platform_engines)
        try:
            if args.check_reproducible:
                report, reproducibility = check_reproducible(
                    project, options, engine, view, targets, platform_engines=platform_engines
                )
            else:
                report, reproducibility = runner.run(targets), None
        except KeyboardInterrupt:
            with contextlib.suppress(EngineError):  # an engine gone: the next run removes them
                runner.cancel()
            raise
    _print_run(console, report, options.out_root)
    if reproducibility is not None:
        return _print_reproducibility(console, reproducibility, options.out_root)
    return 0


def _print_run(console: Console, report: RunReport, out_root: Path) -> None:
    """A run's summary table, failures and CI annotations; failed targets raise (per-stage exit code)."""
    console.print(summary_table(report.targets))
    print_failures(console, report.targets)
    console.print(f"report: {out_root / 'report.json'}", markup=False)
    if github.active():
        _workflow_commands(console, github.target_annotations(report.targets))
    github.append_step_summary(summary.markdown(report))
    if report.failed:
        stages = [t.failed_stage for t in report.failed if t.status is Status.FAILED]
        raise targets_failed(f"{len(report.failed)} of {len(report.targets)} targets failed", stages)


def _matrix(args: argparse.Namespace, console: Console) -> int:
    """The build matrix from the recipes; GitHub's format is capped at its limit of jobs per matrix."""
    targets = select_targets(_load(args), [], [])
    cap = args.max_jobs
    if args.format == "github":
        cap = min(cap or build_matrix.GITHUB_MAX_JOBS, build_matrix.GITHUB_MAX_JOBS)
    jobs = build_matrix.jobs(targets, args.by, cap)
    if args.format == "github":
        sys.stdout.write(json.dumps(build_matrix.github_matrix(jobs), separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(json.dumps(build_matrix.document(jobs, args.by, cap), indent=2) + "\n")
    return 0


def _assemble(args: argparse.Namespace, console: Console) -> int:
    """Merge partial builds' out/ directories into one output: layouts, SBOMs and report as one build."""
    project = _load(args)
    out_root = (args.out or project.root / "out").resolve()
    for path in args.inputs:
        if not path.is_dir():
            raise UsageError(f"{path} is not a directory", hint="give the out/ directories of osless builds")

    def note(message: str) -> None:
        console.print(f"note: {message}", markup=False)

    with outdir.locked(out_root):
        report = assemble(project, args.inputs, out_root, note=note)
    for image in report.images:
        console.print(
            f"{image.service}: {image.index_digest} ({len(image.platforms)} platforms) {image.layout}",
            markup=False,
        )
    console.print(
        f"assembled {len(report.targets)} targets from {len(args.inputs)} directories", markup=False
    )
    _print_run(console, report, out_root)
    return 0


def _engine_options(values: Sequence[str]) -> dict[str, str]:
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


def _print_reproducibility(console: Console, report: ReproducibilityReport, out_root: Path) -> int:
    for comparison in report.targets:
        if not comparison.same:
            console.print(
                f"✗ {comparison.service} {comparison.platform}: {comparison.difference}", markup=False
            )
    for service, (first, second) in report.indexes.items():
        if first != second:
            console.print(f"✗ {service}: index {first} vs {second}", markup=False)
    verdict = "reproducible" if report.reproducible else "NOT reproducible"
    details = out_root / "reproducible.json"
    console.print(
        f"{len(report.targets)} targets built twice from clean state: {verdict} ({details})", markup=False
    )
    if not report.reproducible:
        raise TargetsFailed("the two clean builds differ")
    return 0


def _list(args: argparse.Namespace, console: Console) -> int:
    project = _load(args)
    table = Table("service", "toolchain", "platforms", "source", title_justify="left")
    services = sorted(project.services.values(), key=lambda s: s.name)
    for service in services:
        table.add_row(
            Text(service.name),
            Text(service.toolchain),
            Text(" ".join(service.platforms)),
            Text(str(service.source.relative_to(project.root))),
        )
    console.print(table)
    for service in services:
        for platform, reason in service.unsupported.items():
            console.print(f"{service.name} is not built for {platform}: {reason}", markup=False)
    return 0


def _run(args: argparse.Namespace, console: Console) -> int:
    """Run one service's image for one platform, as the smoke test does, with the given arguments."""
    project = _load(args)
    target = select_targets(project, [args.service], [args.platform])[0]
    engine = Engine.connect()
    tag = image_tag(target.service, target.platform)
    if engine.image_id(tag) is None:
        raise UsageError(
            f"no image {tag} in the engine",
            hint=f"build it first: osless build {target.service.name} --platform {target.platform.name}",
        )
    args_ = args.args[1:] if args.args[:1] == ["--"] else args.args
    result = run_image(
        engine, target.service, target.platform, tag, tuple(args_) or target.service.smoke.args
    )
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.exit_code


def _verify(args: argparse.Namespace, console: Console) -> int:
    platform = PLATFORMS[args.platform] if args.platform else None
    verdicts = [verify_binary(path, platform) for path in args.files]
    if args.json:
        console.print_json(json.dumps(to_jsonable(verdicts)))
    else:
        for verdict in verdicts:
            facts = verdict.facts
            identified = (
                f"{facts.platform or 'unknown platform'}, {facts.linkage.value}" if facts else "not an ELF"
            )
            if verdict.ok:
                console.print(f"{escape(verdict.path)}: [green]ok[/] ({identified})")
            else:
                console.print(f"{escape(verdict.path)}: [red]FAIL[/] — {escape(verdict.reason or '')}")
            if facts and facts.go:
                # Byte for byte what `go version -m` prints (rich would expand its tabs).
                console.file.write(format_like_go_version_m(facts.go, verdict.path))
    failed = [v for v in verdicts if not v.ok]
    if failed:
        raise VerificationFailed(f"{len(failed)} of {len(verdicts)} files failed verification")
    return 0


def _inspect(args: argparse.Namespace, console: Console) -> int:
    """What a binary or an image holds and whether it would run; exit 7 when it would not."""
    return inspect_target(args.target, platform=args.platform, as_json=args.json, console=console)


def _push(args: argparse.Namespace, console: Console) -> int:
    """Push out/<service>/oci as it is: the registry's digest for the tag is the local index digest."""
    project = _load(args)
    service = select_targets(project, [args.service], [])[0].service
    target = registry.parse_reference(args.to)
    target = target if target.tag else target.with_tag(service.image.tag)
    layout = (args.out or project.root / "out").resolve() / service.name / "oci"
    if not (layout / "index.json").is_file():
        raise UsageError(f"no OCI layout at {layout}", hint=f"build it first: osless build {service.name}")

    def line(t: registry.Transfer) -> None:
        state = "uploaded" if t.uploaded else "skipped "
        console.print(f"{state} {t.kind:8} {t.digest[:19]} {human_size(t.size):>9}  {t.what}", markup=False)

    result = registry.push(layout, target, insecure=args.insecure, progress=line)
    console.print(
        f"pushed {result.reference}@{result.digest} ({result.platforms} platforms): "
        f"{result.blobs_uploaded} blobs uploaded ({human_size(result.bytes_uploaded)}), "
        f"{result.blobs_skipped} skipped ({human_size(result.bytes_skipped)})",
        markup=False,
    )
    return 0


def _doctor(args: argparse.Namespace, console: Console) -> int:
    table = Table("check", "", "detail", "fix", title_justify="left")
    failures = 0
    for check in doctor.checks():
        failures += not check.ok
        table.add_row(
            Text(check.name),
            "[green]ok[/]" if check.ok else "[red]FAIL[/]",
            Text(check.detail),
            Text(check.fix or ""),
        )
    console.print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

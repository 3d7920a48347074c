"""The `osless` command line's grammar: every command, its arguments and the module that runs it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orchestrator import __version__
from orchestrator.ci import matrix
from orchestrator.cli import completion
from orchestrator.cli.commands import assemble as assemble_command
from orchestrator.cli.commands import build as build_command
from orchestrator.cli.commands import clean as clean_command
from orchestrator.cli.commands import completion as completion_command
from orchestrator.cli.commands import doctor as doctor_command
from orchestrator.cli.commands import init as init_command
from orchestrator.cli.commands import inspect as inspect_command
from orchestrator.cli.commands import list as list_command
from orchestrator.cli.commands import lock as lock_command
from orchestrator.cli.commands import matrix as matrix_command
from orchestrator.cli.commands import push as push_command
from orchestrator.cli.commands import run as run_command
from orchestrator.cli.commands import schema as schema_command
from orchestrator.cli.commands import toolchain as toolchain_command
from orchestrator.cli.commands import verify as verify_command
from orchestrator.cli.terminal import COLOR_CHOICES
from orchestrator.platforms import PLATFORMS, host_platform
from orchestrator.recipe import jsonschema

DESCRIPTION = "The `osless` command line: parses arguments, runs one command, turns errors into exit codes."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osless", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"osless {__version__}")
    parser.add_argument(
        "-C",
        "--project",
        type=Path,
        default=Path.cwd(),
        help="project root holding recipes/ and sources/ (default: the current directory)",
    )
    _add_output_options(parser, after_command=False)
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
    build.add_argument(
        "--profile",
        action="store_true",
        help="after the summary, show where the time went: the run's phases, compile vs smoke vs "
        "osless's own stages, osless's overhead per target, peak memory, the slowest targets",
    )
    _add_cache_options(build)
    build.set_defaults(command=build_command.run)

    _add_ci_commands(commands)
    _add_toolchain_commands(commands)

    _add_init_command(commands)

    listing = commands.add_parser("list", help="list services and their platforms")
    listing.set_defaults(command=list_command.run)

    _add_verify_commands(commands)

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
    run.set_defaults(command=run_command.run)

    push = commands.add_parser("push", help="push a service's OCI layout to a registry, digests unchanged")
    push.add_argument("service", metavar="SERVICE")
    push.add_argument("--to", required=True, metavar="REGISTRY/REPO[:TAG]", help="default tag: the recipe's")
    push.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    push.add_argument(
        "--insecure", action="store_true", help="plain http (always so for 127.0.0.1/localhost)"
    )
    push.set_defaults(command=push_command.run)

    _add_lock_command(commands)

    check = commands.add_parser(
        "doctor", help="check the engine, mmdebstrap and qemu-user for every platform"
    )
    check.set_defaults(command=doctor_command.run)

    _add_clean_command(commands)

    _add_schema_command(commands)
    _add_completion_commands(commands)
    for command in completion.subparsers(parser):
        _add_output_options(command, after_command=True)
    return parser


def _add_output_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """--color, -q, -v: before the command (osless -q build) or after it (osless build -q). After it
    they have no default, so the command's parser does not undo one given before it."""
    output = parser.add_argument_group("output")
    output.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default=argparse.SUPPRESS if after_command else "auto",
        help="auto (default): colour on a terminal unless NO_COLOR is set (FORCE_COLOR: also off one); "
        "never: no ANSI escapes at all",
    )
    unset: object = argparse.SUPPRESS if after_command else False
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=unset,
        help="only errors and the one-line result (what a command exists to print, such as `list`, "
        "`matrix` or --json output, is printed as ever)",
    )
    if "-v" not in parser._option_string_actions:  # verify and inspect say what -v shows them
        output.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=unset,
            help="more detail: `build` prints every step as a line (on a terminal too, above the live "
            "view) and each target's build steps; `verify` and `inspect` show the info findings",
        )


def _add_completion_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`completion SHELL`: a script completing commands, options, services and platforms; and the
    hidden `__names KIND` the scripts ask for the project's services and toolchains."""
    script = commands.add_parser(
        "completion",
        help="print a shell completion script: commands, options, services, platforms",
        description="e.g. `source <(osless completion bash)` in ~/.bashrc, `source <(osless completion "
        "zsh)` in ~/.zshrc, `osless completion fish > ~/.config/fish/completions/osless.fish`",
    )
    script.add_argument("shell", choices=completion.SHELLS)
    script.set_defaults(command=completion_command.run)
    names = commands.add_parser("__names")  # no help: hidden from --help and from the scripts
    names.add_argument("kind", choices=completion.NAME_KINDS)
    names.set_defaults(command=completion_command.names)


def _add_cache_options(build: argparse.ArgumentParser) -> None:
    """`--cache-from`, `--cache-to`, `--trust-cache-smoke`: the shared result cache (docs/cache.md)."""
    build.add_argument(
        "--cache-from",
        action="append",
        default=[],
        metavar="REGISTRY/REPO",
        help="look each target's result up in this registry repository before building it (repeatable)",
    )
    build.add_argument(
        "--cache-to",
        metavar="REGISTRY/REPO",
        help="upload each passed target's result to this registry repository, tagged by its key",
    )
    build.add_argument(
        "--trust-cache-smoke",
        action="store_true",
        help="skip the smoke test of a --cache-from result that passed it on this machine's platform",
    )


def _add_verify_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`verify` and `inspect`: the verifier on files, and what a binary or an image holds."""
    verify = commands.add_parser("verify", help="check that files are static ELF binaries for a platform")
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE")
    verify.add_argument(
        "--platform", choices=list(PLATFORMS), metavar="P", help="the platform the files must be built for"
    )
    verify.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    verify.set_defaults(command=verify_command.run)

    show = commands.add_parser("inspect", help="show a binary's or an image's contents and verdicts")
    show.add_argument("target", metavar="PATH|IMAGE", help="a binary, an image tar, an OCI layout or a tag")
    show.add_argument("--platform", metavar="P", help="which platform (binary: verify for it)")
    show.add_argument("--json", action="store_true", help="print the report as JSON")
    show.set_defaults(command=inspect_command.run)
    for command in (verify, show):
        command.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,  # -v before the command holds too
            help="also show the info findings (linkage, platform, size, language...); --json has them all",
        )


def _add_init_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`init`: a service recipe written from what a source directory holds."""
    init = commands.add_parser(
        "init", help="write a service recipe for a source directory (go.mod, Cargo.toml, CMakeLists.txt...)"
    )
    init.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="source directories, relative to the project root (default: the project root itself)",
    )
    init.add_argument("--name", help="the service's name (default: the directory's name); one PATH only")
    init.add_argument(
        "--dry-run", action="store_true", help="print the recipes instead of writing recipes/<name>.toml"
    )
    init.set_defaults(command=init_command.run)


def _add_schema_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`schema`: the recipes' JSON Schemas, for editors that read `#:schema` lines."""
    schema = commands.add_parser("schema", help="print a recipe JSON Schema, or write both for editors")
    schema.add_argument("kind", nargs="?", choices=jsonschema.KINDS, help="which recipes (default: service)")
    schema.add_argument(
        "--write",
        nargs="?",
        const=True,
        default=False,
        metavar="DIR",
        help="write both schemas into DIR (default: PROJECT/recipes/.schema, where `#:schema` lines point)",
    )
    schema.set_defaults(command=schema_command.run)


def _add_clean_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`clean`: show, with sizes, and remove what osless left for the project; nothing it did not make."""
    clean = commands.add_parser(
        "clean",
        help="remove what osless made for the project: out/, containers of runs that are gone, cache "
        "volumes, service images, superseded toolchain images",
    )
    clean.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    clean.add_argument("--dry-run", action="store_true", help="only list what would be removed, with sizes")
    clean.add_argument(
        "--all-toolchains",
        action="store_true",
        help="also the current toolchain images (rebuilding one takes minutes)",
    )
    clean.add_argument(
        "--all-projects",
        action="store_true",
        help="volumes and service images of every project, not only this one's",
    )
    clean.set_defaults(command=clean_command.run)


def _add_lock_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`lock`: each toolchain's exact package versions, written beside its recipe."""
    lock = commands.add_parser(
        "lock", help="write toolchains' locks: the exact package versions their bootstrap installs"
    )
    lock.add_argument(
        "toolchains", nargs="*", metavar="NAME", help="toolchains to lock (default: every bootstrapped one)"
    )
    lock.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    lock.set_defaults(command=lock_command.run)


def _add_ci_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`matrix` and `assemble`: a build split over CI machines, and its parts merged back."""
    jobs = commands.add_parser("matrix", help="the CI build matrix: jobs, their build arguments and runners")
    jobs.add_argument(
        "--by", choices=matrix.BY, default="platform", help="one job per platform, service or target"
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
    jobs.set_defaults(command=matrix_command.run)

    merge = commands.add_parser(
        "assemble", help="merge out/ directories built on several machines into one multi-arch output"
    )
    merge.add_argument(
        "inputs", nargs="+", type=Path, metavar="ARTIFACT_DIR", help="out/ directories of builds"
    )
    merge.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    merge.set_defaults(command=assemble_command.run)


def _add_toolchain_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`toolchain push`: a toolchain image published so that other machines pull it, not bootstrap it."""
    toolchains = commands.add_parser("toolchain", help="toolchain images: publish one to a registry")
    subcommands = toolchains.add_subparsers(title="toolchain commands", required=True, metavar="COMMAND")
    publish = subcommands.add_parser(
        "push", help="push a toolchain's image (bootstrapped if missing) to a registry, digests unchanged"
    )
    publish.add_argument("name", metavar="NAME", help="the toolchain, as recipes/toolchains/ names it")
    publish.add_argument(
        "--to", required=True, metavar="REGISTRY/REPO[:TAG]", help="default tag: NAME-<spec hash>"
    )
    publish.add_argument("--out", type=Path, default=None, help="output directory (default: PROJECT/out)")
    publish.add_argument(
        "--insecure", action="store_true", help="plain http (always so for 127.0.0.1/localhost)"
    )
    publish.set_defaults(command=toolchain_command.push)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value

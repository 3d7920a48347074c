"""What several commands share: the project they work on, its output directory, a finished run's end."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from orchestrator.cli import render
from orchestrator.errors import UsageError, targets_failed
from orchestrator.outputs.report import RunReport, Status
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Project


def project(args: argparse.Namespace) -> Project:
    """The recipes of the project `-C` names (default: the current directory)."""
    root = args.project.resolve()
    if not (root / "recipes").is_dir():
        raise UsageError(
            f"{root} has no recipes/ directory", hint="run osless from the project root or pass -C DIR"
        )
    return load_project(root)


def out_root(args: argparse.Namespace, project: Project) -> Path:
    """`--out`, or PROJECT/out."""
    return Path(args.out or project.root / "out").resolve()


def finish_run(console: Console, report: RunReport, out_root: Path, args: argparse.Namespace) -> None:
    """Print a finished run (in one line with -q, with the build steps with -v); failed targets raise,
    with the exit code of the earliest failing stage."""
    render.print_run(console, report, out_root, quiet=args.quiet, verbose=args.verbose)
    if report.failed:
        stages = [t.failed_stage for t in report.failed if t.status is Status.FAILED]
        raise targets_failed(f"{len(report.failed)} of {len(report.targets)} targets failed", stages)

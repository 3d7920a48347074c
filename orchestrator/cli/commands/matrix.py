"""`osless matrix`: the CI build matrix from the recipes, as JSON or as one GitHub Actions line."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from orchestrator.ci import matrix
from orchestrator.cli import shared
from orchestrator.pipeline.targets import select_targets


def run(args: argparse.Namespace, console: Console) -> int:
    """GitHub's format is capped at its limit of jobs per matrix."""
    targets = select_targets(shared.project(args), [], [])
    cap = args.max_jobs
    if args.format == "github":
        cap = min(cap or matrix.GITHUB_MAX_JOBS, matrix.GITHUB_MAX_JOBS)
    jobs = matrix.jobs(targets, args.by, cap)
    if args.format == "github":
        sys.stdout.write(json.dumps(matrix.github_matrix(jobs), separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(json.dumps(matrix.document(jobs, args.by, cap), indent=2) + "\n")
    return 0

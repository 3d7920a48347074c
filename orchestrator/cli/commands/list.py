"""`osless list`: services, their toolchains, languages and platforms, and the platforms left out."""

from __future__ import annotations

import argparse

from rich.console import Console

from orchestrator.cli import render, shared


def run(args: argparse.Namespace, console: Console) -> int:
    project = shared.project(args)
    console.print(render.services_table(project))
    render.print_unsupported(console, project)
    return 0

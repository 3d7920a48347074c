"""`osless completion SHELL`: the shell's completion script; `osless __names KIND`: what it completes
services and toolchains with (hidden: scripts call it, people need not)."""

from __future__ import annotations

import argparse

from rich.console import Console

from orchestrator.cli import completion


def run(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.cli.parser import build_parser  # the grammar imports this module

    console.file.write(completion.script(args.shell, build_parser()))
    return 0


def names(args: argparse.Namespace, console: Console) -> int:
    for name in completion.recipe_names(args.project.resolve(), args.kind):
        console.file.write(name + "\n")
    return 0

"""`osless assemble DIR...`: out/ directories built on several machines merged into one output: layouts,
SBOMs and report as one build would have written them."""

from __future__ import annotations

import argparse

from rich.console import Console

from orchestrator.ci.assemble import assemble
from orchestrator.cli import shared
from orchestrator.errors import UsageError
from orchestrator.outputs import outdir


def run(args: argparse.Namespace, console: Console) -> int:
    project = shared.project(args)
    out_root = shared.out_root(args, project)
    for path in args.inputs:
        if not path.is_dir():
            raise UsageError(f"{path} is not a directory", hint="give the out/ directories of osless builds")

    def note(message: str) -> None:
        console.print(f"note: {message}", markup=False)

    with outdir.locked(out_root):
        report = assemble(project, args.inputs, out_root, note=note)
    if not args.quiet:
        for image in report.images:
            console.print(
                f"{image.service}: {image.index_digest} ({len(image.platforms)} platforms) {image.layout}",
                markup=False,
            )
        console.print(
            f"assembled {len(report.targets)} targets from {len(args.inputs)} directories", markup=False
        )
    shared.finish_run(console, report, out_root, args)
    return 0

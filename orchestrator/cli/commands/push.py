"""`osless push SERVICE --to REF`: out/<service>/oci pushed as it is, so the registry's digest for the
tag is the local index digest."""

from __future__ import annotations

import argparse

from rich.console import Console

from orchestrator.cli import render, shared
from orchestrator.errors import UsageError
from orchestrator.image import registry
from orchestrator.pipeline.targets import select_targets


def run(args: argparse.Namespace, console: Console) -> int:
    project = shared.project(args)
    service = select_targets(project, [args.service], [])[0].service
    target = registry.parse_reference(args.to)
    target = target if target.tag else target.with_tag(service.image.tag)
    layout = shared.out_root(args, project) / service.name / "oci"
    if not (layout / "index.json").is_file():
        raise UsageError(f"no OCI layout at {layout}", hint=f"build it first: osless build {service.name}")

    def progress(transfer: registry.Transfer) -> None:
        if not args.quiet:
            console.print(render.transfer_line(transfer), markup=False)

    result = registry.push(layout, target, insecure=args.insecure, progress=progress)
    console.print(render.push_summary(result), markup=False)
    return 0

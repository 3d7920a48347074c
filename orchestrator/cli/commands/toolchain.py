"""`osless toolchain push NAME --to REGISTRY/REPO[:TAG]`: a toolchain image published so that other
machines pull the identical image (`image = "REGISTRY/REPO@sha256:..."` in the recipe) instead of
bootstrapping their own.

The toolchain is provisioned first (bootstrapped when missing, as a build would), then written as an OCI
layout from `docker save` (image/toolchain_registry.py) and pushed byte for byte (image/registry.py):
the digest printed is the one every machine's pull checks.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console

from orchestrator.bootstrap.spec import spec_hash
from orchestrator.cli import render, shared
from orchestrator.engine import Engine
from orchestrator.errors import UsageError, did_you_mean
from orchestrator.image import registry, toolchain_registry
from orchestrator.stages.toolchain import TOOLCHAIN_WORK_DIR, provision


def push(args: argparse.Namespace, console: Console) -> int:
    project = shared.project(args)
    toolchain = project.toolchains.get(args.name)
    if toolchain is None:
        raise UsageError(
            f"no toolchain {args.name!r} in {project.root / 'recipes' / 'toolchains'}",
            hint=did_you_mean(args.name, project.toolchains)
            or f"known: {', '.join(sorted(project.toolchains))}",
        )
    target = registry.parse_reference(args.to)
    if not target.tag:
        if toolchain.bootstrap is None and toolchain.base is None:
            raise UsageError(
                f"toolchain {toolchain.name} uses an image as is: give --to a tag",
                hint="e.g. --to REGISTRY/REPO:v1",
            )
        target = target.with_tag(f"{toolchain.name}-{spec_hash(toolchain)}")
    work_dir = shared.out_root(args, project) / TOOLCHAIN_WORK_DIR
    engine = Engine.connect()

    def progress(text: str) -> None:
        if not args.quiet:
            console.print(f"toolchain {toolchain.name}: {text}", markup=False)

    def transferred(transfer: registry.Transfer) -> None:
        if not args.quiet:
            console.print(render.transfer_line(transfer), markup=False)

    image = provision(engine, toolchain, work_dir, progress, project=project.root)
    progress(f"writing {image.reference} ({image.image_id[7:19]}) as an OCI layout")
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="push-") as directory:
        toolchain_registry.write_layout(engine, image.reference, Path(directory))
        result = registry.push(
            Path(directory),
            target,
            insecure=args.insecure,
            progress=transferred,
        )
    console.print(render.push_summary(result), markup=False)
    pinned = f"{target.registry}/{target.repository}@{result.digest}"
    console.print(f'in {toolchain.file.name}, [toolchain]: image = "{pinned}"', markup=False)
    return 0

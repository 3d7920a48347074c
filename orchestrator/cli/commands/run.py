"""`osless run SERVICE`: one service's built image for one platform, run as the smoke test runs it."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from orchestrator.cli import shared
from orchestrator.engine import Engine
from orchestrator.errors import UsageError
from orchestrator.pipeline.targets import select_targets
from orchestrator.stages.package import image_tag
from orchestrator.stages.smoke import run_image


def run(args: argparse.Namespace, console: Console) -> int:
    """The program's stdout and stderr as they are, and its exit code as osless's."""
    target = select_targets(shared.project(args), [args.service], [args.platform])[0]
    engine = Engine.connect()
    tag = image_tag(target.service, target.platform)
    if engine.image_id(tag) is None:
        raise UsageError(
            f"no image {tag} in the engine",
            hint=f"build it first: osless build {target.service.name} --platform {target.platform.name}",
        )
    program_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    result = run_image(
        engine, target.service, target.platform, tag, tuple(program_args) or target.service.smoke.args
    )
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    return result.exit_code

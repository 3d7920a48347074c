"""`osless verify FILE...`: the ELF checks on any files; exit 7 when one fails."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from orchestrator.cli import render
from orchestrator.errors import VerificationFailed
from orchestrator.outputs.report import to_jsonable
from orchestrator.platforms import PLATFORMS
from orchestrator.verify.policy import verify_binary


def run(args: argparse.Namespace, console: Console) -> int:
    platform = PLATFORMS[args.platform] if args.platform else None
    verdicts = [verify_binary(path, platform) for path in args.files]
    if args.json:
        console.print_json(json.dumps(to_jsonable(verdicts)))
    else:
        render.print_verdicts(console, verdicts, verbose=args.verbose)
    failed = [v for v in verdicts if not v.ok]
    if failed:
        raise VerificationFailed(f"{len(failed)} of {len(verdicts)} files failed verification")
    return 0

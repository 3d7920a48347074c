"""`osless inspect PATH|IMAGE`: what a binary or an image holds and whether it would run; exit 7 when
it would not."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from orchestrator.cli import render
from orchestrator.errors import VerificationFailed
from orchestrator.image.inspect import BinaryReport, inspect_target
from orchestrator.outputs.report import to_jsonable


def run(args: argparse.Namespace, console: Console) -> int:
    report = inspect_target(args.target, args.platform)
    if args.json:
        kind = "binary" if isinstance(report, BinaryReport) else "image"
        document = {"kind": kind, **to_jsonable(report), "ok": report.ok}
        console.file.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    elif isinstance(report, BinaryReport):
        render.print_binary(console, report, verbose=args.verbose)
    else:
        render.print_image(console, report, verbose=args.verbose)
    if report.ok:
        return 0
    if isinstance(report, BinaryReport):
        raise VerificationFailed(f"{args.target}: {report.verdict.reason}")
    count = len(report.problems)
    raise VerificationFailed(
        f"{args.target}: {count} problem{'s' if count != 1 else ''}: {report.problems[0]}"
    )

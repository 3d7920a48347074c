"""`osless doctor`: the engine, mmdebstrap and qemu-user for every platform, with fixes."""

from __future__ import annotations

import argparse

from rich.console import Console

from orchestrator.cli import render
from orchestrator.host import doctor


def run(args: argparse.Namespace, console: Console) -> int:
    checks = list(doctor.checks())
    console.print(render.checks_table(checks))
    return 1 if any(not check.ok for check in checks) else 0

"""`osless doctor` against the real kernel: every probe runs, and a handler disabled for real is reported
with the command that re-enables it. The disabled handler is always re-enabled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.host import binfmt
from orchestrator.host.probe import ProbeResult, run_probe
from orchestrator.platforms import PLATFORMS, Platform
from tests.conftest import REPO_ROOT
from tests.integration.conftest import RISCV64, RISCV_HANDLER

pytestmark = pytest.mark.integration


def doctor() -> tuple[int, dict[str, list[str]], str]:
    """Exit code, the table rows by check name (cells), and the whole output."""
    completed = subprocess.run(
        [sys.executable, "-m", "orchestrator", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    rows: dict[str, list[str]] = {}
    for line in completed.stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0].startswith("run "):
            rows[cells[0]] = cells[1:]
    return completed.returncode, rows, completed.stdout + completed.stderr


@pytest.mark.parametrize("platform", list(PLATFORMS.values()), ids=lambda p: p.name)
def test_probe_exits_42(platform: Platform) -> None:
    assert run_probe(platform) == ProbeResult(ok=True, exit_code=42, detail="probe exited 42")


def test_doctor_passes_with_every_handler() -> None:
    code, rows, output = doctor()
    assert code == 0, output
    assert set(rows) == {f"run {name}" for name in PLATFORMS}, output
    for name, (status, detail, fix) in rows.items():
        assert status == "ok", f"{name}: {detail}"
        assert detail.endswith("probe exited 42"), detail
        assert fix == ""


def test_doctor_reports_a_disabled_handler_and_its_fix(riscv64_disabled: Path) -> None:
    code, rows, output = doctor()
    assert code != 0, output
    status, detail, fix = rows["run linux/riscv64"]
    assert status != "ok"
    assert "disabled" in detail
    assert fix == f"echo 1 > {riscv64_disabled}"
    for name in PLATFORMS.keys() - {"linux/riscv64"}:
        assert rows[f"run {name}"][0] == "ok", output

    result = run_probe(RISCV64)
    assert not result.ok
    assert result.exit_code is None
    assert result.detail == "exec format error: the kernel has no handler for it"


def test_handler_is_enabled_again_after_the_test() -> None:
    """Runs after the disabling test (file order): the finalizer restored the handler."""
    handler = binfmt.read_handler(RISCV_HANDLER.name)
    assert handler is not None and handler.enabled
    assert run_probe(RISCV64).ok

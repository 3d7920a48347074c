"""A real build's output with -q (one line and the failures) and -v (the build steps), in a log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.factories import passing_and_failing
from tests.integration.conftest import run_osless

pytestmark = pytest.mark.integration

PLATFORM = "linux/amd64"


def test_quiet_is_one_line_and_verbose_shows_the_build_steps(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    project = make_project(passing_and_failing("good", "bad"))
    out = tmp_path / "out"
    quiet = run_osless(project, "-q", "build", "--platform", PLATFORM, out=out, env={"NO_COLOR": "1"})
    assert quiet.returncode == 12, quiet.stdout + quiet.stderr
    first, *rest = quiet.stdout.splitlines()
    assert first == f"2 targets: 1 passed, 1 failed; report: {out / 'report.json'}"
    assert rest[0].startswith(f"✗ bad {PLATFORM} smoke: ")  # then the diff: the failure is the error
    assert "[" not in first and "good" not in quiet.stdout and "\x1b" not in quiet.stdout + quiet.stderr

    verbose = run_osless(project, "build", "good", "--platform", PLATFORM, "-v", "--rebuild", out=out)
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    assert f"good {PLATFORM}: build" in verbose.stdout  # the step lines of a log
    built = json.loads((out / "report.json").read_text())["targets"][0]
    label = built["steps"][0]["label"]
    assert f"  good {PLATFORM}: {label} " in verbose.stdout

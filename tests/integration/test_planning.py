"""Partial planning, for real: a service whose source is missing fails alone (its targets failed at
build, with the recipe line) while the others build, and a platform a service does not build for is
named with its reason in the report and the output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.factories import service_recipe, smoked_c_recipe
from tests.integration.conftest import run_osless

pytestmark = pytest.mark.integration

HELLO = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'


def test_a_missing_source_fails_alone_and_the_others_build(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    """Issue 13 #6: `recipes/gone.toml:3: service.source: 'sources/gone' is missing` refused every
    build (exit 3); now good builds and passes, gone fails at build (exit 10), arm64-only is named."""
    project = make_project(
        {
            "sources/c/hello.c": HELLO,
            "recipes/good.toml": smoked_c_recipe("good", "c", stdout="hi\\n", exit_code=0),
            "recipes/gone.toml": smoked_c_recipe("gone", "gone", stdout="hi\\n", exit_code=0),
            "recipes/armonly.toml": service_recipe("armonly", source="sources/c", platforms=["linux/arm64"]),
        }
    )
    missing = "recipes/gone.toml:3: service.source: 'sources/gone' is missing"

    listed = run_osless(project, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"gone cannot be built: {missing}" in listed.stdout

    run = run_osless(project, "build", "--platform", "linux/amd64", out=tmp_path / "out")
    assert run.returncode == 10, run.stdout + run.stderr  # a target failed at build
    assert run.target("good", "linux/amd64")["status"] == "passed"
    gone = run.target("gone", "linux/amd64")
    assert (gone["status"], gone["failed_stage"], gone["reason"]) == ("failed", "build", missing)
    assert run.report["unsupported"] == [
        {
            "service": "armonly",
            "platform": "linux/amd64",
            "reason": "not among its platforms (armonly.toml: linux/arm64)",
        }
    ]
    output = " ".join(run.stdout.split())
    assert "armonly is not built for linux/amd64: not among its platforms" in output
    assert f"gone linux/amd64 build: {missing}" in output
    assert not (tmp_path / "out" / "gone").exists()

    alone = run_osless(project, "build", "gone", out=tmp_path / "out-gone")
    assert alone.returncode == 10
    assert f"gone cannot be built: {missing}" in alone.stderr
    assert not (tmp_path / "out-gone").exists()  # refused before anything was made

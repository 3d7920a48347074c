"""Reproducible builds: the same source gives the same binaries and image digests, from any clone."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.factories import service_recipe
from tests.integration.conftest import OslessRun, run_osless

pytestmark = pytest.mark.integration
NATIVE = "linux/amd64"


@pytest.fixture(scope="module")
def clone_checked(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> OslessRun:
    """A fresh clone of the repository, built twice from clean state by `--check-reproducible`, for the
    native platform: every language, and each build with fresh compiler caches (zig cc compiles musl
    first, minutes per platform)."""
    clone = tmp_path_factory.mktemp("clone") / "osless"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    return run_osless(clone, "build", "--check-reproducible", "--platform", NATIVE, out=clone / "out")


def test_two_clean_builds_of_a_clone_are_identical(clone_checked: OslessRun) -> None:
    assert clone_checked.returncode == 0, clone_checked.stdout + clone_checked.stderr
    comparison = json.loads((clone_checked.out / "reproducible.json").read_text())
    assert all(target["same"] for target in comparison["targets"]), comparison
    assert comparison["indexes"] and all(a == b for a, b in comparison["indexes"].values())


def test_a_clone_builds_what_the_repository_builds(clone_checked: OslessRun, build_all: OslessRun) -> None:
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain"], capture_output=True, text=True, check=True
    )
    if dirty.stdout.strip():
        pytest.skip("the working tree has uncommitted changes: a clone holds other sources")

    def digests(run: OslessRun) -> dict[tuple[str, str], tuple[str, str]]:
        """Binary and image manifest digests of the native targets (the index digests of build_all
        cover more platforms)."""
        return {
            (t["service"], t["platform"]): (t["binary"]["sha256"], t["image"]["manifest_digest"])
            for t in run.report["targets"]
            if t["platform"] == NATIVE
        }

    assert digests(clone_checked) == digests(build_all)


def test_a_nondeterministic_build_is_located(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    project = make_project(
        {
            "sources/c/main.c": "int main(void) { return 0; }\n",
            "recipes/uuid.toml": service_recipe(
                "uuid",
                ["{CC}", "-static", "-Wl,--build-id=uuid", "-o", "{output}", "main.c"],
                source="sources/c",
            ),
        }
    )
    run = run_osless(project, "build", "--check-reproducible", out=tmp_path / "out")
    assert run.returncode == 6  # the builds passed, but differ
    assert "uuid linux/amd64: binary differs: section .note.gnu.build-id differs" in run.stdout


def test_an_embedded_random_path_is_located_past_the_build_id(
    make_project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    """Issue 13 #8: a build in a `mktemp -d` directory compiles its random path into the binary; the
    report named .note.gnu.build-id (a hash of everything else). Now: .rodata, and the two paths."""
    script = 'd=$(mktemp -d) && cp main.c "$d/" && "$0" -static -o "$1" "$d/main.c"'
    project = make_project(
        {
            "sources/c/main.c": "#include <stdio.h>\nint main(void) { puts(__FILE__); return 0; }\n",
            "recipes/tmpdir.toml": service_recipe(
                "tmpdir", ["sh", "-c", script, "{CC}", "{output}"], source="sources/c"
            ),
        }
    )
    run = run_osless(project, "build", "--check-reproducible", out=tmp_path / "out")
    assert run.returncode == 6, run.stdout + run.stderr  # the builds passed, but differ
    comparison = json.loads((tmp_path / "out" / "reproducible.json").read_text())
    difference = comparison["targets"][0]["difference"]
    assert difference.startswith("binary differs: section .rodata differs"), difference
    assert difference.count('"/tmp/tmp.') == 2, difference  # "/tmp/tmp.X/main.c" vs "/tmp/tmp.Y/main.c"
    assert difference.endswith("(.note.gnu.build-id too, derived from the rest)"), difference

"""Several engines: the targets of a platform given with --engine are built and run on that engine."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import service_recipe
from tests.integration.conftest import SecondEngine, run_osless

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def second_engine() -> Iterator[tuple[str, Any]]:
    """A second dockerd for the module's tests, stopped and removed afterwards."""
    engine = SecondEngine()
    try:
        client = engine.start()
        yield engine.host, client
        client.close()
    finally:
        engine.stop()


def _tags(client: Any) -> set[str]:
    return {tag for image in client.images.list() for tag in image.tags}


def test_a_mapped_platform_runs_on_its_engine(
    second_engine: tuple[str, Any],
    docker_client: Any,
    make_project: Callable[[dict[str, str]], Path],
    tmp_path: Path,
) -> None:
    host, second = second_engine
    project = make_project(
        {
            "sources/c/hello.c": '#include <stdio.h>\nint main(void) { puts("two engines"); return 0; }\n',
            "recipes/twoeng.toml": service_recipe(
                "twoeng",
                ["{CC}", "-static", "-Os", "-o", "{output}", "hello.c"],
                source="sources/c",
                platforms=["linux/amd64", "linux/arm64"],
                more='[smoke]\nstdout = "two engines\\n"\n',
            ),
        }
    )
    run = run_osless(project, "build", "--engine", f"linux/arm64={host}", out=tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.target("twoeng", "linux/arm64")["engine"] == "linux/arm64"
    assert run.target("twoeng", "linux/amd64")["engine"] == "default"
    assert "twoeng:latest-arm64" in _tags(second) and "twoeng:latest-amd64" not in _tags(second)
    assert any(tag.startswith("osless-toolchain/gcc:") for tag in _tags(second))
    assert "twoeng:latest-amd64" in _tags(docker_client)
    assert second.containers.list(all=True) == [], "the second engine's containers were removed"
    first_bridge = subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False)
    assert first_bridge.returncode == 0, "the first engine's docker0 bridge must survive the second engine"
    docker_client.images.remove("twoeng:latest-amd64", force=True)


def test_the_run_fails_clearly_when_a_given_engine_is_down(tmp_path: Path) -> None:
    from tests.conftest import REPO_ROOT

    down = f"unix://{tmp_path}/nothing.sock"
    run = run_osless(REPO_ROOT, "build", "hello-c", "--engine", f"linux/arm64={down}", out=tmp_path / "out")
    assert run.returncode == 4
    assert f"the engine for linux/arm64 at {down} does not answer" in run.stderr

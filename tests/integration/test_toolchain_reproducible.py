"""Reproducible toolchain images against the real engine and archive: a tiny toolchain and one that
extends it (a package and a per-platform library) are bootstrapped, removed and bootstrapped again, then
bootstrapped from nothing on a second dockerd: the same image ids every time. The images carry no
trace of the project (no project label); which images the project made is its work dir's record. A
service built on each engine with its own toolchain image has the same index digest.

Tiny on purpose (`variant = "apt"`, make; bc and one -dev library): about three minutes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import BASE_LABEL, TOOLCHAIN_LABEL, image_reference
from orchestrator.engine import PROJECT_LABEL, Engine
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Toolchain
from orchestrator.stages.toolchain import ToolchainImage, made_images, provision
from tests.daemons import SecondEngine
from tests.integration.conftest import OslessRun, run_osless

pytestmark = pytest.mark.integration

BASE = """\
[toolchain]
name = "repro-tiny"

[toolchain.bootstrap]
suite = "trixie"
packages = ["make"]

[toolchain.platforms."linux/amd64"]

[toolchain.platforms."linux/arm64"]
"""
DERIVED = """\
[toolchain]
name = "repro-tiny-more"
extends = "repro-tiny"

[toolchain.bootstrap]
packages = ["bc"]

[toolchain.platforms."linux/amd64"]

[toolchain.platforms."linux/arm64"]
libraries = ["libbz2-dev"]
"""
SERVICE = """\
[service]
name = "repro-tiny"
source = "sources/tiny"
toolchain = "repro-tiny-more"
platforms = ["linux/amd64"]

[build]
command = ["cp", "/usr/sbin/ldconfig", "{output}"]

[smoke]
args = ["--version"]
exit_code = 0
"""
NAMES = ("repro-tiny", "repro-tiny-more")


def _remove_ours(client: Any) -> None:
    """This test's own toolchain images (by their toolchain label), whatever tags they have."""
    for name in reversed(NAMES):
        for image in client.images.list(filters={"label": f"{TOOLCHAIN_LABEL}={name}"}):
            client.images.remove(image.id, force=True)


@pytest.fixture
def tiny(docker_client: Any, make_project: Callable[[dict[str, str]], Path]) -> Iterator[Path]:
    root = make_project(
        {
            "recipes/toolchains/repro-tiny.toml": BASE,
            "recipes/toolchains/repro-tiny-more.toml": DERIVED,
            "recipes/repro-tiny.toml": SERVICE,
            "sources/tiny/main.c": "int main(void) { return 0; }\n",
        }
    )
    _remove_ours(docker_client)
    yield root
    for image in docker_client.images.list(name="repro-tiny"):
        docker_client.images.remove(image.id, force=True)
    _remove_ours(docker_client)


def _index_digest(run: OslessRun) -> str:
    assert run.returncode == 0, run.stdout + run.stderr
    (image,) = run.report["images"]
    return str(image["index_digest"])


def _provision(engine: Engine, toolchain: Toolchain, work_dir: Path, root: Path) -> ToolchainImage:
    return provision(engine, toolchain, work_dir, lambda _: None, project=root)


def test_the_same_toolchain_gives_the_same_image_id_everywhere(
    docker_client: Any, tiny: Path, tmp_path: Path
) -> None:
    toolchains = load_project(tiny).toolchains
    base, derived = toolchains["repro-tiny"], toolchains["repro-tiny-more"]
    engine = Engine(docker_client)
    work = tmp_path / "work"

    started = time.monotonic()
    first = _provision(engine, derived, work, tiny)
    assert first.bootstrapped
    first_base = docker_client.images.get(image_reference(base))
    made = docker_client.images.get(first.image_id)
    # No trace of the project or of the time in the image: its labels say what it is, nothing else.
    assert PROJECT_LABEL not in made.labels and PROJECT_LABEL not in first_base.labels
    assert made.labels[BASE_LABEL] == first_base.id
    assert made.attrs["Created"].startswith("2025-01-01T00:00:00")
    base_layers = first_base.attrs["RootFS"]["Layers"]
    assert made.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    assert len(made.attrs["RootFS"]["Layers"]) == len(base_layers) + 1
    # Which images this project made: recorded in its work dir.
    assert made_images(work / "repro-tiny-more.images") == [first.image_id]
    assert made_images(work / "repro-tiny.images") == [first_base.id]

    # Removed, then bootstrapped again from nothing: the same ids.
    _remove_ours(docker_client)
    again = _provision(engine, derived, tmp_path / "again", tiny)
    assert again.bootstrapped and again.image_id == first.image_id
    assert docker_client.images.get(image_reference(base)).id == first_base.id

    # On a second engine, bootstrapped there (nothing copied): the same ids.
    second = SecondEngine()
    try:
        other = Engine(second.start())
        there = _provision(other, derived, tmp_path / "there", tiny)
        assert there.bootstrapped and there.image_id == first.image_id
        assert other.image_id(image_reference(base)) == first_base.id
        # A service built on each engine, with that engine's own toolchain image: the same digest.
        here = run_osless(tiny, "build", out=tmp_path / "out-here")
        engines = ("--engine", f"linux/amd64={second.host}")
        on_second = run_osless(tiny, "build", *engines, out=tmp_path / "out-there")
        assert _index_digest(on_second) == _index_digest(here)
        assert on_second.target("repro-tiny", "linux/amd64")["toolchain_image"] == first.image_id
        assert "copying" not in on_second.stdout + on_second.stderr
    finally:
        second.stop()
    assert time.monotonic() - started < 600

"""The images osless writes load into Docker 20.10 as themselves (image id == config digest) and run."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator.image import oci
from orchestrator.platforms import PLATFORMS, Platform

pytestmark = pytest.mark.integration

GREETING = "hello from an osless scratch image"
PROGRAM = f'#include <stdio.h>\nint main(void) {{ puts("{GREETING}"); return 0; }}\n'


@pytest.fixture(scope="module")
def client(docker_client: Any) -> Any:
    """The shared engine connection (tests fail, never skip, without an engine)."""
    return docker_client


@pytest.fixture(scope="module")
def static_binary(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A tiny static program built with the host gcc, so the image needs nothing else."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("hello")
    (work / "hello.c").write_text(PROGRAM)
    subprocess.run(["gcc", "-static", "-Os", "-o", "hello", "hello.c"], cwd=work, check=True)
    return (work / "hello").read_bytes()


@pytest.fixture
def load(client: Any) -> Iterator[Callable[[oci.Image], str]]:
    """Load images under unique tags; every tag's image is removed afterwards."""
    tags: list[str] = []

    def _load(image: oci.Image) -> str:
        tag = f"osless-test/oci:{uuid.uuid4().hex[:12]}"
        tags.append(tag)
        loaded = client.images.load(oci.docker_archive(image, [tag]))
        assert [i.id for i in loaded] == [image.image_id]
        return tag

    yield _load
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)


def hello_image(binary: bytes, platform: Platform) -> oci.Image:
    config = oci.ImageConfig(platform=platform, entrypoint=("/hello",), created=1_700_000_000)
    return oci.build_image([oci.FileEntry(path="/hello", data=binary)], config)


def test_loaded_image_is_the_config_digest_and_runs(
    client: Any, static_binary: bytes, load: Callable[[oci.Image], str]
) -> None:
    image = hello_image(static_binary, PLATFORMS["linux/amd64"])
    tag = load(image)
    assert client.images.get(tag).id == image.image_id
    container = client.containers.create(tag, network_disabled=True)
    try:
        container.start()
        assert container.wait(timeout=60)["StatusCode"] == 0
        assert container.logs(stdout=True, stderr=False).decode() == GREETING + "\n"
    finally:
        container.remove(force=True)


def test_engine_reports_the_image_platform(
    client: Any, static_binary: bytes, load: Callable[[oci.Image], str]
) -> None:
    image = hello_image(static_binary, PLATFORMS["linux/arm64"])
    attrs = client.images.get(load(image)).attrs
    assert (attrs["Os"], attrs["Architecture"]) == ("linux", "arm64")
    assert attrs["RootFS"]["Layers"] == [image.layers[0].digest]


def test_layout_of_the_loaded_image_verifies(static_binary: bytes, tmp_path: Path) -> None:
    images = [hello_image(static_binary, PLATFORMS[name]) for name in ("linux/amd64", "linux/arm64")]
    oci.write_layout(tmp_path, images)
    assert oci.verify_layout(tmp_path) == []

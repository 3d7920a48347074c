"""`osless push` to a real registry (Debian's docker-registry); Docker 20.10 pulls and runs every platform."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from orchestrator.image import oci
from tests.conftest import REPO_ROOT
from tests.integration.conftest import BUILT_PLATFORMS, OslessRun, run_osless

pytestmark = pytest.mark.integration

SERVICE = "hello-go"
GREETING = "Hello from OS-less container (Go edition)"


@pytest.fixture(scope="module")
def reference(registry_address: str) -> str:
    return f"{registry_address}/team/{SERVICE}:v1"


@pytest.fixture(scope="module")
def pushed(build_all: OslessRun, reference: str) -> OslessRun:
    """hello-go, as build_all wrote it, pushed once."""
    run = run_osless(REPO_ROOT, "push", SERVICE, "--to", reference, out=build_all.out, timeout=300)
    assert run.returncode == 0, run.stderr
    return run


def _layout(run: OslessRun) -> Path:
    return run.out / SERVICE / "oci"


def _local_digest(run: OslessRun) -> str:
    return "sha256:" + hashlib.sha256((_layout(run) / "index.json").read_bytes()).hexdigest()


def _index_platforms(run: OslessRun) -> list[str]:
    index = json.loads((_layout(run) / "index.json").read_bytes())
    return [
        "/".join(filter(None, (p["os"], p["architecture"], p.get("variant"))))
        for p in (entry["platform"] for entry in index["manifests"])
    ]


def test_the_registry_digest_is_the_local_index_digest(pushed: OslessRun, registry_address: str) -> None:
    response = requests.get(
        f"http://{registry_address}/v2/team/{SERVICE}/manifests/v1",
        headers={"Accept": oci.MEDIA_TYPE_INDEX},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == oci.MEDIA_TYPE_INDEX
    remote = "sha256:" + hashlib.sha256(response.content).hexdigest()
    (image,) = [image for image in pushed.report["images"] if image["service"] == SERVICE]
    assert remote == response.headers["Docker-Content-Digest"] == _local_digest(pushed)
    assert remote == image["index_digest"]
    assert f"@{remote}" in pushed.stdout
    assert f"({len(image['platforms'])} platforms)" in pushed.stdout


def test_the_sbom_named_by_the_index_is_in_the_registry(pushed: OslessRun, registry_address: str) -> None:
    index = json.loads((_layout(pushed) / "index.json").read_bytes())
    digest = index["annotations"][oci.SBOM_DIGEST_ANNOTATION]
    response = requests.get(f"http://{registry_address}/v2/team/{SERVICE}/blobs/{digest}", timeout=10)
    assert response.status_code == 200
    assert response.content == (pushed.out / SERVICE / "sbom.cdx.json").read_bytes()


def test_a_second_push_uploads_nothing(pushed: OslessRun, reference: str) -> None:
    again = run_osless(REPO_ROOT, "push", SERVICE, "--to", reference, out=pushed.out, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 blobs uploaded (0 B)" in again.stdout, again.stdout
    assert not [line for line in again.stdout.splitlines() if line.startswith("uploaded")], again.stdout
    assert f"@{_local_digest(pushed)}" in again.stdout


def test_every_shipped_platform_is_in_the_index(pushed: OslessRun) -> None:
    assert sorted(_index_platforms(pushed)) == sorted(BUILT_PLATFORMS)


@contextmanager
def _not_in_engine(client: Any, image_id: str, archive: Path) -> Iterator[None]:
    """The image (same id as the pushed config digest) out of the engine, restored afterwards.

    Docker does not download the layers of an image it already has, and the build loaded this very
    image into the engine: without this, `docker pull` would never fetch the pushed layer.
    """
    try:
        tags = list(client.images.get(image_id).tags)
    except docker.errors.ImageNotFound:
        tags = []
    for tag in tags:
        client.images.remove(tag)
    try:
        yield
    finally:
        if tags:
            client.images.load(archive.read_bytes())
            for tag in tags:
                client.images.get(image_id).tag(tag)


@pytest.mark.parametrize("platform", BUILT_PLATFORMS)
def test_docker_pulls_and_runs_the_pushed_platform(
    pushed: OslessRun, reference: str, docker_client: Any, platform: str
) -> None:
    assert platform in _index_platforms(pushed)
    target = pushed.target(SERVICE, platform)
    archive = Path(target["log"]).parent / "image.tar"
    with _not_in_engine(docker_client, target["image"]["image_id"], archive):
        try:
            pull = subprocess.run(
                ["docker", "pull", "--platform", platform, reference],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert pull.returncode == 0, pull.stderr
            # The manifest and config come from the registry; the layer too, unless the engine already
            # holds the same layer for another image ("Already exists").
            assert "Downloaded newer image" in pull.stdout, pull.stdout
            assert "Pull complete" in pull.stdout or "Already exists" in pull.stdout, pull.stdout
            assert f"Digest: {_local_digest(pushed)}" in pull.stdout
            pulled = docker_client.images.get(reference)
            assert pulled.id == target["image"]["image_id"]
            run = subprocess.run(
                ["docker", "run", "--rm", "--platform", platform, reference],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert run.returncode == 0, run.stderr
            assert run.stdout.strip() == GREETING
        finally:
            with suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(reference)

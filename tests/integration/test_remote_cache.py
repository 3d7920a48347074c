"""The shared result cache over a real registry (Debian's docker-registry on loopback): clone A builds
and uploads with --cache-to; clone B, another directory on a second dockerd with empty caches, takes
every target from the registry with --cache-from (no build runs) and writes the same index digest; an
entry tampered with in the registry (a blob's bytes changed in its storage, a manifest pointing at
another file) is noted and rebuilt.

The Go toolchain comes from the default engine (bootstrapped first when missing: minutes) and is copied
to the second engine, keeping its image id: the target keys are the same on both."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.platforms import PLATFORMS as PLATFORM_TABLE
from tests.conftest import REPO_ROOT, remove_project_volumes
from tests.integration.conftest import OslessRun, SecondEngine, run_osless

pytestmark = pytest.mark.integration

PLATFORMS = ("linux/amd64", "linux/arm64")
PLATFORM_ARGS = tuple(argument for name in PLATFORMS for argument in ("--platform", name))
REPOSITORY = "team/osless-cache"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _clone(root: Path) -> Path:
    """A project with the shipped Go toolchain and the hello-go sample, at `root`."""
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    shutil.copy(REPO_ROOT / "recipes" / "hello-go.toml", root / "recipes" / "hello-go.toml")
    shutil.copytree(REPO_ROOT / "sources" / "hello-go", root / "sources" / "hello-go")
    return root


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("clones")
    yield work
    for project in work.iterdir():
        remove_project_volumes(project)


@pytest.fixture(scope="module")
def second_engine() -> Iterator[str]:
    engine = SecondEngine()
    try:
        engine.start().close()
        yield engine.host
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def built_a(docker_client: Any, registry_address: str, clones: Path) -> OslessRun:
    """Clone A built on the default engine, its results uploaded."""
    project = _clone(clones / "a")
    cache = f"{registry_address}/{REPOSITORY}"
    run = run_osless(project, "build", *PLATFORM_ARGS, "--cache-to", cache, out=project / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def _keys(run: OslessRun) -> dict[str, str]:
    """Each platform's target key, from its result.json."""
    return {
        platform: json.loads(
            (run.out / "hello-go" / PLATFORM_TABLE[platform].slug / "result.json").read_text()
        )["key"]
        for platform in PLATFORMS
    }


def _index_digest(run: OslessRun) -> str:
    (image,) = run.report["images"]
    return str(image["index_digest"])


def test_clone_a_uploads_an_entry_per_target(built_a: OslessRun, registry_address: str) -> None:
    for platform, key in _keys(built_a).items():
        assert built_a.target("hello-go", platform)["result_from"] == "built"
        response = requests.get(
            f"http://{registry_address}/v2/{REPOSITORY}/manifests/{key}",
            headers={"Accept": MANIFEST},
            timeout=10,
        )
        assert response.status_code == 200, (platform, response.text)
        manifest = response.json()
        assert manifest["artifactType"] == "application/vnd.osless.result.v1+json"
        titles = {layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]}
        assert {"bin/hello-go", "build.log"} <= titles
        assert "image.tar" not in titles and "result.json" not in titles


def test_a_fresh_clone_on_a_second_engine_builds_nothing(
    built_a: OslessRun, registry_address: str, second_engine: str, clones: Path
) -> None:
    project = _clone(clones / "b")
    engines = [argument for name in PLATFORMS for argument in ("--engine", f"{name}={second_engine}")]
    cache = f"{registry_address}/{REPOSITORY}"
    run = run_osless(project, "build", *PLATFORM_ARGS, *engines, "--cache-from", cache, out=project / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert _keys(run) == _keys(built_a), (
        "the same inputs, the same keys (did osless's code change meanwhile?)"
    )
    for platform in PLATFORMS:
        target = run.target("hello-go", platform)
        assert target["result_from"] == "remote-cache", target["notes"]
        assert "build" not in target["seconds"] and "fetch" not in target["seconds"], target["seconds"]
        assert target["smoke"]["passed"], "the smoke test ran here (no --trust-cache-smoke)"
        assert any(note.startswith(f"from {cache}@sha256:") for note in target["notes"]), target["notes"]
        assert target["binary"]["sha256"] == built_a.target("hello-go", platform)["binary"]["sha256"]
        assert target["binary"]["path"].startswith(str(project / "out")), "paths are in this clone's out/"
        assert f"hello-go {platform}: build" not in run.stdout + run.stderr
    assert _index_digest(run) == _index_digest(built_a)
    # out/ holds a reusable result now: the next run takes it from there
    again = run_osless(project, "build", *PLATFORM_ARGS, *engines, out=project / "out")
    assert again.returncode == 0, again.stdout + again.stderr
    assert {again.target("hello-go", p)["result_from"] for p in PLATFORMS} == {"local-cache"}, again.stdout


def test_a_trusted_smoke_pass_on_this_machine_platform_is_not_run_again(
    built_a: OslessRun, registry_address: str, clones: Path
) -> None:
    project = _clone(clones / "d")
    cache = f"{registry_address}/{REPOSITORY}"
    run = run_osless(
        project, "build", *PLATFORM_ARGS, "--cache-from", cache, "--trust-cache-smoke", out=project / "out"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for platform in PLATFORMS:
        target = run.target("hello-go", platform)
        assert target["result_from"] == "remote-cache", target["notes"]
        assert "smoke" not in target["seconds"] and "build" not in target["seconds"], target["seconds"]
        assert any(note.startswith("smoke test not run") for note in target["notes"]), target["notes"]
        assert target["smoke"] == built_a.target("hello-go", platform)["smoke"]
    assert _index_digest(run) == _index_digest(built_a)


def _blob_file(base: Path, digest: str) -> Path:
    """Where the loopback registry stores a blob (its storage is under pytest's base temp directory)."""
    hexdigest = digest.removeprefix("sha256:")
    pattern = f"registry*/data/docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"
    found = sorted({path.resolve() for path in base.glob(pattern)})  # also via pytest's `*current` links
    assert len(found) == 1, found
    return found[0]


def _manifest(registry_address: str, key: str) -> dict[str, Any]:
    response = requests.get(
        f"http://{registry_address}/v2/{REPOSITORY}/manifests/{key}", headers={"Accept": MANIFEST}, timeout=10
    )
    assert response.status_code == 200
    return dict(response.json())


def _binary_layer(manifest: dict[str, Any]) -> dict[str, Any]:
    (layer,) = [
        layer
        for layer in manifest["layers"]
        if layer["annotations"]["org.opencontainers.image.title"] == "bin/hello-go"
    ]
    return dict(layer)


def test_a_tampered_entry_is_noted_and_rebuilt(
    built_a: OslessRun,
    registry_address: str,
    clones: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    keys = _keys(built_a)
    # amd64: the binary's bytes changed in the registry's storage (same size, same name)
    amd64 = _manifest(registry_address, keys["linux/amd64"])
    stored = _blob_file(tmp_path_factory.getbasetemp(), _binary_layer(amd64)["digest"])
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    # arm64: the manifest re-pointed at another blob the repository has (amd64's build log)
    arm64 = _manifest(registry_address, keys["linux/arm64"])
    (log,) = [
        layer
        for layer in amd64["layers"]
        if layer["annotations"]["org.opencontainers.image.title"] == "build.log"
    ]
    binary = _binary_layer(arm64)
    binary["digest"], binary["size"] = log["digest"], log["size"]
    arm64["layers"] = [
        binary if layer["annotations"]["org.opencontainers.image.title"] == "bin/hello-go" else layer
        for layer in arm64["layers"]
    ]
    body = json.dumps(arm64).encode()
    put = requests.put(
        f"http://{registry_address}/v2/{REPOSITORY}/manifests/{keys['linux/arm64']}",
        data=body,
        headers={"Content-Type": MANIFEST},
        timeout=10,
    )
    assert put.status_code == 201, put.text

    project = _clone(clones / "c")
    cache = f"{registry_address}/{REPOSITORY}"
    run = run_osless(project, "build", *PLATFORM_ARGS, "--cache-from", cache, out=project / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    for platform in PLATFORMS:
        target = run.target("hello-go", platform)
        assert target["result_from"] == "built", target
        assert "build" in target["seconds"]
        assert any("was ignored" in note for note in target["notes"]), target["notes"]
        assert target["binary"]["sha256"] == built_a.target("hello-go", platform)["binary"]["sha256"]
    notes = " ".join(run.target("hello-go", "linux/amd64")["notes"])
    assert "holds other bytes" in notes, notes
    assert (
        hashlib.sha256(bytes(data)).hexdigest()
        != built_a.target("hello-go", "linux/amd64")["binary"]["sha256"]
    )
    assert _index_digest(run) == _index_digest(built_a)

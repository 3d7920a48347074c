"""The fetch step with the real Go toolchain: a Go program with a third-party module (github.com/pkg/errors,
the sample's) served from a GOPROXY directory of the project, fetched once per go.sum, verified by it,
and built offline from the fetched module cache; a network only in the fetch step that asks for one."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, remove_project_volumes
from tests.integration.conftest import run_osless

pytestmark = pytest.mark.integration
AMD64, ARM64 = "linux/amd64", "linux/arm64"
SERVICE = "mods"
EXPECTED = "hello-go-modules: saving report.txt: permission denied\\ncause: permission denied\\n"
SMOKE = f'[smoke]\nstdout = "{EXPECTED}"\n'
NO_PROXY = "http://deb.debian.org/osless-no-such-goproxy"


def recipe(fetch: str, build: str = '["go", "build", "-trimpath", "-o", "{output}", "."]') -> str:
    return (
        f'[service]\nname = "{SERVICE}"\nsource = "sources/mods"\ntoolchain = "go"\n'
        f'platforms = ["{AMD64}", "{ARM64}"]\n\n[fetch]\n{fetch}\n\n[build]\ncommand = {build}\n\n{SMOKE}'
    )


@pytest.fixture
def project(tmp_path: Path, docker_client: Any) -> Iterator[Path]:
    """The sample's source and GOPROXY directory in a project of its own (its cache volume removed
    afterwards)."""
    root = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    shutil.copytree(REPO_ROOT / "sources" / "hello-go-modules", root / "sources" / "mods")
    shutil.copytree(REPO_ROOT / "deps" / "goproxy", root / "deps" / "goproxy")
    (root / "recipes" / "mods.toml").write_text(recipe('goproxy = "file://deps/goproxy"'))
    yield root
    remove_project_volumes(root)


def sbom_components(out: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((out / SERVICE / "sbom.cdx.json").read_text())
    return {c["name"]: c for c in document["components"]}


def properties(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"].removeprefix("osless:"): p["value"] for p in component.get("properties", [])}


def test_modules_are_fetched_once_per_go_sum_and_verified(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_osless(project, "build", "--platform", AMD64, "--platform", ARM64, out=out)
    assert first.returncode == 0, first.stdout + first.stderr
    fetches = [first.target(SERVICE, platform)["fetch"] for platform in (AMD64, ARM64)]
    assert sorted(f["reused"] for f in fetches) == [False, True]  # one fetch for both platforms
    assert {f["key"] for f in fetches} == {fetches[0]["key"]}
    assert all(f["network"] is False and f["sources"] == ["file://deps/goproxy"] for f in fetches)
    assert all("fetch" in first.target(SERVICE, p)["seconds"] for p in (AMD64, ARM64))
    fetched = next(f for f in fetches if not f["reused"])
    assert "[osless] exit code 0" in Path(fetched["log"]).read_text()

    components = sbom_components(out)
    errors = components["github.com/pkg/errors"]
    assert errors["version"] == "v0.9.1" and errors["purl"] == "pkg:golang/github.com/pkg/errors@v0.9.1"
    assert properties(errors) | {"go:sum": ""} == {
        "go:module": "dep",
        "go:sum": "",
        "origin": "go-module-cache",
        "platforms": f"{AMD64},{ARM64}",
    }
    assert properties(errors)["go:sum"] == "h1:FEBLx1zS214owpjy7qsBeixbURkuhQAwrK5UwLGTwt4="
    assert properties(components[f"{SERVICE} source"])["origin"] == "service-source"

    # The same go.sum: the module cache of its key is used as it is.
    again = run_osless(project, "build", "--rebuild", "--platform", AMD64, out=out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.target(SERVICE, AMD64)["fetch"]["reused"] is True

    # A go.sum that does not match the proxy's zip: a new key, fetched again, and go refuses it.
    go_sum = project / "sources" / "mods" / "go.sum"
    go_sum.write_text(go_sum.read_text().replace("h1:FEBLx1", "h1:GEBLx1"))
    tampered = run_osless(project, "build", "--rebuild", "--platform", AMD64, out=out)
    assert tampered.returncode == 10, tampered.stdout + tampered.stderr
    target = tampered.target(SERVICE, AMD64)
    assert target["failed_stage"] == "build"
    assert target["reason"].startswith(
        "the fetch step (go mod download from file://deps/goproxy) exited with 1: "
        "verifying github.com/pkg/errors@v0.9.1: checksum mismatch"
    ), target["reason"]
    assert "SECURITY ERROR" in (out / SERVICE / "linux-amd64" / "fetch.log").read_text()


def _debian_reachable() -> bool:
    try:
        with urllib.request.urlopen("http://deb.debian.org/debian/", timeout=10):
            return True
    except (urllib.error.URLError, OSError):
        return False


def test_only_a_fetch_step_that_asks_for_it_has_a_network(project: Path, tmp_path: Path) -> None:
    if not _debian_reachable():
        pytest.skip("deb.debian.org is not reachable from this host")
    recipes = project / "recipes" / "mods.toml"
    # The fetch step reaches the http(s) source: the server answers (it is no module proxy).
    recipes.write_text(recipe(f'goproxy = "{NO_PROXY}"\nnetwork = true'))
    online = run_osless(project, "build", "--platform", AMD64, out=tmp_path / "online")
    assert online.returncode == 10, online.stdout + online.stderr
    reason = online.target(SERVICE, AMD64)["reason"]
    assert f"reading {NO_PROXY}/github.com/pkg/errors/@v/v0.9.1" in reason, reason
    assert "dial tcp" not in reason and "lookup" not in reason

    # The build step after a fetch step with a network has none: go cannot even resolve the name.
    build = (
        '["sh", "-c", "GOFLAGS=-mod=mod GOPROXY=' + NO_PROXY + ' go list -m github.com/pkg/errors@v0.9.0"]'
    )
    recipes.write_text(recipe(f'goproxy = ["file://deps/goproxy", "{NO_PROXY}"]\nnetwork = true', build))
    offline = run_osless(project, "build", "--platform", AMD64, out=tmp_path / "offline")
    assert offline.returncode == 10, offline.stdout + offline.stderr
    target = offline.target(SERVICE, AMD64)
    assert target["fetch"]["network"] is True and target["fetch"]["reused"] is False
    log = (tmp_path / "offline" / SERVICE / "linux-amd64" / "build.log").read_text()
    assert "dial tcp" in log or "lookup deb.debian.org" in log, log

"""`osless inspect` on the shipped images: from the engine and from the OCI layouts, exactly what the
layers hold; on the Go binaries, the same lines as `go version -m` in the Go toolchain image."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import BUILT_PLATFORMS, OslessRun, run_osless

pytestmark = pytest.mark.integration


def passed_targets(run: OslessRun) -> list[dict[str, Any]]:
    assert run.returncode == 0, run.stdout + run.stderr
    targets = [t for t in run.report["targets"] if t["status"] == "passed"]
    assert {t["service"] for t in targets} >= {"hello-go", "hello-c", "hello-c-musl"}
    return targets


def layer_entries(layout: Path, platform: str) -> dict[str, tuple[str, int, int, int, int]]:
    """path -> (kind, mode, uid, gid, size) as the platform's layer tar holds it, read without osless."""
    blob = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    [descriptor] = [
        m
        for m in index["manifests"]
        if "/".join(
            filter(None, (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant")))
        )
        == platform
    ]
    manifest = json.loads((blob / descriptor["digest"].removeprefix("sha256:")).read_bytes())
    entries = {}
    for layer in manifest["layers"]:
        data = (blob / layer["digest"].removeprefix("sha256:")).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                kind = "dir" if member.isdir() else "file" if member.isfile() else "other"
                entries["/" + member.name.rstrip("/")] = (
                    kind,
                    member.mode,
                    member.uid,
                    member.gid,
                    member.size,
                )
    return entries


def inspected(run: OslessRun) -> dict[str, tuple[str, int, int, int, int]]:
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(run.stdout)
    return {
        f["path"]: (f["type"], int(f["mode"], 8), f["uid"], f["gid"], f["size"]) for f in document["files"]
    }


def test_inspect_lists_exactly_the_files_of_every_shipped_image(build_all: OslessRun) -> None:
    for target in passed_targets(build_all):
        service, platform, tag = target["service"], target["platform"], target["image"]["tag"]
        expected = layer_entries(build_all.out / service / "oci", platform)
        assert expected[f"/{service}"][:2] == ("file", 0o755), expected
        assert expected[f"/{service}"][4] == target["binary"]["size"]
        from_engine = run_osless(REPO_ROOT, "inspect", tag, "--json")
        assert inspected(from_engine) == expected, tag
        document = json.loads(from_engine.stdout)
        assert (document["ok"], document["platform"], document["image_id"]) == (
            True,
            platform,
            target["image"]["image_id"],
        )
        assert [b["path"] for b in document["binaries"]] == [f"/{service}"]
        assert all(need["provided"] for need in document["needs"]), document["needs"]
        from_layout = run_osless(
            REPO_ROOT, "inspect", str(build_all.out / service / "oci"), "--platform", platform, "--json"
        )
        assert inspected(from_layout) == expected, f"{service} {platform}"
        text = run_osless(REPO_ROOT, "inspect", tag)
        assert text.returncode == 0, text.stdout + text.stderr
        assert f"/{service}" in text.stdout and "-rwxr-xr-x" in text.stdout


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_a_go_binary_shows_what_go_version_m_prints(build_all: OslessRun, command: str) -> None:
    targets = [t for t in passed_targets(build_all) if t["service"] == "hello-go"]
    assert {t["platform"] for t in targets} == set(BUILT_PLATFORMS)
    for target in targets:
        binary = build_all.out / "hello-go" / target["platform"].replace("/", "-") / "bin" / "hello-go"
        docker_run = ["docker", "run", "--rm", "--network", "none", "-v", f"{binary.parent}:/b:ro"]
        go = subprocess.run(
            [*docker_run, target["toolchain_image"], "go", "version", "-m", "/b/hello-go"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result = run_osless(REPO_ROOT, command, str(binary))
        assert result.returncode == 0, result.stdout + result.stderr
        first, *rest = go.splitlines()
        assert first.startswith("/b/hello-go: go")
        head = f"{binary}: {first.removeprefix('/b/hello-go: ')}"
        lines = result.stdout.splitlines()
        start = lines.index(head)
        assert lines[start + 1 : start + 1 + len(rest)] == rest, (go, result.stdout)
        after = lines[start + 1 + len(rest) :]
        assert not after or not after[0].startswith("\t"), "no more build info lines than Go prints"

"""Rust through the real rust toolchain image: `osless verify` names the language of the sample built
stripped and unstripped for amd64, arm64 and arm/v7 (the Debian std's version in its finding, no
warning), and a second build of the unchanged sample compiles nothing (cargo's target directory
persists in the toolchain's cache volume)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bootstrap.spec import image_reference
from orchestrator.languages import build_env_defaults
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.placeholders import build_env
from tests.conftest import REPO_ROOT
from tests.integration.conftest import run_osless

pytestmark = pytest.mark.integration

PLATFORM_NAMES = ("linux/amd64", "linux/arm64", "linux/arm/v7")
VARIANTS = ("stripped", "unstripped")
PROJECT = load_project(REPO_ROOT)


@pytest.fixture(scope="session")
def rust_image(docker_client: Any) -> str:
    reference = image_reference(PROJECT.toolchains["rust"])
    if not docker_client.images.list(name=reference):
        pytest.fail(f"toolchain image {reference} is missing: provision it with `osless build hello-rust`")
    return reference


@pytest.fixture(scope="session")
def rust_built(rust_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """hello-rust as its recipe builds it (release profile: stripped), and with symbols kept, for each
    of PLATFORM_NAMES, in the toolchain image with the toolchain's environment; source read-only."""
    work = tmp_path_factory.mktemp("rust-built")
    shutil.copytree(REPO_ROOT / "sources" / "hello-rust", work / "src")
    (work / "bin").mkdir()
    os.chmod(work / "bin", 0o777)
    toolchain = PROJECT.toolchains["rust"]
    built = {}
    for name in PLATFORM_NAMES:
        platform = PLATFORMS[name]
        env = {**build_env_defaults("/tmp", "/tmp"), **build_env(toolchain, name, {})}
        env["CARGO_TARGET_DIR"] = "/tmp/target"
        built_binary = '"$CARGO_TARGET_DIR/$CARGO_BUILD_TARGET/release/hello-rust"'
        script = (
            f"cargo build --release --locked --offline && cp -- {built_binary} /out/{platform.slug}-stripped"
            " && CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --locked --offline"
            f" && cp -- {built_binary} /out/{platform.slug}-unstripped"
        )
        flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        command = [
            "docker", "run", "--rm", "--network", "none", "--user", "65532:65532", "--tmpfs", "/tmp:exec",
            "-v", f"{work / 'src'}:/src:ro", "-v", f"{work / 'bin'}:/out", "-w", "/src", *flags,
            rust_image, "sh", "-ec", script,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{name}:\n{result.stderr}"
        for variant in VARIANTS:
            built[name, variant] = work / "bin" / f"{platform.slug}-{variant}"
    return built


def osless_verify(path: Path, platform: str) -> tuple[int, dict[str, Any]]:
    command = [sys.executable, "-m", "orchestrator", "verify", "--json", "--platform", platform, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    (verdict,) = json.loads(result.stdout)
    return result.returncode, verdict


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("platform", PLATFORM_NAMES)
def test_osless_verify_names_rust(
    rust_built: dict[tuple[str, str], Path], platform: str, variant: str
) -> None:
    returncode, verdict = osless_verify(rust_built[platform, variant], platform)
    assert returncode == 0, verdict
    assert verdict["language"] == "rust"
    assert verdict["facts"]["stripped"] is (variant == "stripped")
    assert verdict["facts"]["platform"] == platform
    findings = {f["id"]: f for f in verdict["findings"]}
    assert not [f for f in findings.values() if f["severity"] != "info"], findings
    assert re.fullmatch(r"Rust 1\.[0-9]+\.[0-9]+", findings["rust.version"]["message"])
    # +crt-static: static-pie where rustc's target supports it (x86_64), plain static elsewhere.
    expected = "static-pie" if platform == "linux/amd64" else "static"
    assert verdict["facts"]["linkage"] == expected


def test_the_rust_version_is_the_toolchains_rustc(
    rust_built: dict[tuple[str, str], Path], rust_image: str
) -> None:
    output = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", rust_image, "rustc", "--version"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rustc = output.split()[1]
    for (platform, _), path in rust_built.items():
        _, verdict = osless_verify(path, platform)
        (finding,) = [f for f in verdict["findings"] if f["id"] == "rust.version"]
        assert finding["message"] == f"Rust {rustc}"


def test_a_second_build_of_the_unchanged_sample_compiles_nothing(
    rust_image: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """cargo's target directory lives in the toolchain's cache volume, per service and platform: the
    rebuild runs cargo (its log says Finished) and copies the same binary, with no Compiling line."""
    binaries = []
    for attempt in ("first", "second"):
        out = tmp_path_factory.mktemp(f"rust-{attempt}")
        run = run_osless(REPO_ROOT, "build", "--rebuild", "hello-rust", "--platform", "linux/amd64", out=out)
        assert run.returncode == 0, run.stdout + run.stderr
        log = (out / "hello-rust" / "linux-amd64" / "build.log").read_text()
        assert "Finished `release` profile" in log
        binaries.append((out / "hello-rust" / "linux-amd64" / "bin" / "hello-rust").read_bytes())
    assert "Compiling" not in log, log
    assert binaries[0] == binaries[1]

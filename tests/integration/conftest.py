"""Integration tests drive the real engine: they fail (never skip) when it is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator.host import binfmt
from orchestrator.platforms import PLATFORMS
from tests.conftest import REPO_ROOT
from tests.daemons import DaemonError, SecondEngine, loopback_registry

RISCV64 = PLATFORMS["linux/riscv64"]
SUBSET = ("linux/amd64", "linux/arm64")
"""The platforms the integration tests build the shipped samples for, unless OSLESS_TEST_PLATFORMS says
otherwise: every language on the native platform and an emulated one, within CI's time budget (CI's
examples run adds a 32-bit one, .ci/run). `nox -s tests-all` (OSLESS_TEST_PLATFORMS=all) builds
and tests all seven."""


def _test_platforms() -> tuple[str, ...]:
    value = os.environ.get("OSLESS_TEST_PLATFORMS", "").strip()
    if value == "all":
        return tuple(PLATFORMS)
    chosen = tuple(name.strip() for name in value.split(",") if name.strip()) or SUBSET
    unknown = [name for name in chosen if name not in PLATFORMS]
    if unknown:
        raise pytest.UsageError(
            f"OSLESS_TEST_PLATFORMS: unknown {unknown}; known: all, {', '.join(PLATFORMS)}"
        )
    return tuple(name for name in PLATFORMS if name in chosen)  # in the table's order, like reports


BUILT_PLATFORMS = _test_platforms()
PLATFORM_ARGS = tuple(argument for name in BUILT_PLATFORMS for argument in ("--platform", name))
RISCV_HANDLER = binfmt.BINFMT_DIR / f"qemu-{RISCV64.qemu}"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        pytest.fail(f"integration tests need a Docker engine ({error}): run `sudo scripts/setup-host`")
    yield client
    client.close()


@dataclass(frozen=True)
class OslessRun:
    """One `osless` invocation as a user would run it."""

    returncode: int
    stdout: str
    stderr: str
    out: Path

    @property
    def report(self) -> dict[str, Any]:
        return dict(json.loads((self.out / "report.json").read_text()))

    def target(self, service: str, platform: str) -> dict[str, Any]:
        matches = [t for t in self.report["targets"] if (t["service"], t["platform"]) == (service, platform)]
        assert len(matches) == 1, f"{service} {platform} not in the report once"
        return dict(matches[0])


def run_osless(
    project: Path,
    *args: str,
    out: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
) -> OslessRun:
    """Run `python -m orchestrator` in project (with --out for builds) and capture everything."""
    command = [sys.executable, "-m", "orchestrator", "-C", str(project), *args]
    if out is not None:
        command += ["--out", str(out)]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )
    return OslessRun(completed.returncode, completed.stdout, completed.stderr, out or project / "out")


@pytest.fixture(scope="session")
def build_all(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> OslessRun:
    """The shipped samples built once for BUILT_PLATFORMS (`nox -s build-all` builds all seven), into a
    temporary out/."""
    out = tmp_path_factory.mktemp("out")
    return run_osless(REPO_ROOT, "build", *PLATFORM_ARGS, out=out)


@pytest.fixture
def riscv64_disabled() -> Iterator[Path]:
    """The real qemu-riscv64 handler disabled for the test, and re-enabled whatever happens."""
    handler = binfmt.read_handler(RISCV_HANDLER.name)
    if handler is None or not handler.enabled:
        pytest.fail(f"{RISCV_HANDLER} must be registered and enabled: run `sudo scripts/setup-host`")
    try:
        RISCV_HANDLER.write_text("0")
        yield RISCV_HANDLER
    finally:
        RISCV_HANDLER.write_text("1")


@pytest.fixture
def second_engine() -> Iterator[SecondEngine]:
    """A second engine for one test (test_engines.py holds one for its whole module)."""
    engine = SecondEngine()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def registry_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real registry on 127.0.0.1 (plain http, no auth, storage in tmp) for this module."""
    try:
        with loopback_registry(tmp_path_factory.mktemp("registry")) as address:
            yield address
    except DaemonError as error:
        pytest.fail(str(error))

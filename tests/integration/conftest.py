"""Integration tests drive the real engine: they fail (never skip) when it is missing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from orchestrator.host import binfmt
from orchestrator.platforms import PLATFORMS
from tests.conftest import REPO_ROOT

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


class SecondEngine:
    """A second dockerd with its own socket, data root, exec root, bridge and TMPDIR, that can be killed;
    `stop` removes every trace of it (processes, mounts, bridge, files)."""

    def __init__(self) -> None:
        if shutil.which("dockerd") is None:
            pytest.fail("dockerd is not installed: run `sudo scripts/setup-host`")
        self.root = Path(tempfile.mkdtemp(prefix="osless-dockerd-", dir="/tmp"))  # short socket path
        self.host = f"unix://{self.root}/docker.sock"
        self.bridge = f"osf{self.root.name[-8:]}"[:15]
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge"], check=True)

    def start(self) -> Any:
        log = (self.root / "dockerd.log").open("ab")
        # Its own TMPDIR: runc leaves files there when the engine is killed mid-exec.
        (self.root / "tmp").mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            ["dockerd", "--host", self.host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
             "--bridge", self.bridge, "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(self.root / "tmp")},
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                return docker.DockerClient(base_url=self.host, timeout=300)
            except docker.errors.DockerException:
                assert self.process.poll() is None, (self.root / "dockerd.log").read_text()
                assert time.monotonic() < deadline, "the second dockerd did not answer within 60 s"
                time.sleep(0.5)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        # and everything it ran (its containerd, the containers' shims and processes), as a crash of
        # the machine would: the restarted engine finds the containers' records, stopped
        for pid in self._own_processes():
            _kill_tree(pid)

    def _own_processes(self) -> list[int]:
        """This engine's processes: those whose command line names its directory."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if str(self.root).encode() in (entry / "cmdline").read_bytes():
                        found.append(int(entry.name))
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self._own_processes():  # had any outlived its dockerd
            _kill_tree(pid)
        mounts = Path("/proc/mounts").read_text().split()
        for point in sorted((m for m in mounts if m.startswith(f"{self.root}/")), reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)  # netns too
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants (children first)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
    for child in children:
        _kill_tree(child)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def second_engine() -> Iterator[SecondEngine]:
    """A second engine for one test (test_engines.py holds one for its whole module)."""
    engine = SecondEngine()
    try:
        yield engine
    finally:
        engine.stop()


REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@pytest.fixture(scope="module")
def registry_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real registry on 127.0.0.1 (plain http, no auth, storage in tmp) for this module."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(binary).is_file():
        pytest.fail("docker-registry is not installed: run `sudo scripts/setup-host`")
    work = tmp_path_factory.mktemp("registry")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = work / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=work / "data", port=port))
    log = (work / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"docker-registry exited with {process.returncode}: {_tail(work / 'registry.log')}"
                )
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"docker-registry did not answer within 30 s: {_tail(work / 'registry.log')}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]

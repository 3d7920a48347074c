"""The daemons tests and the bench start beside the default engine: a second dockerd and a registry on
loopback (Debian's docker-registry). Each removes every trace of itself when stopped; neither needs
pytest, so that `python -m bench.benchmark` uses them too."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import requests


class DaemonError(Exception):
    """A daemon is not installed, exited, or did not answer in time."""


class SecondEngine:
    """A second dockerd with its own socket, data root, exec root, bridge and TMPDIR, that can be killed;
    `stop` removes every trace of it (processes, mounts, bridge, files)."""

    def __init__(self) -> None:
        if shutil.which("dockerd") is None:
            raise DaemonError("dockerd is not installed: run `sudo scripts/setup-host`")
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
            except docker.errors.DockerException as error:
                if self.process.poll() is not None:
                    tail = _tail(self.root / "dockerd.log")
                    raise DaemonError(f"the second dockerd exited: {tail}") from error
                if time.monotonic() > deadline:
                    raise DaemonError("the second dockerd did not answer within 60 s") from error
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


@contextlib.contextmanager
def loopback_registry(work: Path) -> Iterator[str]:
    """A real registry on 127.0.0.1 (plain http, no auth, storage under `work`): its address."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(binary).is_file():
        raise DaemonError("docker-registry is not installed: run `sudo scripts/setup-host`")
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
                raise DaemonError(
                    f"docker-registry exited with {process.returncode}: {_tail(work / 'registry.log')}"
                )
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise DaemonError(
                    f"docker-registry did not answer within 30 s: {_tail(work / 'registry.log')}"
                )
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


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]

"""Faults, for real: signals, a killed engine, a full or read-only out/, two runs at once, a corrupted
cache. Each ends with one clean error line and an exit code that says what happened, never a
traceback, and leaves nothing that looks valid but is not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.factories import service_recipe
from tests.integration.conftest import SecondEngine, run_osless

pytestmark = pytest.mark.integration

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello faults"); return 0; }\n'
SLEEPY_C = '#include <stdio.h>\n#include <unistd.h>\nint main(void) { sleep(40); puts("late"); return 0; }\n'
OWNER_PID_LABEL = "osless.owner.pid"


def _c_service(name: str, *, slow_build: bool = False, source: str | None = None, smoke: str = "") -> str:
    """A C service for linux/amd64; with slow_build its build command first sleeps while `slow` exists."""
    compile_ = "{CC} -static -Os -o {output} main.c"
    command = (
        ["sh", "-c", f"if [ -e slow ]; then sleep 60; fi; {compile_}"]
        if slow_build
        else ["{CC}", "-static", "-Os", "-o", "{output}", "main.c"]
    )
    return service_recipe(name, command, source=source, more=smoke)


class Osless:
    """`osless` running in the background, its output read line by line (no terminal: plain lines)."""

    def __init__(self, project: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "-C", str(project), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
        self.lines: list[str] = []
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"osless ended before {text!r}: {self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s: {self.output()}"
            time.sleep(0.2)

    def finish(self, timeout: float = 600) -> int:
        try:
            _, self.stderr = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        return self.process.returncode

    def output(self) -> str:
        return "".join(self.lines) + self.stderr


def _error_lines(text: str) -> list[str]:
    assert "Traceback" not in text, text
    return [line for line in text.splitlines() if line.startswith("osless:")]


def _containers_of(client: Any, pid: int) -> list[str]:
    """The containers (running or not) an osless process started, by their owner label."""
    found = client.containers.list(all=True, filters={"label": f"{OWNER_PID_LABEL}={pid}"})
    return [c.name for c in found]


def _wait_for_containers_of(client: Any, pid: int, timeout: float = 120) -> list[str]:
    """The containers of an osless process once one exists: its stage line is printed before the
    stage takes its builder (which may still be starting), so a test that needs one waits for it."""
    deadline = time.monotonic() + timeout
    while not (found := _containers_of(client, pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _report(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "report.json").read_text()))


@pytest.fixture
def c_project(make_project: Callable[[dict[str, str]], Path]) -> Callable[..., Path]:
    """A project with C services: name -> (main.c text, recipe extra)."""

    def make(services: dict[str, str], *, slow: bool = False, smoke: dict[str, str] | None = None) -> Path:
        files: dict[str, str] = {}
        for name, source in services.items():
            files[f"sources/{name}/main.c"] = source
            if slow:
                files[f"sources/{name}/slow"] = ""
            files[f"recipes/{name}.toml"] = _c_service(
                name, slow_build=slow, smoke=(smoke or {}).get(name, "")
            )
        return make_project(files)

    return make


# --- signals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("stage", ["build", "smoke"])
def test_an_interrupt_rewrites_the_report_and_removes_the_containers(
    docker_client: Any, c_project: Callable[..., Path], tmp_path: Path, signum: int, stage: str
) -> None:
    """Ctrl-C or SIGTERM during a build or a smoke test: exit 130, report.json says which target was
    interrupted (not the previous run's "passed"), and no container of the run is left."""
    smoke = {"sleepy": '[smoke]\nstdout = "late\\n"\ntimeout = "2m"\n'}
    project = c_project({"quick": HELLO_C, "sleepy": SLEEPY_C}, smoke=smoke)
    out = tmp_path / "out"
    first = run_osless(project, "build", out=out)  # a previous run whose report says "passed"
    assert first.returncode == 0 or stage == "smoke", first.stdout + first.stderr
    (project / "sources" / "sleepy" / "main.c").write_text(SLEEPY_C.replace("late", "later"))
    if stage == "build":
        recipe = project / "recipes" / "sleepy.toml"
        recipe.write_text(_c_service("sleepy", slow_build=True, smoke=smoke["sleepy"]))
        (project / "sources" / "sleepy" / "slow").write_text("")
    run = Osless(project, "build", "--jobs", "2", "--out", str(out))
    try:
        run.wait_for("sleepy linux/amd64: smoke" if stage == "smoke" else "sleepy linux/amd64: build")
        time.sleep(2)
        run.process.send_signal(signum)
        code = run.finish(timeout=300)
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert code == 130, run.output()
    assert _error_lines(run.output()) == ["osless: interrupted; this run's containers were removed"], (
        run.output()
    )
    assert _containers_of(docker_client, run.process.pid) == []
    targets = {t["service"]: t for t in _report(out)["targets"]}
    assert targets["sleepy"]["status"] == "cancelled" and targets["sleepy"]["reason"] == "interrupted"
    assert targets["sleepy"]["failed_stage"] == stage
    assert targets["quick"]["status"] == "passed"
    assert not (out / "sleepy" / "linux-amd64" / "result.json").exists()


# --- out/ -----------------------------------------------------------------------------------------


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """tmpfs mounts (options given) under tmp_path, unmounted afterwards whatever happens."""
    mounts: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mount{len(mounts)}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "--lazy", str(point)], check=False)


def test_a_read_only_out_is_a_usage_error(
    docker_client: Any, c_project: Callable[..., Path], mounted: Callable[[str], Path]
) -> None:
    project = c_project({"hello": HELLO_C})
    out = mounted("ro,size=1m")
    run = run_osless(project, "build", out=out)
    assert run.returncode == 2, run.stdout + run.stderr
    (line,) = _error_lines(run.stdout + run.stderr)
    assert f"the output directory {out} cannot be used: Read-only file system" in line


def test_a_full_disk_during_the_layout_write_fails_the_service_cleanly(
    docker_client: Any, c_project: Callable[..., Path], mounted: Callable[[str], Path]
) -> None:
    """The disk fills while the target is smoke-tested: its layout cannot be written. One reason naming
    the file, exit 6, no index.json, no result.json saying passed, and a report.json that says so."""
    smoke = {"hello": '[smoke]\nargs = []\ntimeout = "1m"\n'}
    project = c_project({"hello": SLEEPY_C.replace("sleep(40)", "sleep(4)")}, smoke=smoke)
    out = mounted("size=64m")
    run = Osless(project, "build", "--out", str(out))
    filler = out / "filler"
    try:
        run.wait_for("hello linux/amd64: smoke")
        free = os.statvfs(out)
        room = free.f_bavail * free.f_frsize - 128 * 1024  # report.json fits; the layout's blobs do not
        with filler.open("wb") as stream:
            stream.write(b"\0" * max(0, room))
        code = run.finish(timeout=300)
    finally:
        if run.process.poll() is None:
            run.process.kill()
    text = run.output()
    assert code == 6, text
    assert "No space left on device" in text and str(out / "hello" / "oci") in text, text
    assert not (out / "hello" / "oci" / "index.json").exists()
    assert not (out / "hello" / "linux-amd64" / "result.json").exists()
    (target,) = _report(out)["targets"]
    assert (target["status"], target["failed_stage"]) == ("failed", "package"), target
    assert "No space left on device" in target["reason"]
    assert not [p.name for p in out.rglob("*.partial")], "temporary files were removed"


def test_a_second_run_on_the_same_out_is_refused_naming_the_first(
    docker_client: Any, c_project: Callable[..., Path], tmp_path: Path
) -> None:
    project = c_project({"hello": HELLO_C}, slow=True)
    out = tmp_path / "out"
    first = Osless(project, "build", "--out", str(out))
    try:
        first.wait_for("hello linux/amd64: build")
        second = run_osless(project, "build", out=out, timeout=60)
        first.process.send_signal(signal.SIGTERM)
        assert first.finish(timeout=300) == 130, first.output()
    finally:
        if first.process.poll() is None:
            first.process.kill()
    assert second.returncode == 2, second.stdout + second.stderr
    (line,) = _error_lines(second.stdout + second.stderr)
    assert f"{out} is in use by another osless run (pid {first.process.pid}, started" in line


def test_the_containers_of_a_killed_run_are_removed_by_the_next_run(
    docker_client: Any, c_project: Callable[..., Path], tmp_path: Path
) -> None:
    """osless killed with SIGKILL mid-build cannot clean up: its builder stays in the engine, and the
    next run on this host removes it by its owner label (a dead pid), saying so."""
    project = c_project({"hello": HELLO_C}, slow=True)
    out = tmp_path / "out"
    killed = Osless(project, "build", "--out", str(out))
    try:
        killed.wait_for("hello linux/amd64: build")
        left = _wait_for_containers_of(docker_client, killed.process.pid)
        assert left, "the build runs in a builder container labelled with its osless pid"
    finally:
        killed.process.kill()
        killed.finish(timeout=60)
    assert _containers_of(docker_client, killed.process.pid) == left, "SIGKILL leaves them behind"
    (project / "sources" / "hello" / "slow").unlink()
    after = run_osless(project, "build", out=out)
    assert after.returncode == 0, after.stdout + after.stderr
    assert _containers_of(docker_client, killed.process.pid) == []
    assert "removed" in after.stdout and left[0] in after.stdout, after.stdout


# --- the cache ------------------------------------------------------------------------------------


def test_a_corrupted_or_substituted_cached_image_is_detected_and_rebuilt(
    docker_client: Any, c_project: Callable[..., Path], tmp_path: Path
) -> None:
    project = c_project({"alpha": HELLO_C, "beta": HELLO_C.replace("faults", "beta")})
    out = tmp_path / "out"
    first = run_osless(project, "build", out=out)
    assert first.returncode == 0, first.stdout + first.stderr
    alpha = out / "alpha" / "linux-amd64" / "image.tar"
    alpha_digest = first.target("alpha", "linux/amd64")["image"]["manifest_digest"]

    alpha.write_bytes(alpha.read_bytes()[:1000])  # truncated (a tarfile.ReadError crash before)
    again = run_osless(project, "build", out=out)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "alpha linux/amd64: cached result invalid: image.tar is unreadable" in again.stdout
    assert again.target("alpha", "linux/amd64")["cached"] is False
    assert again.target("beta", "linux/amd64")["cached"] is True

    shutil.copyfile(out / "beta" / "linux-amd64" / "image.tar", alpha)  # another service's image
    third = run_osless(project, "build", out=out)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "alpha linux/amd64: cached result invalid: image.tar does not match result.json" in third.stdout
    assert third.target("alpha", "linux/amd64")["cached"] is False  # "passed (cached)" before
    index = json.loads((out / "alpha" / "oci" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [alpha_digest]
    assert third.target("alpha", "linux/amd64")["image"]["manifest_digest"] == alpha_digest


# --- a killed engine ------------------------------------------------------------------------------


def test_an_engine_killed_mid_build_ends_in_one_line(
    docker_client: Any, second_engine: SecondEngine, c_project: Callable[..., Path], tmp_path: Path
) -> None:
    project = c_project({"hello": HELLO_C}, slow=True)
    toolchain = next(tag for image in docker_client.images.list("osless-toolchain/gcc") for tag in image.tags)
    client = second_engine.start()
    client.api.load_image(docker_client.api.get_image(toolchain))  # no bootstrap on the second engine
    client.close()
    env = {"DOCKER_HOST": second_engine.host}
    out = tmp_path / "out"

    run = Osless(project, "build", "--out", str(out), env=env)
    try:
        run.wait_for("hello linux/amd64: build")
        time.sleep(3)
        second_engine.kill()
        code = run.finish(timeout=300)
    finally:
        if run.process.poll() is None:
            run.process.kill()
    text = run.output()
    assert code not in (0, 1), text
    assert len(_error_lines(text)) == 1, text

"""Containment and limits, for real: what a build command and a smoke test can see and do.

Each test builds small C services (linux/amd64, the gcc toolchain) whose build commands or programs
try what a hostile recipe would: write outside their target, look at their privileges and limits,
fork without end, print hundreds of MB. The builds run in the real engine with the real toolchain.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import docker.types
import pytest

from orchestrator.engine import (
    OWNER_HOST_LABEL,
    OWNER_PID_LABEL,
    OWNER_START_LABEL,
    PROJECT_LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    Owner,
    project_label,
)
from tests.conftest import REPO_ROOT
from tests.factories import service_recipe
from tests.integration.conftest import OslessRun, run_osless

pytestmark = pytest.mark.integration

AMD64 = "linux/amd64"
SLUG = "linux-amd64"
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
COMPILE = 'exec "$0" -static -Os -s -o "$1" main.c'  # the end of every `sh -c` build script


def _recipe(name: str, command: str, extra: str = "") -> str:
    """A C service for linux/amd64 whose build is `sh -c SCRIPT {CC} {output}` (SCRIPT: no braces)."""
    assert "{" not in command  # the recipe's placeholders
    return service_recipe(name, ["sh", "-c", command, "{CC}", "{output}"], platforms=[AMD64], more=extra)


@pytest.fixture
def engine_state(docker_client: Any) -> Iterator[list[Path]]:
    """The projects a test registers here lose their volumes afterwards (by the `osless.project`
    label); no container outlives the test."""
    projects: list[Path] = []
    before = {c.id for c in docker_client.containers.list(all=True)}
    yield projects
    for root in projects:
        for volume in docker_client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project_label(root)}"}):
            volume.remove(force=True)
    # None is new (a run may remove those that dead osless processes left: see the last tests).
    new = {c.name for c in docker_client.containers.list(all=True) if c.id not in before}
    assert not new, f"containers left behind: {new}"


@pytest.fixture
def project(make_project: Callable[[dict[str, str]], Path], engine_state: list[Path]) -> Callable[..., Path]:
    """A project of C services: name -> (main.c, recipe text)."""

    def make(services: dict[str, tuple[str, str]]) -> Path:
        files: dict[str, str] = {}
        for name, (source, recipe) in services.items():
            files[f"sources/{name}/main.c"] = source
            files[f"recipes/{name}.toml"] = recipe
        root = make_project(files)
        engine_state.append(root)
        return root

    return make


def _build(root: Path, out: Path, *services: str) -> OslessRun:
    return run_osless(root, "build", *services, "--platform", AMD64, out=out, timeout=900)


def _log(run: OslessRun, service: str) -> str:
    return (run.out / service / SLUG / "build.log").read_text(errors="replace")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("key", ["mirror", "suite"])
def test_a_toolchain_recipe_cannot_run_a_host_command(
    docker_client: Any, make_project: Callable[[dict[str, str]], Path], tmp_path: Path, key: str
) -> None:
    """A hook-shaped bootstrap value, with a real engine answering: `osless build` refuses the recipe
    (exit 3) and mmdebstrap never runs the hook (its proof file never appears)."""
    proof = tmp_path / "proof"
    hook = f"--setup-hook=touch {proof}; exit 1"
    values = {"suite": "trixie", "mirror": "http://deb.debian.org/debian", key: hook}
    root = make_project(
        {
            "recipes/toolchains/evil.toml": '[toolchain]\nname = "evil"\n[toolchain.bootstrap]\n'
            f"suite = {json.dumps(values['suite'])}\nmirror = {json.dumps(values['mirror'])}\n"
            'packages = ["gcc"]\n[toolchain.platforms."linux/amd64"]\n',
            "recipes/evil.toml": service_recipe("evil", ["true"], toolchain="evil"),
            "sources/evil/main.c": "",
        }
    )
    run = run_osless(root, "build", out=tmp_path / "out", timeout=600)
    assert run.returncode == 3, run.stdout + run.stderr
    assert f"toolchain.bootstrap.{key}" in run.stderr
    assert not proof.exists()


def test_a_build_cannot_write_another_services_output_the_project_or_its_root(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    """The attacker's build command writes wherever it can: the victim's image.tar, binary and source,
    its own source, the root filesystem. None of it lands; the victim's files stay what they were."""
    targets = [
        f"/osless-out/victim/{SLUG}/image.tar",
        f"/osless-out/victim/{SLUG}/bin/victim",
        f"/osless-out/victim/{SLUG}/result.json",
        "/project/sources/victim/main.c",
        "/project/sources/attacker/main.c",
        "/project/recipes/victim.toml",
        "/etc/osless-proof",
        "/osless-proof",
    ]
    attack = (
        f"for f in {' '.join(targets)}; do echo pwned > $f && echo WROTE $f; done; "
        f"mkdir -p /osless-out/victim/{SLUG}/bin && echo pwned > /osless-out/victim/{SLUG}/image.tar "
        "&& echo WROTE-SCRATCH; ls /project; " + COMPILE
    )
    root = project(
        {"victim": (HELLO_C, _recipe("victim", COMPILE)), "attacker": (HELLO_C, _recipe("attacker", attack))}
    )
    out = tmp_path / "out"
    first = _build(root, out, "victim")
    assert first.returncode == 0, first.stdout + first.stderr
    victim = out / "victim" / SLUG
    before = {
        path: _sha256(path)
        for path in (victim / "image.tar", victim / "bin" / "victim", victim / "result.json")
    }
    sources = {path: _sha256(path) for path in root.rglob("*") if path.is_file()}

    second = _build(root, out, "attacker")

    assert second.returncode == 0, second.stdout + second.stderr
    log = _log(second, "attacker")
    assert "WROTE /" not in log, log
    assert "WROTE-SCRATCH" in log  # its own scratch directory: harmless, never copied anywhere
    assert log.count("Read-only file system") >= 3, log
    assert {path: _sha256(path) for path in before} == before
    assert {path: _sha256(path) for path in sources} == sources
    assert not Path("/osless-proof").exists()
    third = _build(root, out, "victim")  # the victim's cached result is still valid
    assert third.returncode == 0 and third.target("victim", AMD64)["status"] == "passed"


def test_the_builder_is_unprivileged_and_gets_the_recipes_limits(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    """The build command itself reports its uid, capabilities, no-new-privileges, root filesystem and
    cgroup limits (the recipe's [build] limits) into build.log."""
    probe = (
        "echo uid=$(id -u) gid=$(id -g); grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status; "
        "touch /usr/osless-proof 2>&1; touch /tmp/ok && echo tmp-writable; "
        "echo memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); "
        "echo pids=$(cat /sys/fs/cgroup/pids/pids.max); "
        "echo cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)/$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); "
        + COMPILE
    )
    limits = 'limits = { memory = "768MiB", pids = 300, cpus = 1.5 }\n'
    root = project({"probe": (HELLO_C, _recipe("probe", probe, limits))})
    run = _build(root, tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    fields = dict(line.split(":", 1) for line in _log(run, "probe").splitlines() if line.startswith("Cap"))
    log = _log(run, "probe")
    assert "uid=65532 gid=65532" in log, log
    assert {key: value.strip() for key, value in fields.items()} == {
        "CapEff": "0000000000000000",
        "CapPrm": "0000000000000000",
        "CapBnd": "0000000000000000",
    }, log
    assert "NoNewPrivs:\t1" in log, log
    assert "Read-only file system" in log and "tmp-writable" in log, log
    assert f"memory={768 * 2**20}" in log and "pids=300" in log, log
    assert "cpu=150000/100000" in log, log


LIMITS_C = r"""#include <stdio.h>
#include <string.h>
static void show(const char *path, const char *prefix) {
    char line[256];
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s?\n", prefix); return; }
    while (fgets(line, sizeof line, f))
        if (!prefix[0] || !strncmp(line, prefix, strlen(prefix))) fputs(line, stdout);
    fclose(f);
}
int main(void) {
    show("/sys/fs/cgroup/memory/memory.limit_in_bytes", "");
    show("/sys/fs/cgroup/pids/pids.max", "");
    show("/proc/self/status", "CapEff");
    show("/proc/self/status", "NoNewPrivs");
    return 0;
}
"""


def test_smoke_limits_reach_the_container(project: Callable[..., Path], tmp_path: Path) -> None:
    smoke = (
        '[smoke]\nstdout = "104857600\\n40\\nCapEff:\\t0000000000000000\\nNoNewPrivs:\\t1\\n"\n'
        '[smoke.limits]\nmemory = "100MiB"\npids = 40\n'
    )
    root = project({"limited": (LIMITS_C, _recipe("limited", COMPILE, smoke))})
    run = _build(root, tmp_path / "out")
    target = run.target("limited", AMD64)
    assert run.returncode == 0, (target, run.stdout + run.stderr)


def test_a_fork_bomb_in_a_build_is_stopped_by_the_pids_limit(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    """2000 background processes, started one after the other: the builder's pids limit (64 here) stops
    the shell's forks, the build fails quickly (not by its timeout), and the other service of the same
    run builds as if nothing happened. (Bounded to 2000, so that an unlimited builder cannot hurt.)"""
    bomb = "i=0; while [ $i -lt 2000 ]; do sleep 120 & i=$((i+1)); done; echo started $i; " + COMPILE
    limits = 'timeout = "5m"\nlimits = { pids = 64 }\n'
    root = project(
        {"bomb": (HELLO_C, _recipe("bomb", bomb, limits)), "fine": (HELLO_C, _recipe("fine", COMPILE))}
    )
    run = _build(root, tmp_path / "out")
    assert run.returncode != 0
    bombed = run.target("bomb", AMD64)
    assert bombed["status"] == "failed" and bombed["failed_stage"] == "build", bombed
    assert "timed out" not in bombed["reason"], bombed
    log = _log(run, "bomb")
    assert "started 2000" not in log, log
    assert "fork" in log.lower() or "resource temporarily unavailable" in log.lower(), log
    assert bombed["seconds"]["build"] < 120, bombed
    assert run.target("fine", AMD64)["status"] == "passed"
    assert "Traceback" not in run.stdout + run.stderr


def test_a_build_eating_memory_is_killed_at_the_memory_limit(
    project: Callable[..., Path], tmp_path: Path
) -> None:
    """`tail` of 1 GiB without a newline holds it all in memory: at a 64 MiB limit the kernel kills it
    inside the builder, the build fails (not by its timeout) and the run goes on."""
    hog = "head -c 1G /dev/zero | tail -n 1 > /dev/null || exit 77; " + COMPILE
    limits = 'timeout = "5m"\nlimits = { memory = "64MiB" }\n'
    root = project(
        {"hog": (HELLO_C, _recipe("hog", hog, limits)), "fine": (HELLO_C, _recipe("fine", COMPILE))}
    )
    run = _build(root, tmp_path / "out")
    hogged = run.target("hog", AMD64)
    assert hogged["status"] == "failed" and hogged["failed_stage"] == "build", hogged
    assert "exited with 77" in hogged["reason"] and "timed out" not in hogged["reason"], hogged
    assert run.target("fine", AMD64)["status"] == "passed"
    assert "Traceback" not in run.stdout + run.stderr


FLOOD_C = r"""#include <stdio.h>
#include <string.h>
int main(void) {
    static char block[1 << 16];
    memset(block, 'y', sizeof block);
    for (int i = 0; i < 4800; i++)  /* 300 MiB */
        fwrite(block, 1, sizeof block, stdout);
    fputs("bye\n", stderr);
    return 0;
}
"""


def test_a_smoke_test_printing_300_mb_keeps_one_mib(project: Callable[..., Path], tmp_path: Path) -> None:
    """Output past 1 MiB is dropped and the result says so; report.json, junit.xml and result.json stay
    small, and so does osless (its peak memory, measured by a parent that only waits for it)."""
    root = project({"flood": (FLOOD_C, _recipe("flood", COMPILE, '[smoke]\ntimeout = "2m"\n'))})
    out = tmp_path / "out"
    waiter = (
        "import resource, subprocess, sys\n"
        "quiet = {'stdout': subprocess.DEVNULL, 'stderr': subprocess.DEVNULL}\n"
        "code = subprocess.run(sys.argv[1:], **quiet).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    osless = [sys.executable, "-m", "orchestrator", "-C", str(root), "build", "--platform", AMD64]
    measured = subprocess.run(
        [sys.executable, "-c", waiter, *osless, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=900,
        check=True,
    )
    code, max_rss_kib = (int(field) for field in measured.stdout.split())
    report = json.loads((out / "report.json").read_text())
    (target,) = report["targets"]
    assert code == 0 and target["status"] == "passed", target.get("reason")
    stdout = target["smoke"]["stdout"]
    assert stdout.startswith("y" * 1000) and stdout.endswith("[osless: output truncated after 1 MiB]\n")
    assert len(stdout) < 2**20 + 100
    assert target["smoke"]["stderr"] == "bye\n"
    for written in (out / "report.json", out / "junit.xml", out / "flood" / SLUG / "result.json"):
        assert written.stat().st_size < 4 * 2**20, written
    assert max_rss_kib * 1024 < 250 * 2**20, f"osless peaked at {max_rss_kib} KiB"


def test_two_projects_have_their_own_compiler_cache_volumes(
    project: Callable[..., Path], engine_state: list[Path], docker_client: Any, tmp_path: Path
) -> None:
    first = project({"hello": (HELLO_C, _recipe("hello", COMPILE))})
    second = tmp_path / "second"
    shutil.copytree(first, second)
    engine_state.append(second)
    for root in (first, second):
        run = _build(root, tmp_path / f"out-{root.name}")
        assert run.returncode == 0, run.stdout + run.stderr
    volumes = {
        root: {
            v.name
            for v in docker_client.volumes.list(
                filters={"label": [f"{PROJECT_LABEL}={project_label(root)}", f"{ROLE_LABEL}=cache"]}
            )
        }
        for root in (first, second)
    }
    assert len(volumes[first]) == 1 and len(volumes[second]) == 1, volumes  # (and a workspace volume each)
    assert volumes[first].isdisjoint(volumes[second])
    for root, names in volumes.items():
        (name,) = names
        assert name.startswith(f"osless-cache-gcc-{project_label(root)[:12]}-"), name
        volume = docker_client.volumes.get(name)
        assert volume.attrs["Labels"][ROLE_LABEL] == "cache"


def test_a_run_removes_the_containers_of_dead_osless_processes_only(
    project: Callable[..., Path], docker_client: Any, tmp_path: Path
) -> None:
    """Containers labelled by an osless process that is gone are removed at the next run's start (with
    their anonymous volumes); those of a process that still runs (here: this test) are not."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = Owner(host=Owner.current().host, pid=gone.pid, start="1")
    alive = Owner.current()
    image = docker_client.images.list(name="osless-toolchain/gcc")[0].id
    created = {
        owner: docker_client.containers.create(
            image,
            ["true"],
            labels={**owner.labels(), RUN_LABEL: "test", ROLE_LABEL: "builder"},
            mounts=[docker.types.Mount("/scratch", None, type="volume")],
        )
        for owner in (dead, alive)
    }
    try:
        root = project({"hello": (HELLO_C, _recipe("hello", COMPILE))})
        run = _build(root, tmp_path / "out")
        assert run.returncode == 0, run.stdout + run.stderr
        remaining = {
            c.id for c in docker_client.containers.list(all=True, filters={"label": RUN_LABEL + "=test"})
        }
        assert remaining == {created[alive].id}
    finally:
        for container in created.values():
            with contextlib.suppress(docker.errors.NotFound):  # removed by osless: that is the point
                container.remove(v=True, force=True)


def test_owner_labels_name_this_host_process_and_its_start(docker_client: Any) -> None:
    labels = Owner.current().labels()
    assert labels[OWNER_HOST_LABEL] and labels[OWNER_PID_LABEL] == str(os.getpid())
    assert labels[OWNER_START_LABEL].isdigit()

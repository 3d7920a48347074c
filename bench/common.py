"""What every group of the bench shares: processes with time bounds, `osless build` measured from
outside (wall clock, peak memory, its report), and the docker objects of one bench run: every one is
labelled with the run's own label and removed by it, so the bench never touches what it did not make
(the toolchain images and other projects' volumes above all)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.figures import OslessRun, profile_of, results_of
from orchestrator.engine import PROJECT_LABEL, project_label

REPO_ROOT = Path(__file__).resolve().parent.parent
LABEL_KEY = "osless-bench"
DOCKER_TIMEOUT = 120.0  # seconds, any docker call but a build
BUILD_TIMEOUT = 1800.0  # seconds, one `docker build` or one build step
OSLESS_TIMEOUT = 3600.0  # seconds, one whole `osless build`
# The classic builder is the one that exists here; saying so keeps the CLI from looking for buildx.
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Run:
    """This bench run: its temporary directory (a workspace per group), its label, its parallelism."""

    root: Path
    run_id: str  # the label's value: this run's objects, not another bench's
    jobs: int

    @property
    def label(self) -> str:
        return f"{LABEL_KEY}={self.run_id}"

    def project_labels(self) -> list[str]:
        """osless's label on the volumes it makes for the bench's projects (caches, workspaces)."""
        return [
            f"{PROJECT_LABEL}={project_label(path)}" for path in sorted(self.root.iterdir()) if path.is_dir()
        ]


# --- Processes ---


def capture(
    argv: Sequence[str], *, timeout: float = DOCKER_TIMEOUT, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        list(argv), input=stdin, capture_output=True, timeout=timeout, env=DOCKER_ENV, check=False
    )


def run(argv: Sequence[str], *, timeout: float = DOCKER_TIMEOUT, check: bool = True) -> str:
    """Run a command with a time bound; its stdout, or an error carrying its stderr."""
    result = capture(argv, timeout=timeout)
    if check and result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()[-800:]
        raise RuntimeError(f"{' '.join(argv[:4])} … exited {result.returncode}: {stderr}")
    return result.stdout.decode(errors="replace")


def docker(*args: str, timeout: float = DOCKER_TIMEOUT, check: bool = True) -> str:
    return run(["docker", *args], timeout=timeout, check=check)


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def in_parallel(jobs: int, work: Callable[[T], object], items: Iterable[T]) -> None:
    """`jobs` items at a time, as `osless build --jobs J` works on targets; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(work, items):
            pass


# --- osless ---


def run_osless(
    bench: Run,
    workspace: Path,
    log: str,
    *options: str,
    env: dict[str, str] | None = None,
) -> OslessRun:
    """`osless build --jobs J` on a workspace (its out/ inside it), its output in a log beside it:
    the wall clock, the process's peak RSS as the kernel counted it, and its report's figures."""
    out = workspace / "out"
    argv = [sys.executable, "-m", "orchestrator", "-C", str(workspace), "build"]
    argv += ["--jobs", str(bench.jobs), "--out", str(out), *options]
    log_path = bench.root / f"osless-{log}.log"
    with log_path.open("w") as stream:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=stream, stderr=subprocess.STDOUT, env=env)
        timer = threading.Timer(OSLESS_TIMEOUT, lambda: process.send_signal(signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage: its peak RSS
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    process.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if code != 0:
        raise RuntimeError(f"osless build exited {code} (log {log_path}): {log_path.read_text()[-1500:]}")
    report = json.loads((out / "report.json").read_text())
    print(f"  osless ({log}): {seconds:.1f} s", flush=True)
    return OslessRun(
        seconds=seconds,
        peak_rss_bytes=usage.ru_maxrss * 1024,  # Linux counts it in KiB
        results=results_of(report),
        profile=profile_of(report),
    )


def remove_project_volumes(workspace: Path, patience: float = 300.0) -> None:
    """osless's volumes of one bench project (compiler caches, kept workspaces): a cold start. A builder
    of a run that just ended may hold one for a moment."""
    selector = f"label={PROJECT_LABEL}={project_label(workspace)}"
    deadline = time.monotonic() + patience
    while names := docker("volume", "ls", "--quiet", "--filter", selector).split():
        for name in names:
            docker("volume", "rm", name, check=False)
        if time.monotonic() > deadline:
            raise RuntimeError(f"volumes {', '.join(names)} stay in use: a cold run is impossible now")
        time.sleep(1)


def toolchains_missing(images: Iterable[str]) -> list[str]:
    return sorted(image for image in set(images) if not docker("images", "--quiet", image).strip())


def read_from_disk(images: Iterable[str]) -> None:
    """Start each toolchain image once, outside any measurement: its layers are read from disk now."""
    for image in sorted(set(images)):
        docker("run", "--rm", "--network", "none", "--entrypoint", "true", image)


# --- Cleaning up ---


def remove_everything(bench: Run) -> None:
    """Every docker object this run made: its containers (with their anonymous volumes), its images
    (the baselines' and those osless loaded for the bench's recipes) and osless's volumes of its
    projects. Never raises: cleaning up must not hide the error that ended the run."""
    selector = f"label={bench.label}"
    try:
        containers = docker("ps", "--all", "--quiet", "--filter", selector, check=False).split()
        if containers:
            docker("rm", "--force", "--volumes", *containers, check=False)
        images = docker("images", "--quiet", "--filter", selector, check=False).split()
        if images:  # their intermediate layers go with them
            docker("rmi", "--force", *sorted(set(images)), check=False)
        docker("image", "prune", "--force", "--filter", selector, check=False)
        for label in [bench.label, *bench.project_labels()]:
            volumes = docker("volume", "ls", "--quiet", "--filter", f"label={label}", check=False).split()
            if volumes:
                docker("volume", "rm", *volumes, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        print(
            f"cleaning up failed ({error}): look for docker objects labelled {bench.label}", file=sys.stderr
        )

"""Benchmark: osless against the Dockerfiles teams write instead, and against the bare compile commands.

Prints wall-clock seconds (it is not a test) for the scenarios measured in one run, on the same engine
and toolchain images: cold, no change, one service changed; and the shared cache: a fresh clone on a
second, empty engine building with --cache-from what the cold run uploaded (--cache-to) to a registry.
It generates N synthetic services (half Go, half C) in a temporary workspace whose toolchain recipes are
copies of this project's, so the toolchain images already in the engine are reused, not bootstrapped.

- osless: `osless build --jobs J` (cold: its cache volumes, Go's above all, removed and out/ emptied).
- baseline: per (service, platform), what works with Docker 20.10's classic builder (no BuildKit): the
  toolchain stage with `docker build`, `docker create` + `docker cp` the binary out, `docker build
  --platform P` of a FROM scratch + COPY context, one `docker run` checking stdout; J targets at a time.
- lower bound: the recipes' compile commands alone, `docker exec`'d into one warm container per toolchain
  (Go cache fresh at the start), plus one `docker run` of each image osless built.
- remote cache: the cold run uploads every result to a registry on loopback (Debian's docker-registry);
  a copy of the workspace (recipes and sources, no out/) is built by a second dockerd whose only images
  are the toolchains and the Debian slim base of the size comparison (copied in before the clock
  starts, as a runner pulls or bootstraps the same reproducible images), with `--cache-from` and
  `--trust-cache-smoke`; its ratio is over the cold run, and every target must have come from the
  cache with the same index digests as the cold run's.

Run it with `nox -s bench -- --services 4`, or `python -m bench.benchmark --help` from the project root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from orchestrator.bootstrap.spec import image_reference
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Project
from orchestrator.recipe.placeholders import build_env
from orchestrator.stages.build import BUILD_ENV_DEFAULTS
from orchestrator.stages.toolchain import DEBIAN_SLIM
from tests.daemons import SecondEngine, loopback_registry

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_VOLUME_PREFIX = "osless-cache-"
GO_CACHE_VOLUME = CACHE_VOLUME_PREFIX + "go"
BENCH_LABEL = "osless-bench=1"  # on every baseline image and warm container, so cleanup finds only ours
BENCH_REPOSITORY = "osless-bench"
DOCKER_TIMEOUT = 120.0  # seconds, any docker call but a build
BUILD_TIMEOUT = 900.0  # seconds, one `docker build` or one compile
OSLESS_TIMEOUT = 3600.0  # seconds, one whole `osless build`
# The classic builder is the one that exists here; saying so keeps the CLI from looking for buildx.
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}

GO_SOURCE = """\
// Command {name} is a synthetic osless benchmark service.
package main

import (
\t"fmt"
\t"strconv"
\t"strings"
)

const (
\tid     = {number}
\tstatus = "ok"
)

func name() string {{
\tdigits := strconv.Itoa(id)
\treturn "svc" + strings.Repeat("0", max(0, {width}-len(digits))) + digits
}}

func main() {{
\tfmt.Println(strings.Join(strings.Fields(name()+" "+status), " "))
}}
"""
C_SOURCE = """\
/* {name} is a synthetic osless benchmark service, linked statically against glibc. */
#include <stdio.h>
#include <string.h>

static const int id = {number};
static const char status[] = "ok";

int main(void) {{
    char name[32];
    snprintf(name, sizeof name, "svc%0{width}d", id);
    printf("%s %s\\n", name, status);
    return strlen(name) > 3 ? 0 : 1;
}}
"""
RECIPE = """\
[service]
name = "{name}"
source = "sources/{name}"
toolchain = "{toolchain}"
platforms = {platforms}

[build]
command = {command}

[smoke]
stdout = "{name} ok\\n"
timeout = "30s"
"""
GO_COMMAND = [
    "go",
    "build",
    "-trimpath",
    "-buildvcs=false",
    "-ldflags=-s -w -buildid=",
    "-o",
    "{output}",
    ".",
]
C_COMMAND = ["{CC}", "-static", "-Os", "-s", "-Wall", "-Werror", "-o", "{output}", "main.c"]


@dataclass(frozen=True)
class Target:
    """One (service, platform) with everything both the baseline and the lower bound need to compile it."""

    service: str
    platform: str
    arch: str  # tag suffix, e.g. "arm64"
    toolchain: str
    toolchain_image: str
    source: Path
    output: str
    env: dict[str, str]
    command: tuple[str, ...]  # the recipe's, placeholders not yet filled
    stdout: str

    @property
    def osless_image(self) -> str:
        return f"{self.service}:latest-{self.arch}"

    def compile_step(self, output_dir: str) -> list[str]:
        """The compile command writing into output_dir: the one construction both measurements share."""
        facts = PLATFORMS[self.platform].placeholders()
        values = {**facts, **self.env, "output": f"{output_dir}/{self.output}"}
        return [string.Formatter().vformat(argument, (), values) for argument in self.command]


@dataclass(frozen=True)
class Row:
    """One scenario's figures in seconds; lower_bound None means no work is needed at all."""

    scenario: str
    osless: float
    baseline: float
    lower_bound: float | None

    def ratios(self) -> dict[str, float | None]:
        return {
            "osless_over_baseline": self.osless / self.baseline,
            "osless_over_lower_bound": self.osless / self.lower_bound if self.lower_bound else None,
        }


@dataclass
class Bench:
    """The workspace and settings shared by every measurement."""

    workspace: Path
    jobs: int
    targets: list[Target]
    warm: dict[str, str]  # toolchain name -> warm container name (lower bound)

    cache: str  # the registry repository the cold run uploads to, the remote run downloads from

    @property
    def out(self) -> Path:
        return self.workspace / "out"

    def reload(self) -> None:
        """Read the (possibly edited) recipes again, so expected stdout follows the change."""
        self.targets = targets_of(load_project(self.workspace))


# --- Subprocesses ---


def run(
    argv: Sequence[str],
    *,
    timeout: float = DOCKER_TIMEOUT,
    check: bool = True,
    stdin: IO[bytes] | None = None,
) -> str:
    """Run a command with a time bound; its stdout, or an error carrying its stderr."""
    result = subprocess.run(
        list(argv), stdin=stdin, capture_output=True, timeout=timeout, env=DOCKER_ENV, check=False
    )
    stdout, stderr = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} … exited {result.returncode}: {stderr.strip()[-800:]}")
    return stdout


def docker(*args: str, timeout: float = DOCKER_TIMEOUT, check: bool = True) -> str:
    return run(["docker", *args], timeout=timeout, check=check)


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def in_parallel(jobs: int, work: Callable[[Target], None], targets: Iterable[Target]) -> None:
    """J targets at a time, as `osless build --jobs J` does; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(work, targets):
            pass


def run_image(image: str, target: Target) -> None:
    """The smoke test both the baseline and the lower bound pay: one run, stdout compared."""
    stdout = docker("run", "--rm", "--network", "none", "--platform", target.platform, image)
    if stdout != target.stdout:
        raise RuntimeError(f"{image}: printed {stdout!r}, expected {target.stdout!r}")


# --- Workspace ---


def generate(workspace: Path, count: int, platforms: list[str]) -> None:
    """Toolchain recipes copied unchanged (so their images are reused) and `count` small services."""
    (workspace / "recipes" / "toolchains").mkdir(parents=True)
    for toolchain in (REPO_ROOT / "recipes" / "toolchains").glob("*.toml"):
        shutil.copy(toolchain, workspace / "recipes" / "toolchains" / toolchain.name)
    width = max(2, len(str(count)))
    go_count = (count + 1) // 2
    for number in range(1, count + 1):
        name = f"svc{number:0{width}d}"
        is_go = number <= go_count
        source = workspace / "sources" / name
        source.mkdir(parents=True)
        template = GO_SOURCE if is_go else C_SOURCE
        text = template.format(name=name, number=number, width=width)
        if is_go:
            (source / "go.mod").write_text(f"module example.com/{name}\n\ngo 1.22\n")
        (source / ("main.go" if is_go else "main.c")).write_text(text)
        (workspace / "recipes" / f"{name}.toml").write_text(
            RECIPE.format(
                name=name,
                toolchain="go" if is_go else "gcc",
                platforms=json.dumps(platforms),
                command=json.dumps(GO_COMMAND if is_go else C_COMMAND),
            )
        )


def targets_of(project: Project) -> list[Target]:
    """Every (service, platform) with the env and command osless itself would use."""
    targets = []
    for service in project.services.values():
        toolchain = project.toolchains[service.toolchain]
        for platform in service.platforms:
            targets.append(
                Target(
                    service=service.name,
                    platform=platform,
                    arch=PLATFORMS[platform].tag_suffix,
                    toolchain=toolchain.name,
                    toolchain_image=toolchain.image or image_reference(toolchain),
                    source=service.source,
                    output=service.build.output,
                    env={**BUILD_ENV_DEFAULTS, **build_env(toolchain, platform, service.build.env)},
                    command=service.build.command,
                    stdout=service.smoke.checks[0].expect.stdout or "",
                )
            )
    return targets


def change_one_service(bench: Bench) -> str:
    """Change the first service's printed text in its source and its recipe, so its binary changes."""
    name = bench.targets[0].service
    source = next(
        path for path in (bench.workspace / "sources" / name).iterdir() if path.suffix in (".go", ".c")
    )
    recipe = bench.workspace / "recipes" / f"{name}.toml"
    source.write_text(source.read_text().replace('status = "ok"', 'status = "ok again"'))
    source.write_text(source.read_text().replace('status[] = "ok"', 'status[] = "ok again"'))
    recipe.write_text(recipe.read_text().replace(f'"{name} ok\\n"', f'"{name} ok again\\n"'))
    bench.reload()
    return name


# --- The three ways of building ---


def run_osless(
    bench: Bench,
    scenario: str,
    *options: str,
    workspace: Path | None = None,
    env: dict[str, str] | None = None,
) -> float:
    """`osless build --jobs J` on the workspace (or a clone of it); its output goes to a log beside."""
    workspace = workspace or bench.workspace
    log = bench.workspace / f"osless-{scenario}.log"
    argv = [sys.executable, "-m", "orchestrator", "-C", str(workspace), "build"]
    argv += ["--jobs", str(bench.jobs), "--out", str(workspace / "out"), *options]
    with log.open("w") as stream:
        started = time.perf_counter()
        code = subprocess.run(
            argv, stdout=stream, stderr=subprocess.STDOUT, timeout=OSLESS_TIMEOUT, check=False, env=env
        ).returncode
        seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"osless build exited {code}: {log.read_text()[-1500:]}")
    return seconds


def baseline_target(bench: Bench, target: Target) -> None:
    """Toolchain stage, copy the binary out, FROM scratch image for the platform, run it once."""
    context = bench.workspace / "baseline" / f"{target.service}-{target.arch}"
    (context / "image").mkdir(parents=True, exist_ok=True)
    dockerfile = context / "Dockerfile.build"
    env = " ".join(f"{key}={json.dumps(value)}" for key, value in target.env.items())
    dockerfile.write_text(
        f"FROM {target.toolchain_image}\nLABEL {BENCH_LABEL}\nENV {env}\nWORKDIR /out\nWORKDIR /src\n"
        f"COPY . /src\nRUN {json.dumps(target.compile_step('/out'))}\n"
    )
    (context / "image" / "Dockerfile").write_text(
        # COPY first: the classic builder labels a metadata-only step of FROM scratch with the host's
        # platform, and then refuses to COPY onto it for a foreign --platform.
        f"FROM scratch\nCOPY {target.output} /{target.output}\nUSER 65534:65534\n"
        f'ENTRYPOINT ["/{target.output}"]\nLABEL {BENCH_LABEL}\n'
    )
    stage = f"{BENCH_REPOSITORY}/build-{target.service}:{target.arch}"
    image = f"{BENCH_REPOSITORY}/{target.service}:{target.arch}"
    build = ("build", "--quiet", "--force-rm")
    docker(*build, "-t", stage, "-f", str(dockerfile), str(target.source), timeout=BUILD_TIMEOUT)
    container = docker("create", stage, "true").strip()
    try:
        docker("cp", f"{container}:/out/{target.output}", str(context / "image" / target.output))
    finally:
        docker("rm", "-f", container, check=False)
    docker(*build, "--platform", target.platform, "-t", image, str(context / "image"), timeout=BUILD_TIMEOUT)
    run_image(image, target)


def run_baseline(bench: Bench) -> float:
    return timed(
        lambda: in_parallel(bench.jobs, lambda target: baseline_target(bench, target), bench.targets)
    )


def lower_bound_target(bench: Bench, target: Target) -> None:
    """The bare compile command in the warm container, then one run of the image osless made."""
    env = [f"--env={key}={value}" for key, value in target.env.items()]
    workdir = f"/work/sources/{target.service}"
    argv = target.compile_step(warm_output_dir(target))
    docker("exec", *env, "--workdir", workdir, bench.warm[target.toolchain], *argv, timeout=BUILD_TIMEOUT)
    run_image(target.osless_image, target)


def run_lower_bound(bench: Bench, targets: list[Target]) -> float:
    return timed(lambda: in_parallel(bench.jobs, lambda target: lower_bound_target(bench, target), targets))


def warm_output_dir(target: Target) -> str:
    return f"/tmp/bench-out/{target.service}-{target.arch}"


def start_warm_containers(bench: Bench) -> None:
    """One idle container per toolchain, sources mounted read-only, its Go cache (in /tmp) fresh."""
    for target in bench.targets:
        if target.toolchain in bench.warm:
            docker("exec", bench.warm[target.toolchain], "mkdir", "-p", warm_output_dir(target))
            continue
        name = f"osless-bench-warm-{target.toolchain}-{os.getpid()}"
        docker(
            "run", "--detach", "--rm", "--name", name, "--label", BENCH_LABEL, "--network", "none",
            "--volume", f"{bench.workspace / 'sources'}:/work/sources:ro", "--entrypoint", "sleep",
            target.toolchain_image, "infinity",
        )  # fmt: skip
        bench.warm[target.toolchain] = name
        docker("exec", name, "mkdir", "-p", warm_output_dir(target))


def remove_baseline_images() -> None:
    """Our tagged images (which takes their intermediate layers along), then our dangling ones."""
    images = docker("images", "--quiet", "--filter", f"reference={BENCH_REPOSITORY}/*").split()
    if images:
        docker("rmi", "--force", *sorted(set(images)), check=False)
    docker("image", "prune", "--force", "--filter", f"label={BENCH_LABEL}", check=False)
    docker("builder", "prune", "--all", "--force", check=False)  # BuildKit's cache, if there is one


def remove_cache_volumes(patience: float = 300.0) -> None:
    """osless's compiler cache volumes (Go's above all); another osless run may hold them for a while."""
    deadline = time.monotonic() + patience
    while True:
        names = docker("volume", "ls", "--quiet", "--filter", f"name={CACHE_VOLUME_PREFIX}").split()
        for name in names:
            docker("volume", "rm", name, check=False)
        if GO_CACHE_VOLUME not in docker("volume", "ls", "--quiet").split():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"volume {GO_CACHE_VOLUME} stays in use: a cold run is impossible now")
        print(f"waiting for the containers using {GO_CACHE_VOLUME} to end", flush=True)
        time.sleep(10)


# --- Scenarios ---


def cold(bench: Bench) -> Row:
    """Nothing cached: osless without its Go cache volume and out/, the baseline without its layers."""
    remove_cache_volumes()
    shutil.rmtree(bench.out, ignore_errors=True)
    osless = run_osless(bench, "cold", "--cache-to", bench.cache)
    remove_baseline_images()
    baseline = run_baseline(bench)
    start_warm_containers(bench)
    return Row("cold", osless, baseline, run_lower_bound(bench, bench.targets))


def no_change(bench: Bench) -> Row:
    """The same again: only a cache saves work, and nothing needs doing (lower bound 0)."""
    return Row("no-change", run_osless(bench, "no-change"), run_baseline(bench), None)


def one_change(bench: Bench) -> Row:
    """One service's printed text changed: its targets must be rebuilt, the rest could be reused."""
    name = change_one_service(bench)
    changed = [target for target in bench.targets if target.service == name]
    osless = run_osless(bench, "one-change")
    return Row("one-change", osless, run_baseline(bench), run_lower_bound(bench, changed))


@dataclass(frozen=True)
class Remote:
    """The fresh clone's run against the cold run it downloads from."""

    seconds: float
    cold: float
    targets_from_cache: int

    def as_json(self) -> dict[str, float | int]:
        return {**asdict(self), "remote_over_cold": self.seconds / self.cold, "goal": REMOTE_GOAL}


REMOTE_GOAL = 0.25  # the issue's: a runner with the same inputs downloads instead of compiling


def remote_cache(bench: Bench, cold_seconds: float) -> Remote:
    """A fresh clone of the workspace on a second, empty engine, building with --cache-from."""
    clone = bench.workspace / "clone"
    for part in ("recipes", "sources"):
        shutil.copytree(bench.workspace / part, clone / part, symlinks=True)
    engine = SecondEngine()
    try:
        engine.start().close()
        # and the Debian slim base the summary compares sizes with: a runner has it once, like a toolchain
        toolchains = {target.toolchain_image for target in bench.targets}
        for image in [*sorted(toolchains), image_reference(DEBIAN_SLIM)]:
            copy_image(image, engine.host)
        env = {**DOCKER_ENV, "DOCKER_HOST": engine.host}
        options = ("--cache-from", bench.cache, "--trust-cache-smoke")
        seconds = run_osless(bench, "remote-cache", *options, workspace=clone, env=env)
    finally:
        engine.stop()
    report = json.loads((clone / "out" / "report.json").read_text())
    sources = [target.get("result_from") for target in report["targets"]]
    if sources != ["remote-cache"] * len(bench.targets):
        raise RuntimeError(f"the clone did not take every result from the cache: {sources}")
    for service in {target.service for target in bench.targets}:
        ours, theirs = (root / service / "oci" / "index.json" for root in (bench.out, clone / "out"))
        if ours.read_bytes() != theirs.read_bytes():
            raise RuntimeError(f"{service}: the clone's index differs from the cold run's")
    return Remote(seconds=seconds, cold=cold_seconds, targets_from_cache=len(sources))


def copy_image(image: str, host: str) -> None:
    """`docker save` here piped into `docker load` on the other engine: the same image id there."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, env=DOCKER_ENV)
    try:
        run(["docker", "--host", host, "load", "--quiet"], stdin=save.stdout, timeout=BUILD_TIMEOUT)
    finally:
        assert save.stdout is not None
        save.stdout.close()
        if save.wait(timeout=DOCKER_TIMEOUT) != 0:
            raise RuntimeError(f"docker save {image} exited {save.returncode}")


# --- Output ---


def table(rows: list[Row]) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    header = ("scenario", "osless s", "baseline s", "lower bound s", "osless/baseline", "osless/lower bound")
    lines = [header]
    for row in rows:
        ratios = row.ratios()
        lines.append(
            (
                row.scenario,
                seconds(row.osless),
                seconds(row.baseline),
                seconds(row.lower_bound),
                ratio(ratios["osless_over_baseline"]),
                ratio(ratios["osless_over_lower_bound"]),
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=20, help="synthetic services, half Go half C")
    parser.add_argument("--platforms", default="linux/amd64,linux/arm64", help="comma-separated")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallelism for all three")
    parser.add_argument("--json", type=Path, default=Path("out/bench.json"), help="where to write figures")
    parser.add_argument("--keep", action="store_true", help="keep the workspace (logs, recipes, out/)")
    args = parser.parse_args(argv)
    args.platforms = [name.strip() for name in args.platforms.split(",") if name.strip()]
    unknown = [name for name in args.platforms if name not in PLATFORMS]
    if unknown or args.services < 1 or args.jobs < 1:
        parser.error(f"need --services >= 1, --jobs >= 1 and known platforms (unknown: {unknown})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workspace = Path(tempfile.mkdtemp(prefix="osless-bench-"))
    with contextlib.ExitStack() as daemons:
        registry = daemons.enter_context(loopback_registry(Path(tempfile.mkdtemp(dir=workspace))))
        bench = Bench(
            workspace=workspace, jobs=args.jobs, targets=[], warm={}, cache=f"{registry}/bench/cache"
        )
        return measure(bench, args)


def measure(bench: Bench, args: argparse.Namespace) -> int:
    """Every scenario on the generated workspace, the figures printed and written to --json."""
    workspace = bench.workspace
    try:
        generate(workspace, args.services, args.platforms)
        bench.reload()
        images = sorted({target.toolchain_image for target in bench.targets})
        missing = [image for image in images if not docker("images", "--quiet", image).strip()]
        if missing:
            print(f"toolchain images missing (run `osless build` once first): {', '.join(missing)}")
            return 1
        for image in images:  # read the toolchains from disk once, outside any measurement
            docker("run", "--rm", "--network", "none", image, "true")
        engine = docker("version", "--format", "{{.Server.Version}}").strip()
        print(
            f"{args.services} services x {len(args.platforms)} platforms = {len(bench.targets)} targets, "
            f"--jobs {args.jobs}, {os.cpu_count()} cores, engine {engine}, workspace {workspace}",
            flush=True,
        )
        rows = []
        load = {}  # other work on the machine skews every figure: say how busy it was
        remote: Remote | None = None
        for scenario in (cold, no_change, one_change):
            load[scenario.__name__.replace("_", "-")] = os.getloadavg()[0]
            rows.append(scenario(bench))
            row = rows[-1]
            print(f"{row.scenario}: osless {row.osless:.1f}s, baseline {row.baseline:.1f}s", flush=True)
            if scenario is cold:  # before one-change edits the sources the clone copies
                load["remote-cache"] = os.getloadavg()[0]
                remote = remote_cache(bench, row.osless)
                print(
                    f"remote-cache: a fresh clone on a second engine {remote.seconds:.1f}s "
                    f"({remote.seconds / remote.cold:.2f}x the cold run, goal <= {REMOTE_GOAL}x)",
                    flush=True,
                )
        assert remote is not None
        print(table(rows))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "services": args.services,
                    "platforms": args.platforms,
                    "targets": len(bench.targets),
                    "jobs": args.jobs,
                    "cores": os.cpu_count(),
                    "scenarios": [
                        {**asdict(row), **row.ratios(), "load_average_before": load[row.scenario]}
                        for row in rows
                    ],
                    "remote_cache": {**remote.as_json(), "load_average_before": load["remote-cache"]},
                },
                indent=2,
            )
            + "\n"
        )
        print(f"figures written to {args.json}")
        return 0
    finally:
        for container in bench.warm.values():
            docker("rm", "--force", container, check=False)
        remove_baseline_images()
        if args.keep:
            print(f"workspace kept: {workspace}")
        else:
            shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

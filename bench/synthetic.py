"""Synthetic services: N small programs (half Go, half C) generated in a workspace whose toolchain
recipes are copies of this project's, so the toolchain images already in the engine are reused. The
`synthetic` group measures them cold, with nothing changed and with one service changed against the
per-target Dockerfiles and the lower bound (compare.py); the `remote` scenario builds a fresh clone
on a second, empty engine from what a registry on loopback holds; the `scale` group (scale.py) uses
the same services, more of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    BUILD_TIMEOUT,
    DOCKER_ENV,
    DOCKER_TIMEOUT,
    LABEL_KEY,
    REPO_ROOT,
    Run,
    remove_project_volumes,
    run_osless,
)
from bench.compare import Target, WarmContainers, baseline, lower_bound, remove_baseline_images, targets_of
from bench.figures import Goal, OslessRun, Scenario, ratio, rebuilt
from orchestrator.bootstrap.spec import image_reference
from orchestrator.recipe.loader import load_project
from orchestrator.stages.toolchain import DEBIAN_SLIM
from tests.daemons import SecondEngine

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
\treturn "{prefix}" + strings.Repeat("0", max(0, {width}-len(digits))) + digits
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
    snprintf(name, sizeof name, "{prefix}%0{width}d", id);
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

[image]
repository = "osless-bench/{name}"
labels = {{ "{label_key}" = "{label_value}" }}

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
REMOTE_GOAL = 0.25  # issue 14's: a runner with the same inputs downloads instead of compiling


def generate(bench: Run, workspace: Path, count: int, platforms: list[str], prefix: str) -> None:
    """Toolchain recipes copied unchanged (so their images are reused) and `count` small services,
    named `<prefix><number>`; their images carry the run's label."""
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", workspace / "recipes" / "toolchains")
    width = max(2, len(str(count)))
    go_count = (count + 1) // 2
    for number in range(1, count + 1):
        name = f"{prefix}{number:0{width}d}"
        is_go = number <= go_count
        source = workspace / "sources" / name
        source.mkdir(parents=True)
        template = GO_SOURCE if is_go else C_SOURCE
        text = template.format(name=name, number=number, width=width, prefix=prefix)
        if is_go:
            (source / "go.mod").write_text(f"module example.com/{name}\n\ngo 1.22\n")
        (source / ("main.go" if is_go else "main.c")).write_text(text)
        (workspace / "recipes" / f"{name}.toml").write_text(
            RECIPE.format(
                name=name,
                toolchain="go" if is_go else "gcc",
                platforms=json.dumps(platforms),
                command=json.dumps(GO_COMMAND if is_go else C_COMMAND),
                label_key=LABEL_KEY,
                label_value=bench.run_id,
            )
        )


def synthetic_targets(workspace: Path, platforms: list[str]) -> list[Target]:
    """The targets as the recipes say now (an edited recipe's smoke expectation included)."""
    return targets_of(load_project(workspace), platforms)


def change_one_service(workspace: Path, name: str) -> None:
    """Change the service's printed text in its source and its recipe, so its binary changes."""
    source = next(path for path in (workspace / "sources" / name).iterdir() if path.suffix in (".go", ".c"))
    recipe = workspace / "recipes" / f"{name}.toml"
    text = source.read_text().replace('status = "ok"', 'status = "ok again"')
    source.write_text(text.replace('status[] = "ok"', 'status[] = "ok again"'))
    recipe.write_text(recipe.read_text().replace(f'"{name} ok\\n"', f'"{name} ok again\\n"'))


@dataclass(frozen=True, kw_only=True)
class Synthetic:
    """The synthetic group's settings."""

    workspace: Path
    platforms: list[str]
    measure: bool  # the synthetic scenarios (else only what the remote scenario needs)
    registry: str | None  # a registry on loopback: the remote scenario runs

    @property
    def cache(self) -> str:
        assert self.registry is not None
        return f"{self.registry}/bench/cache"


def synthetic(bench: Run, group: Synthetic) -> list[Scenario]:
    """cold, no-change, (remote-cache), one-change, in this order; the remote scenario's registry is
    filled by an unmeasured run with --cache-to between no-change and it."""
    workspace = group.workspace
    targets = synthetic_targets(workspace, group.platforms)
    scenarios = []
    remove_project_volumes(workspace)
    shutil.rmtree(workspace / "out", ignore_errors=True)
    load = os.getloadavg()[0]
    cold = run_osless(bench, workspace, "synthetic-cold")
    if not group.measure:
        scenarios.append(Scenario(group="synthetic", name="cold", osless=cold, load_average=load))
    with WarmContainers(bench, workspace, "synthetic") as warm:
        if group.measure:
            remove_baseline_images(bench)
            cold_baseline = baseline(bench, targets, workspace / "baseline")
            warm.start(targets)
            cold_bound = lower_bound(warm, targets)
            scenarios.append(
                Scenario(
                    group="synthetic",
                    name="cold",
                    osless=cold,
                    baseline=cold_baseline,
                    lower_bound=cold_bound,
                    goals=(_goal("cold <= 1.05x the lower bound", ratio(cold.seconds, cold_bound), 1.05),),
                    notes=(
                        "without --cache-to: a separate, unmeasured run fills the remote scenario's registry",
                    ),
                    load_average=load,
                )
            )
            load = os.getloadavg()[0]
            again = run_osless(bench, workspace, "synthetic-no-change")
            scenarios.append(
                Scenario(
                    group="synthetic",
                    name="no-change",
                    osless=again,
                    baseline=baseline(bench, targets, workspace / "baseline"),
                    goals=(Goal(text="nothing changed <= 0.5 s", value=again.seconds, limit=0.5, unit="s"),),
                    notes=rebuilt(again, 0),
                    load_average=load,
                )
            )
        if group.registry is not None:  # before one-change edits the sources the clone copies
            run_osless(bench, workspace, "synthetic-upload", "--cache-to", group.cache)
            scenarios.append(remote_cache(bench, group, targets, cold))
        if group.measure:
            name = targets[0].service.name
            change_one_service(workspace, name)
            targets = synthetic_targets(workspace, group.platforms)
            changed = [target for target in targets if target.service.name == name]
            load = os.getloadavg()[0]
            one = run_osless(bench, workspace, "synthetic-one-change")
            bound = lower_bound(warm, changed)
            scenarios.append(
                Scenario(
                    group="synthetic",
                    name="one-change",
                    osless=one,
                    baseline=baseline(bench, targets, workspace / "baseline"),
                    lower_bound=bound,
                    goals=(
                        _goal(
                            "one service changed <= 2x the lower bound for that service",
                            ratio(one.seconds, bound),
                            2.0,
                        ),
                    ),
                    notes=rebuilt(one, len(changed)),
                    load_average=load,
                )
            )
    return scenarios


def remote_cache(bench: Run, group: Synthetic, targets: list[Target], cold: OslessRun) -> Scenario:
    """A fresh clone of the workspace (recipes and sources, no out/) built on a second, empty engine
    with --cache-from and --trust-cache-smoke: every target must come from the cache, with the cold
    run's index digests. The engine gets the toolchain images and the Debian slim base of the size
    comparison before the clock starts, as a runner pulls or bootstraps the same reproducible images."""
    workspace = group.workspace
    clone = workspace / "clone"
    for part in ("recipes", "sources"):
        shutil.copytree(workspace / part, clone / part, symlinks=True)
    engine = SecondEngine()
    load = os.getloadavg()[0]
    try:
        engine.start().close()
        toolchains = {target.toolchain_image for target in targets}
        for image in [*sorted(toolchains), image_reference(DEBIAN_SLIM)]:
            copy_image(image, engine.host)
        env = {**DOCKER_ENV, "DOCKER_HOST": engine.host}
        options = ("--cache-from", group.cache, "--trust-cache-smoke")
        remote = run_osless(bench, clone, "remote-cache", *options, env=env)
    finally:
        engine.stop()
    if remote.results != {"remote-cache": len(targets)}:
        report = json.loads((clone / "out" / "report.json").read_text())
        notes = sorted({note for target in report["targets"] for note in target.get("notes", [])})
        raise RuntimeError(
            f"the clone did not take every result from the cache: {remote.results}; notes: {notes}"
        )
    for service in {target.service.name for target in targets}:
        ours, theirs = (root / service / "oci" / "index.json" for root in (workspace / "out", clone / "out"))
        if ours.read_bytes() != theirs.read_bytes():
            raise RuntimeError(f"{service}: the clone's index differs from the cold run's")
    over_cold = ratio(remote.seconds, cold.seconds)
    return Scenario(
        group="synthetic",
        name="remote-cache",
        osless=remote,
        goals=(_goal(f"a fresh clone <= {REMOTE_GOAL}x the cold run", over_cold, REMOTE_GOAL),),
        extra={"remote_over_cold": round(over_cold or 0.0, 3), "targets_from_cache": len(targets)},
        notes=("a fresh clone on a second engine, --cache-from and --trust-cache-smoke",),
        load_average=load,
    )


def copy_image(image: str, host: str) -> None:
    """`docker save` here piped into `docker load` on the other engine: the same image id there."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, env=DOCKER_ENV)
    try:
        load = subprocess.run(
            ["docker", "--host", host, "load", "--quiet"],
            stdin=save.stdout,
            capture_output=True,
            timeout=BUILD_TIMEOUT,
            env=DOCKER_ENV,
            check=False,
        )
    finally:
        assert save.stdout is not None
        save.stdout.close()
        if save.wait(timeout=DOCKER_TIMEOUT) != 0:
            raise RuntimeError(f"docker save {image} exited {save.returncode}")
    if load.returncode != 0:
        raise RuntimeError(f"docker load of {image} exited {load.returncode}: {load.stderr.decode()[-800:]}")


def _goal(text: str, value: float | None, limit: float) -> Goal:
    return Goal(text=text, value=value, limit=limit, unit="x")

"""Real programs: the examples (examples/: upstream trees, their recipes, their smoke inputs) copied into
a workspace of their own, built cold, with nothing changed, and with one real source file changed per
program (a comment line appended: the binary behaves the same, the smoke expectations hold), against
per-target Dockerfiles and the bare steps in warm containers (compare.py), whose second run after the
same change is the bare incremental make / cmake / go / cargo build."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.common import (
    BUILD_TIMEOUT,
    LABEL_KEY,
    REPO_ROOT,
    Run,
    remove_project_volumes,
    run,
    run_osless,
)
from bench.compare import Target, WarmContainers, baseline, lower_bound, remove_baseline_images, targets_of
from bench.figures import Goal, OslessRun, Scenario, ratio, rebuilt
from orchestrator.recipe.loader import load_project

EXAMPLES = REPO_ROOT / "examples"
# The file each program's one-change scenario edits: a real source file of its own tree.
CHANGED_FILES = {
    "lua": "src/lapi.c",  # C, make: one object recompiled, the library and lua relinked
    "ninja": "src/graph.cc",  # C++, cmake + ninja
    "gojq": "cli/run.go",  # Go: the package recompiled, the program relinked
    "hexyl": "src/lib.rs",  # Rust, cargo: the crate and its binary
    "minisign": "src/minisign.c",  # C, cmake, with libsodium
}
DEFAULT_PROGRAMS = ("lua", "ninja", "gojq", "hexyl")
CHANGE = "/* osless bench: one source file changed */\n"  # a comment in C, C++, Go and Rust alike


def fetch_sources(names: list[str]) -> None:
    """The examples' pinned sources into examples/sources (nothing happens when they are there)."""
    run([sys.executable, str(REPO_ROOT / "scripts" / "fetch-examples"), *names], timeout=BUILD_TIMEOUT)


def prepare(bench: Run, workspace: Path, names: list[str]) -> None:
    """The chosen programs' recipes (copy_recipes) and sources."""
    copy_recipes(workspace, names, bench.run_id)
    for name in names:
        shutil.copytree(EXAMPLES / "sources" / name, workspace / "sources" / name, symlinks=True)


def copy_recipes(workspace: Path, names: list[str], run_id: str) -> None:
    """The examples' toolchain recipes (symbolic links resolved: the same recipes, so the same images),
    smoke inputs, and the chosen programs' recipes, their images named and labelled for the bench."""
    shutil.copytree(EXAMPLES / "recipes" / "toolchains", workspace / "recipes" / "toolchains")
    shutil.copytree(EXAMPLES / "smoke", workspace / "smoke")
    for name in names:
        recipe = (EXAMPLES / "recipes" / f"{name}.toml").read_text()
        (workspace / "recipes" / f"{name}.toml").write_text(bench_image(recipe, name, run_id))


def bench_image(recipe: str, name: str, run_id: str) -> str:
    """The recipe with its image in the bench's repository and with the run's label, so that cleaning up
    removes exactly these images (never the examples' own)."""
    table = f'\n[image]\nrepository = "osless-bench/{name}"\nlabels = {{ "{LABEL_KEY}" = "{run_id}" }}\n'
    if "\n[image]\n" not in recipe:
        return recipe + table
    return recipe.replace("\n[image]\n", table, 1)


def change_file(workspace: Path, name: str) -> None:
    """A comment line appended to the program's changed file (a copy: never examples/ itself)."""
    path = workspace / "sources" / name / CHANGED_FILES[name]
    if path.is_symlink() or not path.is_file():
        raise RuntimeError(f"{path}: not a regular file of the copied source")
    with path.open("a") as stream:
        stream.write(CHANGE)


def real(bench: Run, workspace: Path, names: list[str], platforms: list[str]) -> list[Scenario]:
    """cold, no-change, then one-change per program: its file edited, the whole project built again
    (the other programs come from out/), against all targets' Dockerfiles and the program's own bare
    incremental build."""
    targets = targets_of(load_project(workspace), platforms)
    options = [option for platform in platforms for option in ("--platform", platform)]
    contexts = workspace / "baseline"
    remove_project_volumes(workspace)
    shutil.rmtree(workspace / "out", ignore_errors=True)
    load = {"cold": os.getloadavg()[0]}
    cold = run_osless(bench, workspace, "real-cold", *options)
    load["no-change"] = os.getloadavg()[0]
    again = run_osless(bench, workspace, "real-no-change", *options)
    remove_baseline_images(bench)
    cold_baseline = baseline(bench, targets, contexts)
    again_baseline = baseline(bench, targets, contexts)
    scenarios = []
    with WarmContainers(bench, workspace, "real") as warm:
        warm.start(targets)
        scenarios.append(
            Scenario(
                group="real",
                name="cold",
                osless=cold,
                baseline=cold_baseline,
                lower_bound=lower_bound(warm, targets),
                load_average=load["cold"],
            )
        )
        scenarios.append(
            Scenario(
                group="real",
                name="no-change",
                osless=again,
                baseline=again_baseline,
                goals=(
                    Goal(
                        text="nothing changed <= 1.5 s for all programs",
                        value=again.seconds,
                        limit=1.5,
                        unit="s",
                    ),
                ),
                notes=rebuilt(again, 0),
                load_average=load["no-change"],
            )
        )
        for name in names:
            scenarios.append(one_change(bench, workspace, warm, targets=targets, name=name, options=options))
    return scenarios


def one_change(
    bench: Run, workspace: Path, warm: WarmContainers, *, targets: list[Target], name: str, options: list[str]
) -> Scenario:
    """The program's file edited, then osless on the whole project, the Dockerfiles of every target, and
    the program's own targets' bare steps in their warm copies."""
    changed = [target for target in targets if target.service.name == name]
    change_file(workspace, name)
    load = os.getloadavg()[0]
    osless: OslessRun = run_osless(bench, workspace, f"real-one-change-{name}", *options)
    bound = lower_bound(warm, changed)
    return Scenario(
        group="real",
        name=f"one-change {name}",
        osless=osless,
        baseline=baseline(bench, targets, workspace / "baseline"),
        lower_bound=bound,
        goals=(
            Goal(
                text=f"{CHANGED_FILES[name]} changed <= 2x the bare incremental build",
                value=ratio(osless.seconds, bound),
                limit=2.0,
                unit="x",
            ),
        ),
        notes=rebuilt(osless, len(changed)),
        load_average=load,
    )

"""Benchmark: osless against the Dockerfiles teams write instead and against the bare build steps.

Prints wall-clock seconds (it is not a test) for every scenario, measured in one run on the same
engine and toolchain images, and writes them to out/bench.json with their ratios, the issue's goals
(met or not) and, for every osless run, its profile from report.json (compile, smoke under qemu,
osless's own stages, peak RSS). Groups (`--only`):

- synthetic: N small services (half Go, half C) x platforms, cold (no compiler caches, no out/),
  nothing changed, one service changed (synthetic.py); against per-target Dockerfiles and the lower
  bound (compare.py).
- remote: a fresh clone on a second, empty engine building with --cache-from what an unmeasured
  --cache-to run uploaded to a registry on loopback (after the synthetic group's no-change).
- real: the examples (lua: C with make, ninja: C++ with cmake, gojq: Go with vendored modules, hexyl:
  Rust with cargo; minisign on request) cold, nothing changed, one real source file changed per
  program; against the same (real.py).
- scale: 100 synthetic services x platforms, osless alone: cold and nothing changed (scale.py).

Every docker object the bench makes carries its run's label and is removed at the end; the toolchain
images must be there already (`nox -s build-all`, and `nox -s examples` for the real programs').

Run it with `nox -s bench -- --only synthetic --services 4`, or `python -m bench.benchmark --help`
from the project root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import Run, docker, read_from_disk, remove_everything, toolchains_missing
from bench.compare import targets_of
from bench.figures import Scenario, goals_list, table
from bench.real import CHANGED_FILES, DEFAULT_PROGRAMS, fetch_sources, prepare, real
from bench.scale import scale
from bench.synthetic import Synthetic, generate, synthetic
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from tests.daemons import loopback_registry

GROUPS = ("synthetic", "remote", "real", "scale")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add(
        "--only",
        default=",".join(GROUPS),
        help=f"comma-separated groups (default: all of {','.join(GROUPS)})",
    )
    add("--services", type=int, default=20, help="synthetic services, half Go half C (default 20)")
    add(
        "--platforms",
        default="linux/amd64,linux/arm64",
        help="synthetic and scale platforms, comma-separated",
    )
    add("--real", default=",".join(DEFAULT_PROGRAMS), help=f"examples to build, of {','.join(CHANGED_FILES)}")
    add("--real-platforms", default="linux/amd64,linux/arm64", help="the real programs' platforms")
    add("--scale-services", type=int, default=100, help="synthetic services of the scale group (default 100)")
    add("--jobs", type=int, default=os.cpu_count() or 2, help="targets at a time, for all three ways")
    add("--json", type=Path, default=Path("out/bench.json"), help="where to write the figures")
    add("--keep", action="store_true", help="keep the workspaces (logs, recipes, sources, out/)")
    args = parser.parse_args(argv)
    args.only = _listed(args.only)
    args.platforms = _listed(args.platforms)
    args.real = _listed(args.real)
    args.real_platforms = _listed(args.real_platforms)
    problems = [f"unknown group {name!r}" for name in args.only if name not in GROUPS]
    problems += [f"unknown example {name!r}" for name in args.real if name not in CHANGED_FILES]
    problems += [
        f"unknown platform {name!r}" for name in args.platforms + args.real_platforms if name not in PLATFORMS
    ]
    if min(args.services, args.scale_services, args.jobs) < 1:
        problems.append("--services, --scale-services and --jobs must be at least 1")
    if (
        not args.only
        or not args.platforms
        or ("real" in args.only and not (args.real and args.real_platforms))
    ):
        problems.append("nothing to measure")
    if problems:
        parser.error("; ".join(problems))
    return args


def _listed(text: str) -> list[str]:
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="osless-bench-"))
    bench = Run(root=root, run_id=f"{os.getpid()}-{int(time.time())}", jobs=args.jobs)
    try:
        registry = (
            loopback_registry(Path(tempfile.mkdtemp(dir=root)))
            if "remote" in args.only
            else contextlib.nullcontext(None)
        )
        with registry as address:
            return measure(bench, args, address)
    finally:
        remove_everything(bench)
        if args.keep:
            print(f"workspaces kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def measure(bench: Run, args: argparse.Namespace, registry: str | None) -> int:
    """Every selected group, the figures printed as they come and at the end, and written to --json."""
    workspaces = prepare_workspaces(bench, args)
    images = [
        target.toolchain_image
        for group, workspace in workspaces.items()
        for target in targets_of(load_project(workspace), _platforms(args, group))
    ]
    missing = toolchains_missing(images)
    if missing:
        print(
            f"toolchain images missing: {', '.join(missing)} (make them once: `nox -s build-all`, "
            "and `nox -s examples` for the real programs' gcc-sodium and rust-debian)"
        )
        return 1
    read_from_disk(images)
    engine = docker("version", "--format", "{{.Server.Version}}").strip()
    machine = {"jobs": args.jobs, "cores": os.cpu_count(), "engine": engine}
    print(
        f"--jobs {args.jobs}, {os.cpu_count()} cores, engine {engine}, workspaces in {bench.root}", flush=True
    )
    groups: dict[str, list[Scenario]] = {}
    if "synthetic" in workspaces:
        measured = "synthetic" in args.only
        group = Synthetic(
            workspace=workspaces["synthetic"], platforms=args.platforms, measure=measured, registry=registry
        )
        print(f"synthetic: {_size(args.services, args.platforms)}", flush=True)
        groups["synthetic"] = synthetic(bench, group)
        _print_group("synthetic", groups["synthetic"])
    if "real" in workspaces:
        print(f"real: {', '.join(args.real)} x {', '.join(args.real_platforms)}", flush=True)
        groups["real"] = real(bench, workspaces["real"], args.real, args.real_platforms)
        _print_group("real", groups["real"])
    if "scale" in workspaces:
        print(f"scale: {_size(args.scale_services, args.platforms)}", flush=True)
        groups["scale"] = scale(bench, workspaces["scale"])
        _print_group("scale", groups["scale"])
    scenarios = [scenario for group in groups.values() for scenario in group]
    print("\ngoals:\n" + goals_list(scenarios))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(bench_json(args, machine, scenarios), indent=2) + "\n")
    print(f"figures written to {args.json}")
    return 0


def prepare_workspaces(bench: Run, args: argparse.Namespace) -> dict[str, Path]:
    """A workspace per group that runs (remote uses the synthetic one), filled before any clock starts."""
    workspaces = {}
    if {"synthetic", "remote"} & set(args.only):
        workspaces["synthetic"] = bench.root / "synthetic"
        generate(bench, workspaces["synthetic"], args.services, args.platforms, prefix="svc")
    if "real" in args.only:
        fetch_sources(args.real)
        workspaces["real"] = bench.root / "real"
        prepare(bench, workspaces["real"], args.real)
    if "scale" in args.only:
        workspaces["scale"] = bench.root / "scale"
        generate(bench, workspaces["scale"], args.scale_services, args.platforms, prefix="big")
    return workspaces


def bench_json(
    args: argparse.Namespace, machine: dict[str, Any], scenarios: list[Scenario]
) -> dict[str, Any]:
    goals = [goal for scenario in scenarios for goal in scenario.goals]
    return {
        "machine": machine,
        "settings": {
            "only": args.only,
            "services": args.services,
            "platforms": args.platforms,
            "real": args.real,
            "real_platforms": args.real_platforms,
            "scale_services": args.scale_services,
        },
        "scenarios": [scenario.as_json() for scenario in scenarios],
        "goals_met": sum(goal.met is True for goal in goals),
        "goals_not_met": sum(goal.met is False for goal in goals),
        "goals_unknown": sum(goal.met is None for goal in goals),
    }


def _platforms(args: argparse.Namespace, group: str) -> list[str]:
    platforms: list[str] = args.real_platforms if group == "real" else args.platforms
    return platforms


def _size(services: int, platforms: list[str]) -> str:
    return f"{services} services x {len(platforms)} platforms = {services * len(platforms)} targets"


def _print_group(name: str, scenarios: list[Scenario]) -> None:
    print(f"\n{name}\n{table(scenarios)}\n", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""The bench's pure parts (bench/figures.py, the recipes it copies, the steps its lower bound runs),
without an engine: the figures it reads from osless's report, the goals it judges, the tables it
prints, and that it builds the examples with the same images and steps as osless does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from bench.compare import targets_of
from bench.figures import Goal, OslessRun, Scenario, goals_list, profile_of, rebuilt, results_of, table
from bench.real import EXAMPLES, copy_recipes
from orchestrator.bootstrap.spec import image_reference
from orchestrator.outputs import profile
from orchestrator.outputs.report import report_json
from orchestrator.recipe.loader import load_project
from tests import run_reports

PHASES = {"startup": 0.4, "toolchains": 0.1, "sources": 0.1, "targets": 9.0, "layouts": 0.3, "report": 0.0}


def _run(seconds: float, report: dict[str, object]) -> OslessRun:
    return OslessRun(
        seconds=seconds, peak_rss_bytes=90_000_000, results=results_of(report), profile=profile_of(report)
    )


def _report_json() -> dict[str, object]:
    """report.json as osless writes it: two targets built, one from out/."""
    built = run_reports.target("a", jobs=2, seconds={"cache": 0.01, "build": 2.0, "smoke": 0.5, "load": 0.1})
    cached = run_reports.target("b", result_from="local-cache", seconds={"cache": 0.02})
    emulated = run_reports.target("a", "linux/arm64", jobs=2, seconds={"build": 2.0, "smoke": 1.5})
    assert emulated.smoke is not None
    emulated = replace(emulated, smoke=replace(emulated.smoke, emulated=True))
    report = run_reports.report(built, cached, emulated)
    report = replace(report, profile=profile.run_profile(report, phases=PHASES, peak_rss=123 * 1024**2))
    document: dict[str, object] = json.loads(report_json(report))
    return document


def test_the_bench_reads_the_profile_osless_writes() -> None:
    document = _report_json()
    read = profile_of(document)
    assert read is not None
    assert read.wall == 9.9 and read.phases == PHASES
    assert (read.targets, read.built, read.compile) == (3, 2, 4.0)
    assert (read.emulated_smoke, read.native_smoke) == (1.5, 0.5)
    assert read.osless == 0.13 and read.osless_per_target_ms == 65
    assert read.peak_rss_bytes == 123 * 1024**2
    assert results_of(document) == {"built": 2, "local-cache": 1}


def test_a_report_without_the_profile_it_describes_has_none() -> None:
    assert profile_of({"targets": []}) is None  # an osless before the profile, or `osless assemble`'s
    assert profile_of({"profile": None}) is None
    assert profile_of({"profile": {"wall": 1.0}}) is None  # not the contract's
    assert profile_of({"profile": {**_profile(), "wall": "soon"}}) is None


def _profile() -> dict[str, object]:
    document = _report_json()
    data = document["profile"]
    assert isinstance(data, dict)
    return data


def test_goals_are_met_not_met_or_unknown_and_listed_so() -> None:
    run = _run(0.4, {"targets": []})  # no profile: the overhead is not known
    scenario = Scenario(
        group="scale",
        name="cold",
        osless=run,
        goals=(
            Goal(text="fast", value=0.4, limit=0.5, unit="s"),
            Goal(text="faster", value=1.5, limit=1.05, unit="x"),
            Goal(text="lean", value=None, limit=150, unit="ms"),
        ),
    )
    assert [goal.met for goal in scenario.goals] == [True, False, None]
    listed = goals_list([scenario]).splitlines()
    assert listed == [
        "  met      scale cold: fast: 0.40 s",
        "  NOT MET  scale cold: faster: 1.50x",
        "  unknown  scale cold: lean: unknown (profile missing)",
    ]
    assert [goal["met"] for goal in scenario.as_json()["goals"]] == [True, False, None]


def test_the_table_gives_ratios_where_both_figures_exist_and_says_which_profile_is_missing() -> None:
    with_profile = _run(4.0, _report_json())
    cold = Scenario(group="synthetic", name="cold", osless=with_profile, baseline=16.0, lower_bound=2.0)
    unchanged = Scenario(group="synthetic", name="no-change", osless=_run(0.5, {}), baseline=5.0)
    lines = table([cold, unchanged]).splitlines()
    assert lines[0].split()[:3] == ["scenario", "osless", "s"]
    assert lines[1].split() == [
        "cold",
        "4.0",
        "16.0",
        "2.0",
        "0.25x",
        "2.00x",
        "4.0",
        "2.0",
        "1.5",
        "0.1",
        "65",
        "90",
    ]
    assert lines[2].split() == ["no-change", "0.5", "5.0", "-", "0.10x", "-", "-", "-", "-", "-", "-", "90"]
    assert lines[3] == "profile missing in report.json (no compile/smoke/own figures): no-change"
    assert cold.as_json()["osless_over_lower_bound"] == 2.0
    assert unchanged.as_json()["osless_over_lower_bound"] is None


def test_the_real_programs_copied_for_the_bench_use_the_examples_images(tmp_path: Path) -> None:
    copy_recipes(tmp_path, ["lua", "hexyl"], "123-456")
    bench, examples = load_project(tmp_path), load_project(EXAMPLES)
    assert sorted(bench.services) == ["hexyl", "lua"]
    for name, toolchain in bench.toolchains.items():  # a link resolved is the same recipe: the same image
        assert image_reference(toolchain) == image_reference(examples.toolchains[name])
    lua = bench.services["lua"]
    assert lua.image.repository == "osless-bench/lua"  # never the examples' own `lua` image
    assert lua.image.labels == {"osless-bench": "123-456"}
    files = [path for check in lua.smoke.checks for path in check.files.values()]
    assert files and all(path.is_file() and path.is_relative_to(tmp_path) for path in files)  # copied too


def test_the_lower_bound_runs_the_steps_osless_runs_where_osless_runs_them(tmp_path: Path) -> None:
    copy_recipes(tmp_path, ["lua", "hexyl"], "1")
    targets = {
        (target.service.name, target.platform.name): target
        for target in targets_of(load_project(tmp_path), ["linux/arm64"])
    }
    assert sorted(targets) == [("hexyl", "linux/arm64"), ("lua", "linux/arm64")]
    lua = targets["lua", "linux/arm64"]
    assert lua.workspace == "/workspace/lua/linux-arm64"
    assert lua.source == "/project/sources/lua"
    assert lua.binary == "/workspace/lua/linux-arm64/src/lua"  # the recipe's artifact
    (make,) = lua.steps
    assert make[0] == "make" and make[1].startswith("-j") and "CC=aarch64-linux-gnu-gcc" in make
    assert lua.env["CCACHE_DIR"] == "/cache/ccache" and lua.image == "osless-bench/lua:latest-arm64"
    hexyl = targets["hexyl", "linux/arm64"]
    assert hexyl.env["CARGO_TARGET_DIR"] == "/cache/targets/hexyl/linux-arm64/cargo"
    assert hexyl.binary == "/cache/targets/hexyl/linux-arm64/cargo/aarch64-unknown-linux-gnu/release/hexyl"


def test_a_scenario_that_built_other_targets_than_it_changed_says_so() -> None:
    one_change = _run(2.0, {"targets": [{"result_from": "built"}, {"result_from": "local-cache"}]})
    assert rebuilt(one_change, 1) == ()
    assert rebuilt(one_change, 0) == ("osless built 1 targets where 0 changed: not this scenario's figure",)

"""The run's profile (outputs.profile) from crafted run reports, its views (`--profile`, summary.md),
and the report fields it is made of, read back from results written before they existed."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from rich.console import Console

from orchestrator.cli import render
from orchestrator.outputs import profile, summary
from orchestrator.outputs.report import RunReport, TargetReport, report_json, to_jsonable
from orchestrator.stages.build import StepTime
from tests import run_reports

PHASES = {
    "startup": 0.4,
    "toolchains": 1.0,
    "sources": 0.1,
    "targets": 10.0,
    "layouts": 0.5,
    "upload": 0.0,
    "report": 0.01,
}
STEPS = (StepTime(label="the build command (gcc)", seconds=2.5, exit_code=0),)


def _built(service: str, platform: str = "linux/amd64", **seconds: float) -> TargetReport:
    """A target built in this run: every stage timed (`copy_out` for "copy-out" and so on)."""
    stages = {
        "queued": 1.0,
        "cache": 0.02,
        "builder": 0.3,
        "workspace": 0.1,
        "build": 2.5,
        "copy_out": 0.05,
        "verify": 0.03,
        "package": 0.02,
        "load": 0.08,
        "smoke_queued": 0.5,
        "smoke": 0.75,
    } | seconds
    return run_reports.target(
        service,
        platform,
        seconds={name.replace("_", "-"): value for name, value in stages.items()},
        steps=STEPS,
        jobs=2,
    )


def _emulated(target: TargetReport) -> TargetReport:
    assert target.smoke is not None
    return replace(target, smoke=replace(target.smoke, emulated=True))


def _cached(service: str) -> TargetReport:
    """A result reused from out/: its seconds are this run's lookup only."""
    return run_reports.target(
        service, seconds={"queued": 0.2, "cache": 0.01}, cached=True, result_from="local-cache"
    )


def _run(*targets: TargetReport) -> RunReport:
    report = run_reports.report(*targets)
    return replace(report, profile=profile.run_profile(report, phases=PHASES, peak_rss=80 * 1024**2))


def test_the_profile_splits_the_targets_time_by_whose_work_it_was() -> None:
    report = _run(_built("a"), _emulated(_built("b", "linux/arm64", smoke=4.0)), _cached("c"))
    run = report.profile
    assert run is not None
    assert run.wall == 12.01  # the phases are back to back: their sum
    assert run.phases == PHASES
    assert (run.targets, run.built) == (3, 2)  # c was not built in this run
    assert run.compile == 5.0
    assert (run.emulated_smoke, run.native_smoke) == (4.0, 0.75)
    own = 0.02 + 0.3 + 0.1 + 0.05 + 0.03 + 0.02 + 0.08  # every stage but build, smoke and the waits
    assert run.osless == round(2 * own + 0.01, 2)  # c's cache lookup is osless's too
    assert run.osless_per_target_ms == round(run.osless * 1000 / 2)
    assert run.peak_rss_bytes == 80 * 1024**2


def test_a_run_that_built_nothing_has_no_overhead_per_built_target() -> None:
    run = _run(_cached("a"), _cached("b")).profile
    assert run is not None
    assert (run.built, run.compile, run.osless_per_target_ms) == (0, 0.0, None)


def test_stages_are_listed_in_the_order_they_run_and_waits_are_not_work() -> None:
    target = _built("a", load=0.5)
    assert [name for name, _ in profile.breakdown(target)] == [s for s in profile.STAGES if s != "fetch"]
    assert profile.work_seconds(target) == sum(target.seconds.values()) - 1.0 - 0.5
    older = run_reports.target("old", seconds={"smoke": 1.0, "build": 2.0, "retired-stage": 0.5})
    assert profile.breakdown(older) == [("build", 2.0), ("smoke", 1.0), ("retired-stage", 0.5)]
    fast, slow = _built("fast", build=1.0), _built("slow", build=9.0)
    assert profile.slowest([fast, _cached("c"), slow], count=2) == [slow, fast]
    totals = profile.stage_totals([fast, slow, _cached("c")])
    assert totals["build"] == 10.0 and totals["queued"] == 2.2
    assert "fetch" not in totals


def test_the_profile_table_shows_phases_work_and_the_slowest_targets() -> None:
    report = _run(_built("[bold]a"), _emulated(_built("b", "linux/arm64", smoke=4.0)))
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    render.print_profile(console, report)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "where the 12.0s wall time went" in text
    assert "targets" in text and "10.00" in text and "83%" in text
    assert "compile (build steps)" in text and "5.00" in text
    assert "smoke tests under qemu" in text and "4.00" in text
    assert "  load" in text and "0.16" in text  # osless's own stages, each summed over targets
    assert "osless's own time per built target: 600 ms; peak memory (RSS): 80.0 MiB" in text
    assert "[bold]a" in text  # user text is never markup
    assert "cache 0.02, builder 0.30, workspace 0.10, build 2.50, copy-out 0.05" in text
    assert text.index("b ") < text.index("[bold]a")  # the slowest first


def test_the_summary_shows_the_profile_briefly() -> None:
    markdown = summary.markdown(_run(_built("a")))
    assert "**Profile:** 12.0s wall: startup 0.4s, toolchains 1.0s, sources 0.1s, targets 10.0s" in markdown
    assert "compile 2.5s, smoke under qemu 0.0s, native smoke 0.8s, osless 0.6s (600 ms per built" in markdown
    assert "peak RSS 80.0 MiB" in markdown
    assert "Profile" not in summary.markdown(run_reports.report(_built("a")))  # assembled: none


def test_report_json_has_the_profile_and_each_targets_steps_and_jobs() -> None:
    document = json.loads(report_json(_run(_built("a"), _cached("c"))))
    assert document["profile"]["phases"] == PHASES
    assert document["profile"]["osless_per_target_ms"] == 610  # c's lookup is osless's work too
    built, cached = document["targets"]
    assert built["steps"] == [{"label": "the build command (gcc)", "seconds": 2.5, "exit_code": 0}]
    assert (built["jobs"], cached["jobs"], cached["steps"]) == (2, None, [])
    assert set(built["seconds"]) == set(profile.STAGES) - {"fetch"}


def test_a_result_written_before_the_new_fields_still_loads() -> None:
    """A result.json (or a remote entry) from the previous version: no steps, no jobs, only the stages
    it timed then; it reads back with the defaults. A new one reads back as written."""
    new = _built("a")
    written = to_jsonable(new)
    old = {key: value for key, value in written.items() if key not in {"steps", "jobs"}}
    old["seconds"] = {"build": 2.5, "verify": 0.25, "package": 0.5, "smoke": 0.75}
    loaded = TargetReport.from_json(old)
    assert (loaded.steps, loaded.jobs, loaded.cached) == ((), None, True)
    assert loaded.seconds == old["seconds"]
    assert TargetReport.from_json(json.loads(json.dumps(written))) == replace(new, cached=True)


def test_the_processs_age_and_peak_memory_are_read_from_proc() -> None:
    assert 0 < profile.process_seconds() < 24 * 3600
    peak = profile.peak_rss()
    assert peak is not None and 1024**2 < peak < 64 * 1024**3

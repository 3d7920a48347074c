"""The bench's figures: osless's profile as report.json gives it, scenarios with their ratios and the
issue's goals, and what the bench prints (a table per group, the goals list) and writes (bench.json).
Pure: nothing here runs a process or reads a clock, so the unit tests cover it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

MB = 1_000_000  # bytes; the goals say MB


@dataclass(frozen=True, kw_only=True)
class Profile:
    """report.json's `profile` (the plan's Contract B): where one osless run's wall time went, in seconds."""

    wall: float
    phases: dict[str, float]
    targets: int
    built: int
    compile: float  # every build step, summed over the targets
    emulated_smoke: float  # smoke tests under qemu
    native_smoke: float
    osless: float  # every other per-target stage but waiting for a slot: osless's own work
    osless_per_target_ms: float | None  # over the targets built; None when none was
    peak_rss_bytes: int | None  # None: osless could not read it


def profile_of(report: Mapping[str, Any]) -> Profile | None:
    """The run's profile; None when the report has none, or not the one the contract describes."""
    data = report.get("profile")
    if not isinstance(data, Mapping):
        return None
    try:
        per_target, peak = data["osless_per_target_ms"], data["peak_rss_bytes"]
        return Profile(
            wall=float(data["wall"]),
            phases={str(name): float(seconds) for name, seconds in data["phases"].items()},
            targets=int(data["targets"]),
            built=int(data["built"]),
            compile=float(data["compile"]),
            emulated_smoke=float(data["emulated_smoke"]),
            native_smoke=float(data["native_smoke"]),
            osless=float(data["osless"]),
            osless_per_target_ms=None if per_target is None else float(per_target),
            peak_rss_bytes=None if peak is None else int(peak),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def results_of(report: Mapping[str, Any]) -> dict[str, int]:
    """How many targets came from where (`result_from`: built, local-cache, remote-cache)."""
    counts: dict[str, int] = {}
    for target in report.get("targets", []):
        where = str(target.get("result_from", "built"))
        counts[where] = counts.get(where, 0) + 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True, kw_only=True)
class OslessRun:
    """One `osless build` as the bench saw it: its wall clock, the kernel's account of its peak memory,
    and what its report says."""

    seconds: float
    peak_rss_bytes: int  # the process's peak RSS from wait4(): there with or without the profile
    results: dict[str, int]  # result_from -> targets
    profile: Profile | None

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "peak_rss_bytes": self.peak_rss_bytes,
            "results": self.results,
            "profile": asdict(self.profile) if self.profile else None,
        }


def rebuilt(run: OslessRun, expected: int) -> tuple[str, ...]:
    """A note when osless built other than the targets the scenario changed: its inputs (osless's own
    code is one: its fingerprint is in every key) changed meanwhile, and the figure is not the
    scenario's."""
    built = run.results.get("built", 0)
    if built == expected:
        return ()
    return (f"osless built {built} targets where {expected} changed: not this scenario's figure",)


def ratio(value: float | None, over: float | None) -> float | None:
    """value / over; None when either is unknown or there is nothing to divide by."""
    return None if value is None or not over else value / over


@dataclass(frozen=True, kw_only=True)
class Goal:
    """One of the issue's goals: a figure that must stay at or below its limit; value None: not known
    (the profile it comes from is missing)."""

    text: str
    value: float | None
    limit: float
    unit: str  # "s", "x" (a ratio), "ms", "MB"

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit

    def shown(self) -> str:
        return "unknown (profile missing)" if self.value is None else _with_unit(self.value, self.unit)

    def as_json(self) -> dict[str, Any]:
        value = None if self.value is None else round(self.value, 3)
        return {"goal": self.text, "value": value, "limit": self.limit, "unit": self.unit, "met": self.met}


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One scenario's figures in seconds: osless, per-target Dockerfiles, the bare steps in warm
    containers (None: not measured, or nothing needs doing at all)."""

    group: str  # synthetic, real, scale
    name: str
    osless: OslessRun
    baseline: float | None = None
    lower_bound: float | None = None
    goals: tuple[Goal, ...] = ()
    extra: Mapping[str, float | int] = field(default_factory=dict)  # figures of this scenario only
    notes: tuple[str, ...] = ()
    load_average: float = 0.0  # the machine's, before it started: other work skews every figure

    def ratios(self) -> dict[str, float | None]:
        return {
            "osless_over_baseline": ratio(self.osless.seconds, self.baseline),
            "osless_over_lower_bound": ratio(self.osless.seconds, self.lower_bound),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "scenario": self.name,
            "osless": self.osless.as_json(),
            "baseline": _rounded(self.baseline),
            "lower_bound": _rounded(self.lower_bound),
            **{name: _rounded(value, 3) for name, value in self.ratios().items()},
            **self.extra,
            "goals": [goal.as_json() for goal in self.goals],
            "notes": list(self.notes),
            "load_average_before": round(self.load_average, 2),
        }


def table(scenarios: Sequence[Scenario]) -> str:
    """One group's scenarios, a line each: the three ways of building, the ratios, and from osless's
    profile where its time went (compile, smoke tests and those under qemu, its own stages; summed
    over targets, which overlap), and its peak memory."""
    header = (
        "scenario", "osless s", "Dockerfiles s", "lower bound s", "/Dockerfiles", "/lower bound",
        "compile s", "smoke s", "qemu s", "osless own s", "own ms/target", "peak RSS MB",
    )  # fmt: skip
    lines: list[tuple[str, ...]] = [header]
    for scenario in scenarios:
        ratios = scenario.ratios()
        profile = scenario.osless.profile
        where = (
            (
                profile.compile,
                profile.native_smoke + profile.emulated_smoke,
                profile.emulated_smoke,
                profile.osless,
                profile.osless_per_target_ms,
            )
            if profile
            else (None, None, None, None, None)
        )
        lines.append(
            (
                scenario.name,
                _number(scenario.osless.seconds, 1),
                _number(scenario.baseline, 1),
                _number(scenario.lower_bound, 1),
                _number(ratios["osless_over_baseline"], 2, "x"),
                _number(ratios["osless_over_lower_bound"], 2, "x"),
                *(_number(seconds, 1) for seconds in where[:4]),
                _number(where[4], 0),
                _number(scenario.osless.peak_rss_bytes / MB, 0),
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rows = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    missing = [scenario.name for scenario in scenarios if scenario.osless.profile is None]
    if missing:
        rows.append(f"profile missing in report.json (no compile/smoke/own figures): {', '.join(missing)}")
    rows += [f"{scenario.name}: {note}" for scenario in scenarios for note in scenario.notes]
    return "\n".join(rows)


def goals_list(scenarios: Sequence[Scenario]) -> str:
    """Every goal of the run, met or not, with the figure it was judged on."""
    marks = {True: "met    ", False: "NOT MET", None: "unknown"}
    return "\n".join(
        f"  {marks[goal.met]}  {scenario.group} {scenario.name}: {goal.text}: {goal.shown()}"
        for scenario in scenarios
        for goal in scenario.goals
    )


def _with_unit(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.0f} {unit}" if unit in ("ms", "MB") else f"{value:.2f} {unit}"


def _number(value: float | None, digits: int, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)

"""Where a run's time went: the report's `profile` (docs/report.md), made from the run report, the
run's phases and the process's peak memory; `osless build --profile` prints it (`cli.render`).

The split that matters is whose time it is: the compilers' (the build steps), the emulator's (smoke
tests under qemu), the programs' own (native smoke tests), and osless's (every other stage of a
target); waiting for a slot is nobody's work. Per-target seconds overlap (targets run at once), so
their sums are work done, not wall time: the phases are the wall time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from orchestrator.outputs.report import Profile, RunReport, TargetReport

# A target's `seconds` keys, in the order its stages run.
STAGES = (
    "queued",
    "cache",
    "fetch",
    "builder",
    "workspace",
    "build",
    "copy-out",
    "verify",
    "package",
    "load",
    "smoke-queued",
    "smoke",
)
PHASES = ("startup", "toolchains", "sources", "targets", "layouts", "upload", "report")
WAITS = frozenset({"queued", "smoke-queued"})  # waiting for a build or smoke slot
COMPILE = "build"  # the build steps
SMOKE = "smoke"
NOT_OSLESS = WAITS | {COMPILE, SMOKE}  # the stages whose time is not osless's own work


def run_profile(report: RunReport, *, phases: Mapping[str, float], peak_rss: int | None) -> Profile:
    """The run's profile; `phases` are consecutive, from the process's start to the report."""
    targets = report.targets
    built = sum(target.jobs is not None for target in targets)
    osless = sum(own_seconds(target) for target in targets)
    return Profile(
        wall=round(sum(phases.values()), 2),
        phases={name: round(seconds, 2) for name, seconds in phases.items()},
        targets=len(targets),
        built=built,
        compile=_sum(target.seconds.get(COMPILE, 0.0) for target in targets),
        emulated_smoke=_sum(target.seconds.get(SMOKE, 0.0) for target in targets if _emulated(target)),
        native_smoke=_sum(target.seconds.get(SMOKE, 0.0) for target in targets if not _emulated(target)),
        osless=round(osless, 2),
        osless_per_target_ms=round(osless * 1000 / built) if built else None,
        peak_rss_bytes=peak_rss,
    )


def own_seconds(target: TargetReport) -> float:
    """osless's own seconds of a target: its stages but the compile, the smoke test and the waits."""
    return sum(s for name, s in target.seconds.items() if name not in NOT_OSLESS)


def work_seconds(target: TargetReport) -> float:
    """A target's seconds of work: every stage but the waits for a slot."""
    return sum(s for name, s in target.seconds.items() if name not in WAITS)


def stage_totals(targets: Sequence[TargetReport]) -> dict[str, float]:
    """Each stage's seconds summed over the targets, in the order stages run (those no target went
    through left out)."""
    totals = {name: _sum(target.seconds.get(name, 0.0) for target in targets) for name in STAGES}
    return {name: seconds for name, seconds in totals.items() if any(name in t.seconds for t in targets)}


def breakdown(target: TargetReport) -> list[tuple[str, float]]:
    """A target's stages and their seconds, in the order they run (a stage it did not go through is
    left out; a key this version does not know, from an older report, comes last)."""
    known = [(name, target.seconds[name]) for name in STAGES if name in target.seconds]
    return known + [(name, s) for name, s in target.seconds.items() if name not in STAGES]


def slowest(targets: Sequence[TargetReport], count: int = 5) -> list[TargetReport]:
    """The targets that took the longest to work on (waits left out), longest first."""
    return sorted(targets, key=work_seconds, reverse=True)[:count]


def process_seconds() -> float:
    """Seconds since this process started: its start time in /proc/self/stat (clock ticks since boot)
    against the boot clock; 0.0 when /proc cannot tell (the phase is then unknown, not wrong)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rpartition(")")[2].split()[19])  # field 22; the name may hold spaces
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"))


def peak_rss() -> int | None:
    """This process's peak resident set size in bytes: VmHWM in /proc/self/status (ru_maxrss keeps
    the RSS the parent had when it forked, across exec); None when /proc cannot tell."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _emulated(target: TargetReport) -> bool:
    return target.smoke is not None and target.smoke.emulated


def _sum(values: Iterable[float]) -> float:
    return round(sum(values, 0.0), 2)

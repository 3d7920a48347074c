"""Scale: many synthetic services (synthetic.py's, 100 by default) x the platforms, osless alone, cold
and with nothing changed: how its own overhead and memory grow with the number of targets. Neither the
Dockerfiles nor the lower bound are measured at this size (their figures would only repeat the
synthetic group's per target, at many times its duration)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.common import Run, remove_project_volumes, run_osless
from bench.figures import MB, Goal, Scenario, rebuilt

NO_BASELINE = "osless alone at this scale: no Dockerfiles, no lower bound"


def scale(bench: Run, workspace: Path) -> list[Scenario]:
    """cold (goals: osless's own overhead per target, its peak memory), then no-change (its seconds)."""
    remove_project_volumes(workspace)
    load = os.getloadavg()[0]
    cold = run_osless(bench, workspace, "scale-cold")
    per_target = cold.profile.osless_per_target_ms if cold.profile else None
    cold_scenario = Scenario(
        group="scale",
        name="cold",
        osless=cold,
        goals=(
            Goal(text="osless's own overhead per target <= 150 ms", value=per_target, limit=150, unit="ms"),
            Goal(text="peak RSS of osless <= 300 MB", value=cold.peak_rss_bytes / MB, limit=300, unit="MB"),
        ),
        notes=(NO_BASELINE,),
        load_average=load,
    )
    load = os.getloadavg()[0]
    again = run_osless(bench, workspace, "scale-no-change")
    return [
        cold_scenario,
        Scenario(
            group="scale",
            name="no-change",
            osless=again,
            goals=(Goal(text="nothing changed <= 2.5 s", value=again.seconds, limit=2.5, unit="s"),),
            notes=rebuilt(again, 0),
            load_average=load,
        ),
    ]

"""What several sections of a recipe read alike: a platform name, checked against the known platforms
(a toolchain's platforms, a service's, a smoke check's per-platform expectations), and a `limits` table
(`[build]` and `[smoke]`).
"""

from __future__ import annotations

from orchestrator.errors import did_you_mean
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.convert import as_cpus, as_memory, as_pids, hints
from orchestrator.recipe.model import Limits
from orchestrator.recipe.reader import RecipeFile, Table


def known_platform(file: RecipeFile, key: tuple[str, ...], platform: str) -> bool:
    if platform in PLATFORMS:
        return True
    known = f"known: {', '.join(PLATFORMS)}"
    file.problem(key, f"unknown platform {platform!r}", hints(did_you_mean(platform, PLATFORMS), known))
    return False


def read_limits(table: Table, default: Limits) -> Limits:
    """`limits = { memory = "8GiB", pids = 2048, cpus = 1.5 }`: any subset, the rest from `default`."""
    limits = table.section("limits")
    return Limits(
        memory=limits.get("memory", as_memory, default.memory),
        pids=limits.get("pids", as_pids, default.pids),
        cpus=limits.get("cpus", as_cpus, default.cpus),
    )

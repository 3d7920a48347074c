"""The CI build matrix (`osless matrix`): the project's targets as jobs for separate machines.

Each job names the `osless build` arguments that build its part and the runner that fits it. The
unit of a job is chosen with `by`:

- "platform": one job per platform (`--platform P`), every service that targets it;
- "service": one job per service (`SERVICE`), all its platforms;
- "target": one job per (service, platform) (`SERVICE --platform P`).

`max_jobs` caps the number of jobs. Platforms and services are then grouped, largest first into the
job with the fewest targets so far, and a group is still plain arguments (`--platform A --platform B`,
`S1 S2`); targets are grouped as shards (`--shard K/N`, see `pipeline.targets.select_shard`), since a set of
arbitrary targets cannot be named by services and platforms. Jobs together build every target once.

A job whose targets are all linux/arm64 runs on a native arm64 runner; every other job on an amd64
runner, with qemu for foreign smoke tests. Everything is a function of the recipes alone: the same
recipes give the same matrix, in the same order.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.pipeline.targets import Target, select_shard
from orchestrator.platforms import PLATFORMS

By = Literal["platform", "service", "target"]
BY: tuple[By, ...] = ("platform", "service", "target")
RUNNER_AMD64 = "ubuntu-24.04"  # GitHub-hosted amd64; foreign platforms under qemu-user
RUNNER_ARM64 = "ubuntu-24.04-arm"  # GitHub-hosted native arm64
GITHUB_MAX_JOBS = 256  # GitHub Actions' limit of jobs per matrix


@dataclass(frozen=True, kw_only=True)
class Job:
    """One matrix entry: a part of the targets, how to build it and where."""

    name: str  # for people: the job's title
    id: str  # for file and artifact names: letters, digits, ".", "_", "-", "+"
    args: tuple[str, ...]  # `osless build` arguments
    runner: str
    targets: tuple[str, ...]  # "service platform", by service, then platform (table order)
    shard: str | None = None  # "K/N" when the job is a shard


@dataclass(frozen=True, kw_only=True)
class _Unit:
    """What one job builds when there are no more units than jobs."""

    name: str
    id: str
    args: tuple[str, ...]
    targets: tuple[Target, ...]


def runner_for(targets: Sequence[Target]) -> str:
    """The native arm64 runner for arm64-only work, the amd64 runner (with emulation) for the rest."""
    arm64 = bool(targets) and all(t.platform.name == "linux/arm64" for t in targets)
    return RUNNER_ARM64 if arm64 else RUNNER_AMD64


def jobs(targets: Sequence[Target], by: By = "platform", max_jobs: int | None = None) -> list[Job]:
    """The matrix for these targets (normally every target of the project), at most max_jobs entries."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, not {by!r}")
    if max_jobs is not None and max_jobs < 1:
        raise ValueError("max_jobs must be 1 or more")
    units = _units(targets, by)
    if max_jobs is None or len(units) <= max_jobs:
        return [_job(unit.name, unit.id, unit.args, unit.targets) for unit in units]
    if by == "target":
        shards = [f"{k}/{max_jobs}" for k in range(1, max_jobs + 1)]
        return [
            _job(f"shard {shard}", f"shard-{k}-of-{max_jobs}", ("--shard", shard), part, shard=shard)
            for k, shard in enumerate(shards, 1)
            if (part := select_shard(targets, k, max_jobs))
        ]
    groups = _pack(units, max_jobs)
    return [_grouped(group, by, k, len(groups)) for k, group in enumerate(groups, 1)]


def github_matrix(matrix: Sequence[Job]) -> dict[str, Any]:
    """`{"include": [...]}` for a GitHub Actions `strategy.matrix`: name, id, args (one shell-quoted
    string), runner, and shard for shard jobs."""
    return {
        "include": [
            {
                "name": job.name,
                "id": job.id,
                "args": shlex.join(job.args),
                "runner": job.runner,
                **({"shard": job.shard} if job.shard else {}),
            }
            for job in matrix
        ]
    }


def document(matrix: Sequence[Job], by: By, max_jobs: int | None) -> dict[str, Any]:
    """The matrix for people and scripts: every job with its arguments, runner and targets."""
    return {
        "by": by,
        "max_jobs": max_jobs,
        "jobs": [
            {
                "name": job.name,
                "id": job.id,
                "args": list(job.args),
                "command": shlex.join(("osless", "build", *job.args)),
                "runner": job.runner,
                "shard": job.shard,
                "targets": list(job.targets),
            }
            for job in matrix
        ],
        "targets": sum(len(job.targets) for job in matrix),
    }


def _job(
    name: str, id_: str, args: tuple[str, ...], targets: Sequence[Target], *, shard: str | None = None
) -> Job:
    ordered = sorted(targets, key=_target_order)
    return Job(
        name=name,
        id=id_,
        args=args,
        runner=runner_for(ordered),
        targets=tuple(t.name for t in ordered),
        shard=shard,
    )


def _target_order(target: Target) -> tuple[str, int]:
    return (target.service.name, _platform_index(target.platform.name))


def _platform_index(name: str) -> int:
    return list(PLATFORMS).index(name)


def _units(targets: Sequence[Target], by: By) -> list[_Unit]:
    """One unit per platform (table order), service (name order) or target (service, then platform)."""
    if by == "target":
        return [
            _Unit(
                name=t.name,
                id=f"{t.service.name}-{t.platform.slug}",
                args=(t.service.name, "--platform", t.platform.name),
                targets=(t,),
            )
            for t in sorted(targets, key=_target_order)
        ]
    if by == "platform":
        names = sorted({t.platform.name for t in targets}, key=_platform_index)
        return [
            _Unit(
                name=name,
                id=PLATFORMS[name].slug,
                args=("--platform", name),
                targets=tuple(t for t in targets if t.platform.name == name),
            )
            for name in names
        ]
    return [
        _Unit(name=name, id=name, args=(name,), targets=tuple(t for t in targets if t.service.name == name))
        for name in sorted({t.service.name for t in targets})
    ]


def _pack(units: Sequence[_Unit], bins: int) -> list[list[_Unit]]:
    """Units into `bins` groups of similar target counts: largest first, each into the group with the
    fewest targets so far (the first such); groups keep unit order and are ordered by their first unit."""
    position = {unit.id: index for index, unit in enumerate(units)}
    groups: list[list[_Unit]] = [[] for _ in range(bins)]
    sizes = [0] * bins
    for unit in sorted(units, key=lambda u: (-len(u.targets), position[u.id])):
        smallest = min(range(bins), key=lambda k: (sizes[k], k))
        groups[smallest].append(unit)
        sizes[smallest] += len(unit.targets)
    for group in groups:
        group.sort(key=lambda u: position[u.id])
    return sorted((g for g in groups if g), key=lambda g: position[g[0].id])


def _grouped(group: Sequence[_Unit], by: By, number: int, count: int) -> Job:
    """A job over several platforms or services, still named by plain `osless build` arguments."""
    if len(group) == 1:
        (unit,) = group
        return _job(unit.name, unit.id, unit.args, unit.targets)
    names = [unit.name for unit in group]
    shown = ", ".join(names) if len(names) <= 3 else f"{names[0]} … {names[-1]} ({len(names)} {by}s)"
    args = tuple(arg for unit in group for arg in unit.args)
    targets = [t for unit in group for t in unit.targets]
    return _job(f"{number}/{count}: {shown}", f"{by}s-{number}-of-{count}", args, targets)

"""Which targets a run builds: by name and platform, by what changed since a git revision, by shard."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.bootstrap.lock import lock_file_name
from orchestrator.errors import TargetsFailed, UsageError, did_you_mean, targets_failed
from orchestrator.pipeline.provenance import changed_files
from orchestrator.platforms import PLATFORMS, Platform
from orchestrator.recipe.model import Project, Service, Toolchain


@dataclass(frozen=True, kw_only=True)
class Target:
    """One (service, platform) pair: the unit that is built, verified, packaged and smoke-tested."""

    service: Service
    platform: Platform

    @property
    def name(self) -> str:
        return f"{self.service.name} {self.platform.name}"

    def output_dir(self, out_root: Path) -> Path:
        return out_root / self.service.name / self.platform.slug


def changed_services(project: Project, ref: str) -> list[str]:
    """Services whose recipe, source or toolchain recipe changed since the git revision `ref`."""
    changed = changed_files(project.root, ref)
    if changed is None:
        raise UsageError(
            f"git cannot compare with {ref!r}", hint="give a commit, branch or tag of this repository"
        )

    def touched(path: Path) -> bool:
        return any(file == path or file.is_relative_to(path) for file in changed)

    return sorted(
        name
        for name, service in project.services.items()
        if touched(service.file)
        or touched(service.source)
        or any(touched(path) for path in _toolchain_files(project.toolchains[service.toolchain]))
    )


def _toolchain_files(toolchain: Toolchain | None) -> Iterator[Path]:
    """The recipe and lock of the toolchain and of each toolchain it extends: what shapes its image."""
    while toolchain is not None:
        yield toolchain.file
        yield toolchain.file.parent / lock_file_name(toolchain.name)
        toolchain = toolchain.base


def select_targets(project: Project, services: Sequence[str], platforms: Sequence[str]) -> list[Target]:
    """The targets a command line asks for; unknown names are usage errors with a suggestion."""
    for name in services:
        if name not in project.services:
            suggestion = did_you_mean(name, project.services)
            raise UsageError(
                f"no service named {name!r}" + (f" ({suggestion})" if suggestion else ""),
                hint="`osless list` shows the services",
            )
    for name in platforms:
        if name not in PLATFORMS:
            suggestion = did_you_mean(name, PLATFORMS)
            raise UsageError(
                f"unknown platform {name!r}" + (f" ({suggestion})" if suggestion else ""),
                hint=f"known platforms: {', '.join(PLATFORMS)}",
            )
    chosen = [project.services[name] for name in services] or list(project.services.values())
    targets = [
        Target(service=service, platform=PLATFORMS[platform])
        for service in chosen
        for platform in service.platforms
        if not platforms or platform in platforms
    ]
    if not targets:
        raise UsageError(f"nothing to build: {_reasons(skipped_platforms(project, services, platforms))}")
    return targets


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A platform a selected service is not built for, and why."""

    service: str
    platform: str
    reason: str


def skipped_platforms(project: Project, services: Sequence[str], platforms: Sequence[str]) -> list[Skipped]:
    """What a selection leaves out, in service and platform table order: with platforms given, each one
    a selected service does not build for; without, those `platforms = ["all"]` left out."""
    chosen = [project.services[name] for name in services] or list(project.services.values())
    return [
        Skipped(service=service.name, platform=platform, reason=why_not_built(service, platform))
        for service in chosen
        for platform in PLATFORMS
        if platform not in service.platforms and platform in (platforms or service.unsupported)
    ]


def why_not_built(service: Service, platform: str) -> str:
    """Why a service has no target for a platform: its toolchain, or its recipe's platform list."""
    if platform in service.unsupported:
        return service.unsupported[platform]
    return f"not among its platforms ({service.file.name}: {', '.join(service.platforms) or 'none'})"


def _reasons(skipped: Sequence[Skipped], shown: int = 4) -> str:
    """'S does not build for P: why; ...', the first few (the bare fact when no reason is known: a
    service whose `exclude_platforms` left it none)."""
    lines = [f"{s.service} does not build for {s.platform}: {s.reason}" for s in skipped[:shown]]
    more = f"; and {len(skipped) - shown} more (see `osless list`)" if len(skipped) > shown else ""
    return "; ".join(lines) + more if lines else "no selected service targets the selected platforms"


def unbuildable_only(targets: Sequence[Target]) -> TargetsFailed | None:
    """The error when every selected target belongs to a service that cannot be built (its source is
    missing): nothing would start, so nothing does. None when some target can be built."""
    if any(t.service.unbuildable is None for t in targets):
        return None
    reasons = {t.service.name: t.service.unbuildable for t in targets}
    message = "; ".join(f"{name} cannot be built: {reason}" for name, reason in reasons.items())
    return targets_failed(message, ["build"])


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard K/N` as (K, N), 1 <= K <= N; anything else is a usage error."""
    match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(
            f"--shard {text!r}: expected K/N, a shard number K from 1 to the shard count N",
            hint="e.g. --shard 2/4 builds the second of four parts; the N parts build everything once",
        )
    return int(match[1]), int(match[2])


def shard_key(target: Target) -> tuple[str, str, int]:
    """Where a target falls in the shard order: by toolchain, then service, then platform table order."""
    return (target.service.toolchain, target.service.name, list(PLATFORMS).index(target.platform.name))


def select_shard(targets: Sequence[Target], shard: int, shards: int) -> list[Target]:
    """Shard K of N: the targets in shard order, cut into N consecutive runs whose sizes differ by at
    most one, and run K of them (in the given order).

    The same targets and N always give the same shards; together they hold every target exactly once.
    Consecutive runs keep a toolchain's targets, and a service's platforms, on as few shards as
    possible: a shard bootstraps only the toolchains it uses, and at most N-1 services are split.
    """
    ordered = sorted(targets, key=shard_key)
    chosen = {t.name for t in ordered[(shard - 1) * len(ordered) // shards : shard * len(ordered) // shards]}
    return [t for t in targets if t.name in chosen]

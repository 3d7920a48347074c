"""The run report: what happened to every target and image, and its JSON form (out/report.json).

The JSON report's fields are documented in docs/report.md; bump REPORT_SCHEMA when they change shape.
The files made from it are listed in `outputs.writers`; its tables for people are in `cli.render`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.outputs.atomic import write_atomic
from orchestrator.stages.build import StepTime
from orchestrator.stages.fetch import FetchInfo
from orchestrator.stages.smoke import SmokeResult

REPORT_SCHEMA = 1


class Status(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class BinaryInfo:
    path: str
    size: int
    sha256: str
    linkage: str | None
    platform: str | None  # what the ELF header identifies


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    tag: str
    image_id: str  # config digest: what `docker images` shows
    manifest_digest: str
    size: int  # bytes of config, layers and manifest
    on_debian_slim: int | None = None  # bytes the same binary would take on a Debian slim base image


@dataclass(frozen=True, kw_only=True)
class TargetReport:
    """One (service, platform): how far it got, why it stopped, and what it produced."""

    service: str
    platform: str
    status: Status
    failed_stage: str | None
    reason: str | None
    toolchain_image: str | None
    binary: BinaryInfo | None
    verify_findings: list[dict[str, Any]]
    image: ImageInfo | None
    smoke: SmokeResult | None
    seconds: dict[str, float]  # per stage, in this run (docs/report.md; outputs.profile.STAGES)
    log: str | None
    cached: bool = False  # reused from an earlier run whose inputs were the same
    engine: str = "default"  # the engine that built and ran it: "default" or the platform given --engine
    fetch: FetchInfo | None = None  # the fetch step before its build, when the recipe has [fetch]
    # Where its result comes from: "built" in this run, "local-cache" (out/'s result.json) or
    # "remote-cache" (an entry of a --cache-from registry, pipeline/remote_cache.py).
    result_from: str = "built"
    notes: list[str] = dataclasses.field(default_factory=list)  # e.g. a cache entry ignored, and why
    steps: tuple[StepTime, ...] = ()  # each step of its build in this run, as build.log names it
    jobs: int | None = None  # the `{JOBS}` its build in this run was given; None: not built in this run

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetReport:
        """Read back what `to_jsonable` wrote (a cached result), marked as cached; a result written before
        a field existed gets its default."""

        def nested(kind: Any, value: dict[str, Any] | None) -> Any:
            return kind(**value) if value is not None else None

        return cls(
            **{
                **data,
                "status": Status(data["status"]),
                "binary": nested(BinaryInfo, data["binary"]),
                "image": nested(ImageInfo, data["image"]),
                "fetch": nested(FetchInfo, data.get("fetch")),
                "smoke": SmokeResult.from_json(data["smoke"]) if data["smoke"] is not None else None,
                "steps": tuple(StepTime(**step) for step in data.get("steps", ())),
                "cached": True,
            }
        )


@dataclass(frozen=True, kw_only=True)
class ServiceImage:
    service: str
    layout: str  # OCI image layout directory
    index_digest: str
    platforms: list[str]
    sbom: str | None = None  # CycloneDX JSON, also a blob of the layout named by index annotations


@dataclass(frozen=True, kw_only=True)
class Unsupported:
    """A platform a selected service is not built for, and why: one `--platform` asked for (its toolchain
    cannot target it, a placeholder is undefined there, or its recipe does not list it), or, without
    `--platform`, one that `platforms = ["all"]` left out."""

    service: str
    platform: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Profile:
    """Where a run's time went (`outputs.profile.run_profile`; `osless build --profile` prints it)."""

    wall: float  # seconds from the process's start to the report: the sum of `phases`
    phases: dict[str, float]  # startup, toolchains, sources, targets, layouts, upload, report
    targets: int
    built: int  # targets whose build ran in this run
    compile: float  # the build steps' seconds, summed over targets (they overlap)
    emulated_smoke: float  # smoke tests under qemu
    native_smoke: float
    osless: float  # osless's own per-target stages: every other stage but the waits for a slot
    osless_per_target_ms: float | None  # `osless` per built target; None when none was built
    peak_rss_bytes: int | None  # this process's peak resident memory (VmHWM); None: unknown


@dataclass(frozen=True, kw_only=True)
class RunReport:
    osless_version: str
    engine_version: str
    started: str
    seconds: float
    toolchains: dict[str, str]  # name -> image id
    targets: list[TargetReport]
    images: list[ServiceImage]
    unsupported: list[Unsupported]
    # name -> `REPO@sha256:...` for a toolchain whose recipe names a registry image (a `:tag` resolved)
    toolchain_digests: dict[str, str] = dataclasses.field(default_factory=dict)
    # name -> its lock file and digest (`recipes/toolchains/gcc.lock sha256:...`) for a locked toolchain:
    # the exact package versions its image was bootstrapped from (the SBOMs list them)
    toolchain_locks: dict[str, str] = dataclasses.field(default_factory=dict)
    profile: Profile | None = None  # None in a report merged by `osless assemble`

    @property
    def failed(self) -> list[TargetReport]:
        return [t for t in self.targets if t.status is not Status.PASSED]


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and paths as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def json_bytes(value: Any) -> bytes:
    """`value` as the indented, key-sorted JSON document every out/ file uses."""
    return (json.dumps(to_jsonable(value), indent=2, sort_keys=True) + "\n").encode()


def write_json(path: Path, value: Any) -> None:
    """Write atomically, so a crash never leaves a half-written document that looks valid."""
    write_atomic(path, json_bytes(value))


def report_json(report: RunReport) -> bytes:
    """out/report.json: the report with its schema version and counts."""
    document = {
        "schema": REPORT_SCHEMA,
        **to_jsonable(report),
        "summary": {"targets": len(report.targets), "failed": len(report.failed)},
    }
    return json_bytes(document)

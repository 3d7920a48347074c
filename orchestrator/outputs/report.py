"""Stage 6: what happened, for people (a summary table) and for machines (out/report.json).

The JSON report's fields are documented in docs/report.md; bump REPORT_SCHEMA when they change shape.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator.outputs import atomic
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
    seconds: dict[str, float]  # per stage
    log: str | None
    cached: bool = False  # reused from an earlier run whose inputs were the same
    engine: str = "default"  # the engine that built and ran it: "default" or the platform given --engine

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetReport:
        """Read back what `to_jsonable` wrote (a cached result), marked as cached."""

        def nested(kind: Any, value: dict[str, Any] | None) -> Any:
            return kind(**value) if value is not None else None

        return cls(
            **{
                **data,
                "status": Status(data["status"]),
                "binary": nested(BinaryInfo, data["binary"]),
                "image": nested(ImageInfo, data["image"]),
                "smoke": nested(SmokeResult, data["smoke"]),
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
    """A platform that `platforms = ["all"]` left out for a selected service, and why."""

    service: str
    platform: str
    reason: str


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


def write_atomic(path: Path, data: bytes) -> None:
    """The one writer of files in out/: the old file or the whole new one, never a part (temporary
    file in the same directory, fsync, rename; removed on failure; an OSError names `path`)."""
    atomic.write_atomic(path, data)


def write_json(path: Path, value: Any) -> None:
    """Write atomically, so a crash never leaves a half-written report that looks valid."""
    write_atomic(path, (json.dumps(to_jsonable(value), indent=2, sort_keys=True) + "\n").encode())


def write_report(report: RunReport, out_root: Path) -> Path:
    path = out_root / "report.json"
    document = {
        "schema": REPORT_SCHEMA,
        **to_jsonable(report),
        "summary": {"targets": len(report.targets), "failed": len(report.failed)},
    }
    write_json(path, document)
    return path


def summary_table(targets: Sequence[TargetReport]) -> Table:
    """Service, platform, sizes, linkage, smoke result and time, one row per target."""
    table = Table(title="osless build", title_justify="left")
    for column in ("service", "platform", "binary", "image", "on slim", "linkage", "smoke", "time", "result"):
        table.add_column(
            column, justify="right" if column in {"binary", "image", "on slim", "time"} else "left"
        )
    for target in targets:
        smoke = "-"
        if target.smoke:
            smoke = ("ok" if target.smoke.passed else "FAIL") + (" (qemu)" if target.smoke.emulated else "")
        result = "[green]passed[/]" if target.status is Status.PASSED else f"[red]{target.status.value}[/]"
        if target.cached:
            result += " [dim](cached)[/]"
        if target.failed_stage:
            result += f" [red]at {target.failed_stage}[/]"
        table.add_row(
            Text(target.service),  # user text: never markup
            Text(target.platform),
            human_size(target.binary.size) if target.binary else "-",
            human_size(target.image.size) if target.image else "-",
            human_size(target.image.on_debian_slim) if target.image and target.image.on_debian_slim else "-",
            target.binary.linkage or "-" if target.binary else "-",
            smoke,
            f"{sum(target.seconds.values()):.1f}s",
            result,
        )
    return table


def print_failures(console: Console, targets: Sequence[TargetReport]) -> None:
    """Each failure's reason, and the stdout diff for smoke mismatches, below the table."""
    for target in targets:
        if target.status is Status.PASSED:
            continue
        where = escape(f"{target.service} {target.platform}")
        reason = escape(target.reason or "")
        console.print(f"[red]✗ {where}[/] {target.failed_stage or ''}: {reason}", highlight=False)
        if target.smoke and target.smoke.diff:
            console.print(target.smoke.diff, markup=False, highlight=False)


def human_size(size: int) -> str:
    """Bytes as people read them: 512 B, 17.4 KiB, 1.4 MiB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024**2:.1f} MiB"

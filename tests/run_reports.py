"""Run reports for tests of what is made from them (junit.xml, summary.md, annotations, the CLI's end)."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.outputs.report import BinaryInfo, ImageInfo, RunReport, Status, TargetReport
from orchestrator.stages.smoke import SmokeResult

DIFF = "--- expected stdout\n+++ actual stdout\n@@ -1 +1 @@\n-hello\n+hi\n"


def target(service: str, platform: str = "linux/amd64", **changes: object) -> TargetReport:
    passed = TargetReport(
        service=service,
        platform=platform,
        status=Status.PASSED,
        failed_stage=None,
        reason=None,
        toolchain_image="sha256:" + "1" * 64,
        binary=BinaryInfo(
            path="/out/bin", size=800_000, sha256="2" * 64, linkage="static", platform=platform
        ),
        verify_findings=[],
        image=ImageInfo(tag=f"{service}:latest", image_id="i", manifest_digest="m", size=820_000),
        smoke=SmokeResult(
            passed=True,
            emulated=False,
            exit_code=0,
            stdout="hi\n",
            stderr="",
            seconds=0.4,
            reason=None,
            diff=None,
        ),
        seconds={"build": 2.5, "verify": 0.25, "package": 0.5, "smoke": 0.75},
        log="/out/build.log",
    )
    return replace(passed, **changes)  # type: ignore[arg-type]


def failed_at_build() -> TargetReport:
    return target(
        "broken",
        status=Status.FAILED,
        failed_stage="build",
        reason="hello.c:1: error: 'missing' undeclared",
        binary=None,
        image=None,
        smoke=None,
        seconds={"build": 1.5},
    )


def failed_at_smoke() -> TargetReport:
    smoke = SmokeResult(
        passed=False,
        emulated=True,
        exit_code=3,
        stdout="hi\n",
        stderr="warning <&> \x1b[31m\n",
        seconds=0.5,
        reason="exit code 3, expected 0; stdout differs",
        diff=DIFF,
    )
    return target(
        "mismatch",
        "linux/arm64",
        status=Status.FAILED,
        failed_stage="smoke",
        reason=smoke.reason,
        smoke=smoke,
    )


def report(*targets: TargetReport) -> RunReport:
    return RunReport(
        osless_version="0.1.0",
        engine_version="26.1.5",
        started="2025-01-02T03:04:05Z",
        seconds=12.5,
        toolchains={},
        targets=list(targets),
        images=[],
        unsupported=[],
    )

"""Stage 5: run the packaged image the way production would, locked down, and compare its output.

Foreign platforms run under qemu-user through binfmt_misc; when the handler is missing the result says
so (and how to fix it) instead of reporting the program as broken.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator import binfmt
from orchestrator.engine import ContainerResult, ContainerSpec, Engine
from orchestrator.errors import EngineError
from orchestrator.platforms import Platform, is_emulated
from orchestrator.stages.recipe import Service

# How an exec failure of the emulator shows up: the program never started.
EMULATOR_FAILURE_MARKERS = ("exec format error", "qemu:", "no such file or directory")


@dataclass(frozen=True, kw_only=True)
class SmokeResult:
    """The outcome of one smoke run, with the evidence."""

    passed: bool
    emulated: bool
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    reason: str | None  # one line, when not passed
    diff: str | None  # unified diff of expected vs actual stdout, when they differ


def smoke(engine: Engine, service: Service, platform: Platform, image: str) -> SmokeResult:
    """Run the image once with the recipe's arguments and judge stdout and exit code."""
    emulated = is_emulated(platform)
    if emulated:
        missing = binfmt.problem(platform)
        if missing:
            return SmokeResult(
                passed=False,
                emulated=True,
                exit_code=None,
                stdout="",
                stderr="",
                seconds=0.0,
                reason=f"cannot run {platform.name} here: {missing}",
                diff=None,
            )
    started = time.monotonic()
    try:
        result = run_image(engine, service, platform, image, service.smoke.args)
    except EngineError as error:
        # The runtime refused to start the program: no output to judge, the reason is the error.
        what = f"qemu-{platform.qemu} could not start it" if emulated else "the container did not start"
        return SmokeResult(
            passed=False,
            emulated=emulated,
            exit_code=None,
            stdout="",
            stderr="",
            seconds=time.monotonic() - started,
            reason=f"{what}: {error.message}",
            diff=None,
        )
    seconds = time.monotonic() - started
    stdout = result.stdout.decode(errors="replace")
    stderr = result.stderr.decode(errors="replace")
    reason, diff = judge(service, stdout, result.exit_code, result.timed_out)
    if reason and emulated and _looks_like_emulator_failure(stderr):
        reason = f"the emulator could not start the program (qemu-{platform.qemu}): {stderr.strip()[:200]}"
    return SmokeResult(
        passed=reason is None,
        emulated=emulated,
        exit_code=result.exit_code,
        stdout=stdout,
        stderr=stderr,
        seconds=seconds,
        reason=reason,
        diff=diff,
    )


def run_image(
    engine: Engine, service: Service, platform: Platform, image: str, args: Sequence[str]
) -> ContainerResult:
    """Run the image as production would: no network, read-only root, no capabilities, the recipe's user."""
    return engine.run(
        ContainerSpec(
            image=image,
            command=args,
            role="smoke",
            user=service.image.user,
            platform=platform.name,
            timeout=service.smoke.timeout,
            read_only_root=True,
            drop_privileges=True,
        )
    )


def judge(service: Service, stdout: str, exit_code: int, timed_out: bool) -> tuple[str | None, str | None]:
    """Compare a run with the recipe: (reason, diff), both None when it passed."""
    if timed_out:
        return f"did not finish within {service.smoke.timeout:g}s", None
    expected = service.smoke.stdout
    diff = None if expected is None or stdout == expected else stdout_diff(expected, stdout)
    problems = []
    if exit_code != service.smoke.exit_code:
        problems.append(f"exit code {exit_code}, expected {service.smoke.exit_code}")
    if diff is not None:
        problems.append("stdout differs from the recipe")
    return ("; ".join(problems) or None), diff


def stdout_diff(expected: str, actual: str) -> str:
    """A unified diff that also shows a missing or extra trailing newline."""
    lines = difflib.unified_diff(
        _visible_lines(expected),
        _visible_lines(actual),
        fromfile="expected (recipe)",
        tofile="actual",
        lineterm="",
    )
    return "\n".join(lines)


def _visible_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    else:
        lines[-1] += "  [no newline at end]"
    return lines or ["<empty>"]


def _looks_like_emulator_failure(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in EMULATOR_FAILURE_MARKERS)

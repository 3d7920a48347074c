"""Stage 5: run the packaged image the way production would, locked down, and compare its output.

Foreign platforms run under qemu-user through binfmt_misc; when the handler is missing the result says
so (and how to fix it) instead of reporting the program as broken. The container has no network, no
capabilities, no-new-privileges, a read-only root, the recipe's user (uid 0 only with
`[smoke] allow_root = true`) and the recipe's pids/memory/CPU limits; stdout and stderr are kept up to
1 MiB each, the rest is dropped and the result says so.
"""

from __future__ import annotations

import difflib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.engine import OUTPUT_LIMIT, ContainerResult, ContainerSpec, Engine
from orchestrator.errors import EngineError
from orchestrator.host import binfmt
from orchestrator.platforms import Platform, is_emulated
from orchestrator.recipe.model import Service

# How an exec failure of the emulator shows up: the program never started.
EMULATOR_FAILURE_MARKERS = ("exec format error", "qemu:", "no such file or directory")
TRUNCATED = f"\n[osless: output truncated after {OUTPUT_LIMIT // 1024**2} MiB]\n"
DIFF_LIMIT = 200  # lines of the stdout diff kept in the result
INTERRUPTED = "interrupted: the run was cancelled"


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
            return _not_run(True, f"cannot run {platform.name} here: {missing}", 0.0)
    refused = root_refused(service)
    if refused:
        return _not_run(emulated, refused, 0.0)
    started = time.monotonic()
    try:
        result = run_image(engine, service, platform, image, service.smoke.args)
    except EngineError as error:
        if engine.cancelled:
            return _not_run(emulated, INTERRUPTED, time.monotonic() - started)
        # The runtime refused to start the program: no output to judge, the reason is the error.
        what = f"qemu-{platform.qemu} could not start it" if emulated else "the container did not start"
        return _not_run(emulated, f"{what}: {error.message}", time.monotonic() - started)
    seconds = time.monotonic() - started
    if engine.cancelled:  # killed by Ctrl-C/SIGTERM: its exit code says nothing about the program
        return _not_run(emulated, INTERRUPTED, seconds)
    stdout = result.stdout.decode(errors="replace") + (TRUNCATED if result.stdout_truncated else "")
    stderr = result.stderr.decode(errors="replace") + (TRUNCATED if result.stderr_truncated else "")
    reason, diff = judge(service, stdout, result.exit_code, result.timed_out)
    if reason and emulated and _looks_like_emulator_failure(stderr):
        reason = f"the emulator could not start the program (qemu-{platform.qemu}): {stderr.strip()[:200]}"
    if reason and result.stdout_truncated:
        reason += f" (stdout truncated after {OUTPUT_LIMIT // 1024**2} MiB)"
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
    """Run the image as production would: no network, read-only root, no capabilities, the recipe's user,
    the recipe's limits. Refuses uid 0 unless the recipe allows it (the recipe check does too)."""
    refused = root_refused(service)
    if refused:
        raise EngineError(refused)
    return engine.run(
        ContainerSpec(
            image=image,
            command=args,
            role="smoke",
            user=service.image.user,
            platform=platform.name,
            timeout=service.smoke.timeout,
            limits=service.smoke.limits,
            output_limit=OUTPUT_LIMIT,
        )
    )


def root_refused(service: Service) -> str | None:
    """Why the image may not run as its user: uid 0 (or no user) without `[smoke] allow_root = true`."""
    uid = service.image.user.split(":", 1)[0].strip()
    if (uid in ("", "0", "root") or uid.lstrip("0") == "") and not service.smoke.allow_root:
        return (
            f"refusing to run {service.name} as root (user {service.image.user!r}): "
            "set [smoke] allow_root = true in its recipe to allow it"
        )
    return None


def _not_run(emulated: bool, reason: str, seconds: float) -> SmokeResult:
    """A smoke test whose program did not run (or was stopped by us): no output to judge."""
    return SmokeResult(
        passed=False,
        emulated=emulated,
        exit_code=None,
        stdout="",
        stderr="",
        seconds=seconds,
        reason=reason,
        diff=None,
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
    kept = list(itertools.islice(lines, DIFF_LIMIT + 1))
    if len(kept) > DIFF_LIMIT:
        kept[DIFF_LIMIT:] = [f"[osless: diff truncated after {DIFF_LIMIT} lines]"]
    return "\n".join(line[:1000] for line in kept)


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

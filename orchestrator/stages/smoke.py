"""Stage 5: run the packaged image the way production would, locked down, and judge what it gives.

A service has one or more checks (`[smoke]` or `[[smoke]]`), run in order: each runs the image with its
arguments and stdin, and compares stdout, stderr (exactly, or by a regular expression searched in them)
and the exit code with what the recipe expects on that platform. The target passes only when every check
passes; every check runs, so a report shows all that failed. A check's test files (`files`) go into an
image of its own, the shipped image plus one layer, loaded under a run-private tag and removed after the
run: they never reach the shipped image, and a remote engine gets them like any image.

Foreign platforms run under qemu-user through binfmt_misc; when the handler is missing the result says
so (and how to fix it) instead of reporting the program as broken. The container has no network, no
capabilities, no-new-privileges, a read-only root, the recipe's user (uid 0 only with
`[smoke] allow_root = true`) and the check's pids/memory/CPU limits; stdout and stderr are kept up to
1 MiB each, the rest is dropped and the result says so.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.engine import OUTPUT_LIMIT, ContainerResult, ContainerSpec, Engine
from orchestrator.errors import EngineError
from orchestrator.host import binfmt
from orchestrator.image import oci
from orchestrator.platforms import Platform, is_emulated
from orchestrator.recipe.convert import shown
from orchestrator.recipe.model import SMOKE_FILE_LIMIT, Service, SmokeCheck, SmokeExpect

# How an exec failure of the emulator shows up: the program never started.
EMULATOR_FAILURE_MARKERS = ("exec format error", "qemu:", "no such file or directory")
TRUNCATED = f"\n[osless: output truncated after {OUTPUT_LIMIT // 1024**2} MiB]\n"
DIFF_LIMIT = 200  # lines of an output diff kept in the result
INTERRUPTED = "interrupted: the run was cancelled"
SMOKE_REPOSITORY = "osless-smoke"  # the local repository of the images that carry a check's files


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """The outcome of one check, with the evidence."""

    name: str
    passed: bool
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    reason: str | None  # one line, when not passed
    diff: str | None  # unified diffs of expected vs actual stdout and stderr, when they differ


@dataclass(frozen=True, kw_only=True)
class SmokeResult:
    """The outcome of a target's smoke test: every check's, and in the fields of old the one to look at
    (the first that failed, else the first): its exit code, output and diff, the reason naming each check
    that failed."""

    passed: bool
    emulated: bool
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    reason: str | None  # one line, when not passed
    diff: str | None  # the failed checks' diffs
    checks: tuple[CheckResult, ...] = ()  # in the recipe's order; none when no check could run

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SmokeResult:
        """Read back what `to_jsonable` wrote."""
        checks = tuple(CheckResult(**check) for check in data.get("checks", ()))
        return cls(**{**data, "checks": checks})


def smoke(
    engine: Engine, service: Service, platform: Platform, image: str, *, built: oci.Image | None = None
) -> SmokeResult:
    """Run each check of the recipe on the image `image` (tagged in the engine), judge each; `built` is
    that image's content, from which a check with test files gets its own image."""
    emulated = is_emulated(platform)
    if emulated:
        missing = binfmt.problem(platform)
        if missing:
            return _not_run(emulated, f"cannot run {platform.name} here: {missing}")
    refused = root_refused(service)
    if refused:
        return _not_run(emulated, refused)
    target = _Target(engine=engine, service=service, platform=platform, image=image, built=built)
    results: list[CheckResult] = []
    for index in range(len(service.smoke.checks)):
        results.append(_run_check(target, index))
        if engine.cancelled:
            break
    return combined(emulated, results)


def combined(emulated: bool, results: Sequence[CheckResult]) -> SmokeResult:
    """The target's result from its checks': passed when all passed."""
    if not results:
        return _not_run(emulated, "the recipe has no smoke check")
    failed = [result for result in results if not result.passed]
    first = (failed or list(results))[0]
    if len(results) == 1:
        reason, diff = first.reason, first.diff
    else:
        reasons = "; ".join(f"{result.name!r}: {result.reason}" for result in failed)
        reason = f"{len(failed)} of {len(results)} checks failed: {reasons}" if failed else None
        diffs = [f"check {result.name!r}:\n{result.diff}" for result in failed if result.diff]
        diff = "\n".join(diffs) or None
    if any(result.reason == INTERRUPTED for result in results):
        reason = INTERRUPTED
    return SmokeResult(
        passed=not failed,
        emulated=emulated,
        exit_code=first.exit_code,
        stdout=first.stdout,
        stderr=first.stderr,
        seconds=round(sum(result.seconds for result in results), 3),
        reason=reason,
        diff=diff,
        checks=tuple(results),
    )


@dataclass(frozen=True, kw_only=True)
class _Target:
    """What every check of a target runs on."""

    engine: Engine
    service: Service
    platform: Platform
    image: str  # its tag in the engine
    built: oci.Image | None  # its content


def _run_check(target: _Target, index: int) -> CheckResult:
    engine, service, platform, image = target.engine, target.service, target.platform, target.image
    check = service.smoke.checks[index]
    emulated = is_emulated(platform)
    started = time.monotonic()
    try:
        stdin = smoke_input(check)
        files = smoke_files(check)
    except OSError as error:
        return _check_not_run(check, f"cannot read {error.filename}: {error.strerror or error}", started)
    own_image = None
    try:
        if files:
            if target.built is None:
                return _check_not_run(
                    check, "its files need the image's content, which is not known here", started
                )
            own_image = _load_check_image(target, target.built, files, index)
        result = run_image(
            engine, service, platform, own_image or image, check.args, check=check, stdin=stdin
        )
    except EngineError as error:
        if engine.cancelled:
            return _check_not_run(check, INTERRUPTED, started)
        # The runtime refused to start the program: no output to judge, the reason is the error.
        what = f"qemu-{platform.qemu} could not start it" if emulated else "the container did not start"
        if files and own_image is None:
            what = "the image with its files could not be loaded"
        return _check_not_run(check, f"{what}: {error.message}", started)
    finally:
        if own_image is not None:
            engine.remove_image(own_image)
    seconds = time.monotonic() - started
    if engine.cancelled:  # killed by Ctrl-C/SIGTERM: its exit code says nothing about the program
        return _check_not_run(check, INTERRUPTED, started)
    stdout = result.stdout.decode(errors="replace") + (TRUNCATED if result.stdout_truncated else "")
    stderr = result.stderr.decode(errors="replace") + (TRUNCATED if result.stderr_truncated else "")
    reason, diff = judge(
        check.expected(platform.name),
        stdout=stdout,
        stderr=stderr,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        timeout=check.timeout,
    )
    if reason and emulated and _looks_like_emulator_failure(stderr):
        reason = f"the emulator could not start the program (qemu-{platform.qemu}): {stderr.strip()[:200]}"
    for stream, truncated in (("stdout", result.stdout_truncated), ("stderr", result.stderr_truncated)):
        if reason and truncated:
            reason += f" ({stream} truncated after {OUTPUT_LIMIT // 1024**2} MiB)"
    return CheckResult(
        name=check.name,
        passed=reason is None,
        exit_code=result.exit_code,
        stdout=stdout,
        stderr=stderr,
        seconds=round(seconds, 3),
        reason=reason,
        diff=diff,
    )


def run_image(
    engine: Engine,
    service: Service,
    platform: Platform,
    image: str,
    args: Sequence[str],
    *,
    check: SmokeCheck | None = None,
    stdin: bytes | None = None,
) -> ContainerResult:
    """Run the image as production would: no network, read-only root, no capabilities, the recipe's user,
    the check's limits (by default the first check's). Refuses uid 0 unless the recipe allows it (the
    recipe check does too)."""
    refused = root_refused(service)
    if refused:
        raise EngineError(refused)
    check = check or service.smoke.checks[0]
    return engine.run(
        ContainerSpec(
            image=image,
            command=args,
            role="smoke",
            user=service.image.user,
            platform=platform.name,
            timeout=check.timeout,
            limits=check.limits,
            output_limit=OUTPUT_LIMIT,
            stdin=stdin,
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


def smoke_input(check: SmokeCheck) -> bytes | None:
    """What the check writes to the program's stdin: its inline text as UTF-8, its file, or nothing."""
    if check.stdin is not None:
        return check.stdin.encode()
    if check.stdin_file is not None:
        return read_project_file(check.stdin_file)
    return None


def smoke_files(check: SmokeCheck) -> list[oci.FileEntry]:
    """The check's test files as image entries: root-owned, readable by any user, executable when the
    project's file is."""
    entries = []
    for target, path in sorted(check.files.items()):
        data = read_project_file(path)
        executable = os.access(path, os.X_OK)
        entries.append(oci.FileEntry(path=target, data=data, mode=0o755 if executable else 0o644))
    return entries


def read_project_file(path: Path, limit: int = SMOKE_FILE_LIMIT) -> bytes:
    """A file the recipe named (resolved inside the project when it was read): still a regular file, not a
    symbolic link since, not larger than `limit`. Raises OSError saying what is wrong."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(0, "not a regular file", str(path))
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(0, f"larger than {limit // 1024**2} MiB", str(path))
    return data


def check_image_tag(engine: Engine, service: Service, platform: Platform, index: int) -> str:
    """The run-private tag of a check's own image: never a tag of the service's image."""
    service_id = hashlib.sha256(service.name.encode()).hexdigest()[:12]
    return f"{SMOKE_REPOSITORY}:{engine.run_id}-{service_id}-{platform.tag_suffix}-{index}"


def _load_check_image(target: _Target, built: oci.Image, files: Sequence[oci.FileEntry], index: int) -> str:
    """The target's image plus the check's files, loaded under a run-private tag."""
    tag = check_image_tag(target.engine, target.service, target.platform, index)
    target.engine.load_image(oci.docker_archive(oci.with_layer(built, files), [tag]))
    return tag


def _not_run(emulated: bool, reason: str) -> SmokeResult:
    """A smoke test that could not run at all (no emulator, root refused): no check ran."""
    return SmokeResult(
        passed=False,
        emulated=emulated,
        exit_code=None,
        stdout="",
        stderr="",
        seconds=0.0,
        reason=reason,
        diff=None,
    )


def _check_not_run(check: SmokeCheck, reason: str, started: float) -> CheckResult:
    """A check whose program did not run (or was stopped by us): no output to judge."""
    return CheckResult(
        name=check.name,
        passed=False,
        exit_code=None,
        stdout="",
        stderr="",
        seconds=round(time.monotonic() - started, 3),
        reason=reason,
        diff=None,
    )


def judge(
    expect: SmokeExpect, *, stdout: str, stderr: str, exit_code: int, timed_out: bool, timeout: float
) -> tuple[str | None, str | None]:
    """Compare a run with what the recipe expects: (reason, diff), both None when it passed. An exact
    text must equal the output; a regular expression must be found in it (`re.search`)."""
    if timed_out:
        return f"did not finish within {timeout:g}s", None
    problems: list[str] = []
    diffs: list[str] = []
    if exit_code != expect.exit_code:
        problems.append(f"exit code {exit_code}, expected {expect.exit_code}")
    streams = (
        ("stdout", stdout, expect.stdout, expect.stdout_matches),
        ("stderr", stderr, expect.stderr, expect.stderr_matches),
    )
    for stream, actual, exact, pattern in streams:
        if exact is not None and actual != exact:
            problems.append(f"{stream} differs from the recipe")
            diffs.append(output_diff(exact, actual, stream))
        if pattern is not None and re.search(pattern, actual) is None:
            problems.append(f"{stream} does not match {shown(pattern)}")
    return ("; ".join(problems) or None), ("\n".join(diffs) or None)


def output_diff(expected: str, actual: str, stream: str = "stdout") -> str:
    """A unified diff that also shows a missing or extra trailing newline."""
    lines = difflib.unified_diff(
        _visible_lines(expected),
        _visible_lines(actual),
        fromfile=f"expected {stream} (recipe)",
        tofile=f"actual {stream}",
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

"""Stage 2: compile one (service, platform) inside its toolchain container.

The source is mounted read-only, only the target's output directory is writable, there is no network,
and the compiler runs as the invoking user so that files in out/ belong to them.
"""

from __future__ import annotations

import os
import string
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.engine import ContainerSpec, Engine, Mount
from orchestrator.platforms import Platform
from orchestrator.stages.recipe import Service, Toolchain, build_env

SOURCE_DIR = "/src"
OUTPUT_DIR = "/out"
# Compilers want a writable home and cache; the container's own /tmp serves, and nothing is fetched.
BUILD_ENV_DEFAULTS = {
    "HOME": "/tmp",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "GOCACHE": "/tmp/.cache/go-build",
    "GOPATH": "/tmp/go",
    "GOTOOLCHAIN": "local",
    "GOPROXY": "off",
    "GOFLAGS": "-buildvcs=false",
}


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a build produced: the binary (when it succeeded) and where its log is."""

    ok: bool
    binary: Path
    log: Path
    exit_code: int
    timed_out: bool
    seconds: float


def container_env(
    service: Service, toolchain: Toolchain, platform: Platform, source_date_epoch: int
) -> dict[str, str]:
    """Defaults that keep compilers offline and writable, then the recipes' merged env (which wins)."""
    return {
        **BUILD_ENV_DEFAULTS,
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
        **build_env(toolchain, platform.name, service.build.env),
    }


def build_command(service: Service, env: dict[str, str]) -> list[str]:
    """The recipe's command with `{output}` and `{ENV_NAME}` placeholders filled in."""
    values = {**env, "output": f"{OUTPUT_DIR}/{service.build.output}"}
    formatter = string.Formatter()
    return [formatter.vformat(argument, (), values) for argument in service.build.command]


def build(
    engine: Engine,
    service: Service,
    *,
    toolchain: Toolchain,
    toolchain_image: str,
    platform: Platform,
    output_dir: Path,
    source_date_epoch: int,
) -> BuildResult:
    """Compile the target into output_dir and write the compiler's output to output_dir/build.log."""
    bin_dir = output_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    binary = bin_dir / service.build.output
    log = output_dir / "build.log"
    env = container_env(service, toolchain, platform, source_date_epoch)
    command = build_command(service, env)
    started = time.monotonic()
    result = engine.run(
        ContainerSpec(
            image=toolchain_image,
            command=command,
            role="build",
            env=env,
            mounts=(
                Mount(source=str(service.source), target=SOURCE_DIR, read_only=True),
                Mount(source=str(bin_dir.resolve()), target=OUTPUT_DIR, read_only=False),
            ),
            working_dir=SOURCE_DIR,
            user=f"{os.getuid()}:{os.getgid()}",
            timeout=service.build.timeout,
        )
    )
    seconds = time.monotonic() - started
    log.write_bytes(
        f"$ {' '.join(command)}\n".encode()
        + result.stdout
        + result.stderr
        + (f"\n[osless] timed out after {service.build.timeout:g}s\n".encode() if result.timed_out else b"")
        + f"[osless] exit code {result.exit_code} after {seconds:.1f}s\n".encode()
    )
    ok = result.exit_code == 0 and not result.timed_out and binary.is_file()
    return BuildResult(
        ok=ok, binary=binary, log=log, exit_code=result.exit_code, timed_out=result.timed_out, seconds=seconds
    )


def failure_reason(result: BuildResult) -> str:
    """One line that says why a build failed, pointing at its log."""
    if result.timed_out:
        return f"build timed out after {result.seconds:.0f}s (log: {result.log})"
    if result.exit_code != 0:
        last = _first_error_line(result.log)
        return f"compiler exited with {result.exit_code}: {last} (log: {result.log})"
    return f"the build command succeeded but wrote no {result.binary.name} to {{output}} (log: {result.log})"


def _first_error_line(log: Path) -> str:
    """The compiler's first `error` line (compilers print the cause first), else its last line."""
    lines = [
        line.strip()
        for line in log.read_text(errors="replace").splitlines()[1:]  # line 0 is the command itself
        if line.strip() and not line.startswith("[osless]")
    ]
    errors = [line for line in lines if "error" in line.lower()]
    chosen = errors[0] if errors else (lines[-1] if lines else "no output")
    return chosen[:200]

"""Stage 2: compile one (service, platform) inside its toolchain's warm builder container.

One builder container per toolchain image lives for the whole run and every build is a `docker exec`
in it: starting a container per target costs more than many compiles. The project is mounted
read-only, only the output directory is writable, there is no network, the compiler runs as the
invoking user (files in out/ belong to them), and compiler caches live in a named volume per
toolchain that outlives runs (Go's build cache is safe for concurrent builds).
"""

from __future__ import annotations

import io
import os
import posixpath
import string
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.engine import ContainerSpec, Engine, Mount
from orchestrator.errors import EngineError
from orchestrator.platforms import Platform
from orchestrator.stages.recipe import Service, Toolchain, build_env

PROJECT_DIR = "/project"
OUTPUT_DIR = "/osless-out"
CACHE_DIR = "/cache"
CACHE_VOLUME = "osless-cache-{toolchain}{namespace}"
# Compilers want a writable home and cache, and must never fetch anything.
BUILD_ENV_DEFAULTS = {
    "HOME": "/tmp",
    "XDG_CACHE_HOME": CACHE_DIR,
    "GOCACHE": f"{CACHE_DIR}/go-build",
    "CCACHE_DIR": f"{CACHE_DIR}/ccache",
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


def build_command(service: Service, env: dict[str, str], output: str) -> list[str]:
    """The recipe's command with `{output}` and `{ENV_NAME}` placeholders filled in."""
    values = {**env, "output": output}
    formatter = string.Formatter()
    return [formatter.vformat(argument, (), values) for argument in service.build.command]


class Builders:
    """The run's warm builder containers, one per toolchain image, started on first use.

    On the local engine the project and out/ are bind-mounted. An engine given with `--engine` may
    run elsewhere and not see this machine's files (copy_files): each service's source is copied in
    once and each binary copied out, at the same paths, so the binaries come out the same.
    """

    def __init__(
        self,
        engine: Engine,
        project_root: Path,
        out_root: Path,
        cache_namespace: str = "",
        *,
        copy_files: bool = False,
    ) -> None:
        self.engine = engine
        self.cache_namespace = cache_namespace
        self.project_root = project_root
        self.out_root = out_root
        self.copy_files = copy_files
        self._containers: dict[str, Any] = {}
        self._copied: set[tuple[str, str]] = set()  # (image, service) whose source is in the builder
        self._lock = threading.Lock()

    def container(self, toolchain: Toolchain, image: str) -> Any:
        with self._lock:
            if image not in self._containers:
                self._containers[image] = self._start(toolchain, image)
            return self._containers[image]

    def _start(self, toolchain: Toolchain, image: str) -> Any:
        volume = self.engine.ensure_volume(
            CACHE_VOLUME.format(toolchain=toolchain.name, namespace=self.cache_namespace)
        )
        container = self.engine.start_long_lived(
            ContainerSpec(
                image=image,
                command=(),
                role="builder",
                mounts=()
                if self.copy_files
                else (
                    Mount(source=str(self.project_root), target=PROJECT_DIR, read_only=True),
                    Mount(source=str(self.out_root), target=OUTPUT_DIR, read_only=False),
                ),
                volumes={volume: CACHE_DIR},
            )
        )
        # The cache volume is created root-owned; builds run as the invoking user.
        self.engine.exec(
            container, ["chmod", "1777", CACHE_DIR], env={}, working_dir="/", user="0:0", timeout=30
        )
        return container

    def copy_in(self, container: Any, image: str, service: Service, output: str) -> None:
        """Copy mode: the service's source (once per builder) and a writable output directory."""
        if not self.copy_files:
            return
        relative = service.source.relative_to(self.project_root).as_posix()
        with self._lock:
            first = (image, service.name) not in self._copied
            self._copied.add((image, service.name))
        if first:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                tar.add(service.source, arcname=f"{PROJECT_DIR.lstrip('/')}/{relative}")
            self.engine.put_archive(container, "/", buffer.getvalue())
        directory = posixpath.dirname(output)
        owner = f"{os.getuid()}:{os.getgid()}"
        self.engine.exec(
            container,
            ["sh", "-c", 'mkdir -p "$0" && chown "$1" "$0"', directory, owner],
            env={},
            working_dir="/",
            user="0:0",
            timeout=30,
        )

    def copy_out(self, container: Any, inside: str, binary: Path) -> None:
        """Copy mode: the built binary back to out/ (nothing when the build wrote none)."""
        if not self.copy_files:
            return
        try:
            archive = self.engine.read_from_container(container, inside)
        except EngineError:
            return
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None and member.isfile() else None
            if extracted is not None:
                binary.write_bytes(extracted.read())
                binary.chmod(0o755)


def build(
    builders: Builders,
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
    inside = f"{OUTPUT_DIR}/{binary.relative_to(builders.out_root)}"
    command = build_command(service, env, inside)
    started = time.monotonic()
    container = builders.container(toolchain, toolchain_image)
    builders.copy_in(container, toolchain_image, service, inside)
    result = builders.engine.exec(
        container,
        command,
        env=env,
        working_dir=f"{PROJECT_DIR}/{service.source.relative_to(builders.project_root)}",
        user=f"{os.getuid()}:{os.getgid()}",
        timeout=service.build.timeout,
    )
    builders.copy_out(container, inside, binary)
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

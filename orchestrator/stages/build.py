"""Stage 2: compile one (service, platform) inside its service's warm builder container.

One builder container per (toolchain image, service) lives for the whole run and every build of that
service is a `docker exec` in it: starting a container per target costs more than many compiles. A
builder sees only its service's source (read-only, at `/project/<source>` as always, so that binaries
do not depend on the checkout), a private scratch volume for outputs, a tmpfs /tmp and the project's
compiler cache volume for its toolchain image; no network, no capabilities, read-only root, a fixed
non-root user, and the recipe's pids/memory/CPU limits. osless copies each binary out through the
engine's archive API (one regular file, bounded) and writes it to out/ itself: a build command
cannot write to out/ at all.
"""

from __future__ import annotations

import contextlib
import io
import os
import string
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from orchestrator.engine import PROJECT_LABEL, ContainerSpec, Engine, FileRefused, Mount, project_label
from orchestrator.errors import EngineError
from orchestrator.languages import build_env_defaults
from orchestrator.outputs.atomic import write_atomic
from orchestrator.platforms import Platform
from orchestrator.recipe.model import Service, Toolchain
from orchestrator.recipe.placeholders import build_env

PROJECT_DIR = "/project"
OUTPUT_DIR = "/osless-out"  # a scratch volume in the builder: never out/ itself
CACHE_DIR = "/cache"
# Per project and toolchain image: one project's recipes cannot poison another's compiler cache.
CACHE_VOLUME = "osless-cache-{toolchain}-{project}-{image}{namespace}"
# Build commands run as this user, never as the caller: a fixed uid keeps caches and paths the same.
BUILD_USER = "65532:65532"
BINARY_LIMIT = 1024**3  # a binary larger than this is refused
LOG_STREAM_LIMIT = 2 * 1024**2  # bytes of stdout and of stderr kept in build.log (4 MiB in all)
# Compilers want a writable home and cache, and must never fetch anything (each language's own settings).
BUILD_ENV_DEFAULTS = {"HOME": "/tmp", "XDG_CACHE_HOME": CACHE_DIR}


def target_cache(service: Service, platform: Platform) -> str:
    """The cache directory of one (service, platform), in the toolchain's cache volume: what only this
    target's builds reuse (a cargo target directory)."""
    return f"{CACHE_DIR}/targets/{service.name}/{platform.slug}"


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a build produced: the binary (when it succeeded) and where its log is."""

    ok: bool
    binary: Path
    log: Path
    exit_code: int
    timed_out: bool
    seconds: float
    problem: str | None = None  # why the binary could not be taken out of the builder


def container_env(
    service: Service, toolchain: Toolchain, platform: Platform, source_date_epoch: int
) -> dict[str, str]:
    """Defaults that keep compilers offline and writable, then the recipes' merged env (which wins)."""
    return {
        **BUILD_ENV_DEFAULTS,
        **build_env_defaults(CACHE_DIR, target_cache(service, platform)),
        "SOURCE_DATE_EPOCH": str(source_date_epoch),
        **build_env(toolchain, platform.name, service.build.env),
    }


def build_command(service: Service, platform: Platform, env: dict[str, str], output: str) -> list[str]:
    """The recipe's command with `{output}`, platform fact (`{GOARCH}`...) and `{ENV_NAME}` placeholders
    filled in, in the order the recipe loader checked them."""
    values = {**platform.placeholders(), **env, "output": output}
    formatter = string.Formatter()
    return [formatter.vformat(argument, (), values) for argument in service.build.command]


class Builders:
    """The run's warm builder containers, one per (toolchain image, service), started on first use;
    a context manager: `with Builders(...) as builders:` removes them on exit, whatever happens.

    On the local engine the service's source is bind-mounted read-only. An engine given with
    `--engine` may run elsewhere and not see this machine's files (copy_files): the service's source
    is copied into the builder once, at the same path, so the binaries come out the same. Either way
    each binary is copied out of the builder's scratch volume.
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
        self.project = project_label(project_root)
        self._containers: dict[tuple[str, str], Any] = {}
        self._starting: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Builders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Remove the builders (never raises: what the engine could not remove is in its leftovers)."""
        with self._lock:
            containers, self._containers = list(self._containers.values()), {}
        self.engine.remove_containers(containers)

    def container(self, toolchain: Toolchain, image: str, service: Service) -> Any:
        """The service's builder for the toolchain image (started by the first build that needs it)."""
        key = (image, service.name)
        with self._lock:
            starting = self._starting.setdefault(key, threading.Lock())
        with starting:  # builders of other services start meanwhile
            if key not in self._containers:
                self._containers[key] = self._start(toolchain, image, service)
            return self._containers[key]

    def cache_volume(self, toolchain: Toolchain, image: str) -> str:
        """The compiler cache volume of this project and toolchain image."""
        image_id = (self.engine.image_id(image) or image).removeprefix("sha256:")
        return CACHE_VOLUME.format(
            toolchain=toolchain.name,
            project=self.project[:12],
            image=image_id[:12],
            namespace=self.cache_namespace,
        )

    def source_dir(self, service: Service) -> str:
        """Where the service's source is in its builder (and the builds' working directory)."""
        return f"{PROJECT_DIR}/{service.source.relative_to(self.project_root)}"

    def _start(self, toolchain: Toolchain, image: str, service: Service) -> Any:
        volume = self.engine.ensure_volume(
            self.cache_volume(toolchain, image), labels={PROJECT_LABEL: self.project}
        )
        source_dir = os.path.normpath(self.source_dir(service))
        limits = service.build.limits
        container = self.engine.start_long_lived(
            ContainerSpec(
                image=image,
                command=(),
                role="builder",
                user=BUILD_USER,
                mounts=()
                if self.copy_files
                else (Mount(source=str(service.source), target=source_dir, read_only=True),),
                volumes={volume: CACHE_DIR},
                scratch=(OUTPUT_DIR, PROJECT_DIR) if self.copy_files else (OUTPUT_DIR,),
                # Compilers and configure scripts run programs from /tmp: exec allowed, size bounded.
                tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={limits.memory}"},
                limits=limits,
                labels={PROJECT_LABEL: self.project},
            )
        )
        if self.copy_files:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                tar.add(service.source, arcname=os.path.relpath(source_dir, PROJECT_DIR))
            self.engine.put_archive(container, PROJECT_DIR, buffer.getvalue())
        # The volumes are created root-owned; uid 0 owns them, so its chmod needs no capability.
        opened = self.engine.exec(
            container,
            ["chmod", "1777", CACHE_DIR, OUTPUT_DIR],
            env={},
            working_dir="/",
            user="0:0",
            timeout=30,
        )
        if opened.exit_code != 0:
            raise EngineError(
                f"cannot prepare the {service.name} builder: chmod exited with {opened.exit_code}: "
                + opened.stderr.decode(errors="replace").strip()[:200]
            )
        return container

    def empty_scratch(self, container: Any, scratch: str) -> None:
        """The target's scratch directory, emptied, with its bin/ (owned by the build user)."""
        emptied = self.engine.exec(
            container,
            ["sh", "-c", 'rm -rf -- "$1" && mkdir -p -- "$1/bin"', "sh", scratch],
            env={},
            working_dir="/",
            user=BUILD_USER,
            timeout=60,
        )
        if emptied.exit_code != 0:
            raise EngineError(
                f"cannot empty {scratch} in the builder (exit {emptied.exit_code}): "
                + emptied.stderr.decode(errors="replace").strip()[:200]
            )

    def copy_out(self, container: Any, inside: str, binary: Path) -> str | None:
        """The built binary copied to out/ (atomically); why not, when it is not one regular file."""
        try:
            with self.engine.read_file(container, inside, limit=BINARY_LIMIT) as content:
                _write_stream_atomic(binary, content, mode=0o755)
        except FileRefused as refused:
            return refused.reason
        return None


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
    """Compile the target in its builder, copy the binary to output_dir/bin and write output_dir/build.log."""
    bin_dir = output_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    binary = bin_dir / service.build.output
    log = output_dir / "build.log"
    env = container_env(service, toolchain, platform, source_date_epoch)
    # The same in-container path as out/<service>/<platform>/bin/<output>: {output} does not change.
    scratch = f"{OUTPUT_DIR}/{output_dir.relative_to(builders.out_root).as_posix()}"
    inside = f"{scratch}/bin/{service.build.output}"
    command = build_command(service, platform, env, inside)
    started = time.monotonic()
    container = builders.container(toolchain, toolchain_image, service)
    builders.empty_scratch(container, scratch)
    result = builders.engine.exec(
        container,
        command,
        env=env,
        working_dir=builders.source_dir(service),
        user=BUILD_USER,
        timeout=service.build.timeout,
        output_limit=LOG_STREAM_LIMIT,
    )
    problem = None
    if result.exit_code == 0 and not result.timed_out:
        problem = builders.copy_out(container, inside, binary)
    seconds = time.monotonic() - started
    write_atomic(
        log,
        f"$ {' '.join(command)}\n".encode()
        + result.stdout
        + _truncation_note("stdout", result.stdout_truncated)
        + result.stderr
        + _truncation_note("stderr", result.stderr_truncated)
        + (f"\n[osless] timed out after {service.build.timeout:g}s\n".encode() if result.timed_out else b"")
        + (f"[osless] {{output}} {inside}: {problem}\n".encode() if problem else b"")
        + f"[osless] exit code {result.exit_code} after {seconds:.1f}s\n".encode(),
    )
    ok = result.exit_code == 0 and not result.timed_out and problem is None
    return BuildResult(
        ok=ok,
        binary=binary,
        log=log,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        seconds=seconds,
        problem=problem,
    )


def failure_reason(result: BuildResult) -> str:
    """One line that says why a build failed, pointing at its log."""
    if result.timed_out:
        return f"build timed out after {result.seconds:.0f}s (log: {result.log})"
    if result.exit_code != 0:
        last = _first_error_line(result.log)
        return f"compiler exited with {result.exit_code}: {last} (log: {result.log})"
    if result.problem and result.problem != "it does not exist":
        return f"the build command succeeded but {{output}} is refused: {result.problem} (log: {result.log})"
    return f"the build command succeeded but wrote no {result.binary.name} to {{output}} (log: {result.log})"


def _truncation_note(stream: str, truncated: bool) -> bytes:
    if not truncated:
        return b""
    return f"\n[osless: {stream} truncated after {LOG_STREAM_LIMIT // 1024**2} MiB]\n".encode()


def _write_stream_atomic(path: Path, content: IO[bytes], *, mode: int) -> None:
    """Like atomic.write_atomic, for a file streamed from another (a binary need not fit in memory):
    a temporary file in the same directory, flushed, then renamed over `path`."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            while chunk := content.read(1024**2):
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _first_error_line(log: Path) -> str:
    """The compiler's first `error` line (compilers print the cause first), else its last line."""
    lines = [
        line.strip()
        for line in log.read_text(errors="replace").splitlines()[1:]  # line 0 is the command itself
        if line.strip() and not line.startswith("[osless")
    ]
    errors = [line for line in lines if "error" in line.lower()]
    chosen = errors[0] if errors else (lines[-1] if lines else "no output")
    return chosen[:200]

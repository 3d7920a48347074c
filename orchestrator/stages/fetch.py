"""Before a build: download what the service's `[fetch]` names, once per content of its lock files.

Builds never have a network, and a build step cannot download anything. A service that needs
dependencies from elsewhere says where in `[fetch]` (Go: a GOPROXY, `file://` directories of the
project or, with `network = true`, an http(s) proxy); its language (orchestrator/languages/) says how,
as a `FetchPlan`: the command (`go mod download`), the files that pin what it downloads (go.mod and
go.sum), and the variable that names the directory it fills (GOMODCACHE).

The fetch runs in a container of its own, started from the toolchain image: the service's source and
the project directories it fetches from mounted read-only (copied in on a remote engine), the
toolchain's cache volume, the build's limits, and a network only when the recipe asks for one. It
writes into a private directory of the cache volume, renamed to `/cache/fetch/<key>` when complete:
the key is a hash of the lock files and the sources, so a second run (and every other platform of the
service, and every service with the same lock files) finds the directory and fetches nothing, and a
changed go.sum fetches again. The build then reads that directory alone, offline (Go: GOPROXY=off,
GOMODCACHE=<it>, -mod=readonly, so go.sum verifies every module it uses).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.engine import PROJECT_LABEL, ContainerResult, ContainerSpec, Mount
from orchestrator.languages import fetch_plan
from orchestrator.languages.fetching import FetchPlan
from orchestrator.outputs.atomic import write_atomic
from orchestrator.platforms import Platform
from orchestrator.recipe.fetch import file_directory
from orchestrator.recipe.model import FetchSpec, Service, Toolchain
from orchestrator.stages.build import BUILD_USER, CACHE_DIR, PROJECT_DIR, Builders, container_env

FETCH_DIR = f"{CACHE_DIR}/fetch"  # in the toolchain's cache volume: one directory per key
FETCH_FORMAT = 1  # bump when what a fetched directory holds changes meaning
LOCK_FILE_LIMIT = 16 * 1024**2  # bytes: real go.sum files are well under 1 MiB
LOG_LIMIT = 1024**2  # bytes of stdout and of stderr kept in fetch.log
FETCH_LOG = "fetch.log"
# Run as the build user in the fetch container: a private directory next to the final one, the command
# with the language's variable pointing at it, then an atomic rename. A run that finds the directory
# (another run was faster) keeps it; what a killed fetch left behind is removed a day later.
# Arguments: the final directory, the variable, the command.
_SCRIPT = r"""
final=$1; variable=$2; shift 2
parent=${final%/*}
mkdir -p -- "$parent"
find "$parent" -mindepth 1 -maxdepth 1 -name '*.partial.*' -mmin +1440 \
  -exec chmod -R u+w -- {} + -exec rm -rf -- {} + 2>/dev/null || true
if [ -d "$final" ]; then echo "[osless] $final: fetched meanwhile"; exit 0; fi
partial=$(mktemp -d "$final.partial.XXXXXX")
status=0
env -- "$variable=$partial" "$@" || status=$?
if [ "$status" -eq 0 ] && mv -T -- "$partial" "$final" 2>/dev/null; then exit 0; fi
chmod -R u+w -- "$partial" 2>/dev/null || true
rm -rf -- "$partial"
if [ "$status" -eq 0 ] && [ -d "$final" ]; then exit 0; fi
[ "$status" -ne 0 ] || status=1
exit "$status"
"""
_ERROR_WORDS = re.compile(r"\berror\b|mismatch|missing", re.IGNORECASE)  # not "errors" (a module path)
_locks: dict[tuple[str, str], threading.Lock] = {}  # (cache volume, key): one fetch at a time
_locks_guard = threading.Lock()


@dataclass(frozen=True, kw_only=True)
class FetchInfo:
    """What the report says about a target's fetch step."""

    command: str  # "go mod download"
    sources: list[str]  # where from, as the recipe names them: "file://deps/goproxy"
    network: bool  # whether the fetch step had a network
    key: str  # sha256 of the lock files and sources: the fetched directory's name
    reused: bool  # the directory was in the cache volume already: nothing was downloaded
    seconds: float
    log: str  # fetch.log


@dataclass(frozen=True, kw_only=True)
class Fetched:
    """A fetch that succeeded (or was reused): the report's part, and what the build's env gains."""

    info: FetchInfo
    env: dict[str, str]


class FetchFailed(Exception):
    """The fetch step failed; the reason is one line naming the step, the command and its log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fetch_key(plan: FetchPlan, lock_files: Mapping[str, bytes | None]) -> str:
    """What the fetched directory is made of: the lock files' content (None: absent), the command and
    the sources as the recipe names them (project-relative: the same on every machine)."""
    document = {
        "format": FETCH_FORMAT,
        "command": list(plan.command),
        "sources": list(plan.sources),
        "lock_files": {
            name: None if data is None else hashlib.sha256(data).hexdigest()
            for name, data in lock_files.items()
        },
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def read_lock_file(path: Path) -> bytes | None:
    """A lock file of the source: None when there is none; a regular file of at most LOCK_FILE_LIMIT
    bytes, not followed when a symbolic link, opened without blocking (else FetchFailed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise FetchFailed(f"cannot read {path.name}: {error.strerror or error}") from error
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FetchFailed(f"{path.name} is not a regular file")
        data = stream.read(LOCK_FILE_LIMIT + 1)
    if len(data) > LOCK_FILE_LIMIT:
        raise FetchFailed(f"{path.name} is larger than {LOCK_FILE_LIMIT // 1024**2} MiB")
    return data


def with_fetched(service: Service, fetched: Fetched | None) -> Service:
    """The service as its build sees it: the fetch's variables over the recipe's build env (so that
    every step, command or script, reads the fetched directory, offline). Braces are doubled: the
    build fills placeholders in env values, and these are values already."""
    if fetched is None:
        return service
    escaped = {name: value.replace("{", "{{").replace("}", "}}") for name, value in fetched.env.items()}
    return replace(service, build=replace(service.build, env={**service.build.env, **escaped}))


def fetch(
    builders: Builders,
    service: Service,
    *,
    toolchain: Toolchain,
    toolchain_image: str,
    platform: Platform,
    output_dir: Path,
    source_date_epoch: int,
) -> Fetched | None:
    """The service's fetch for this target: reused when the cache volume has its key's directory,
    else run (one at a time per key); None when the recipe has no `[fetch]`. Writes
    output_dir/fetch.log; raises FetchFailed."""
    spec = service.fetch
    if spec is None:
        return None
    env = container_env(service, toolchain, platform, source_date_epoch)
    plan = fetch_plan(spec, tuple(_in_container(source) for source in spec.goproxy), env)
    if plan is None:
        raise FetchFailed("no language of the toolchain fetches what [fetch] names")
    key = fetch_key(plan, {name: read_lock_file(service.source / name) for name in plan.lock_files})
    final = f"{FETCH_DIR}/{key}"
    log = output_dir / FETCH_LOG
    started = time.monotonic()
    volume = builders.cache_volume(toolchain, toolchain_image)
    with _lock(volume, key):
        builder = builders.container(toolchain, toolchain_image, service)  # the cache volume, writable
        reused = _exists(builders, builder, final)
        if reused:
            write_atomic(
                log, f"[osless] {plan.description}: {final} is in the cache volume already\n".encode()
            )
        else:
            result = _run(
                builders,
                service,
                spec=spec,
                plan=plan,
                image=toolchain_image,
                volume=volume,
                env=env,
                final=final,
            )
            seconds = time.monotonic() - started
            _write_log(log, plan, spec, result, seconds)
            if result.exit_code != 0:
                raise FetchFailed(_failure(plan, spec, result, log))
    info = FetchInfo(
        command=plan.description,
        sources=list(plan.sources),
        network=spec.network,
        key=key,
        reused=reused,
        seconds=round(time.monotonic() - started, 2),
        log=str(log),
    )
    return Fetched(info=info, env={**plan.build_env, plan.directory_variable: final})


def _in_container(source: str) -> str:
    """A source as the fetch container sees it: a project directory under /project."""
    directory = file_directory(source)
    return source if directory is None else f"file://{PROJECT_DIR}/{directory}"


def _lock(volume: str, key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((volume, key), threading.Lock())


def _exists(builders: Builders, builder: Any, directory: str) -> bool:
    found = builders.engine.exec(
        builder, ["test", "-d", directory], env={}, working_dir="/", user=BUILD_USER, timeout=30
    )
    return found.exit_code == 0


def _run(
    builders: Builders,
    service: Service,
    *,
    spec: FetchSpec,
    plan: FetchPlan,
    image: str,
    volume: str,
    env: dict[str, str],
    final: str,
) -> ContainerResult:
    """The fetch container: started, given the files it reads, the command run, removed."""
    engine = builders.engine
    source_dir = os.path.normpath(builders.source_dir(service))
    directories = [d for source in spec.goproxy if (d := file_directory(source)) is not None]
    mounts = [Mount(source=str(service.source), target=source_dir, read_only=True)]
    mounts += [
        Mount(source=str(builders.project_root / d), target=f"{PROJECT_DIR}/{d}", read_only=True)
        for d in directories
    ]
    limits = service.build.limits
    container = engine.start_long_lived(
        ContainerSpec(
            image=image,
            command=(),
            role="fetch",
            user=BUILD_USER,
            mounts=() if builders.copy_files else mounts,
            volumes={volume: CACHE_DIR},
            scratch=(PROJECT_DIR,) if builders.copy_files else (),
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={limits.memory}"},
            limits=limits,
            labels={PROJECT_LABEL: builders.project},
            network=spec.network,
        )
    )
    try:
        if builders.copy_files:  # a remote engine: the same paths, copied in
            engine.put_archive(container, PROJECT_DIR, _archive(builders.project_root, mounts))
        return engine.exec(
            container,
            ["sh", "-eu", "-c", _SCRIPT, "sh", final, plan.directory_variable, *plan.command],
            env={**env, **plan.env},
            working_dir=source_dir,
            user=BUILD_USER,
            timeout=spec.timeout,
            output_limit=LOG_LIMIT,
        )
    finally:
        engine.remove_containers([container])


def _archive(root: Path, mounts: list[Mount]) -> bytes:
    """The mounted directories as one tar, at their paths below /project."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for mount in mounts:
            tar.add(mount.source, arcname=os.path.relpath(mount.target, PROJECT_DIR))
    return buffer.getvalue()


def _write_log(log: Path, plan: FetchPlan, spec: FetchSpec, result: ContainerResult, seconds: float) -> None:
    network = "with a network" if spec.network else "without a network"
    write_atomic(
        log,
        f"$ {plan.description}  # from {','.join(plan.sources)}, {network}\n".encode()
        + result.stdout
        + (b"\n[osless: stdout truncated]\n" if result.stdout_truncated else b"")
        + result.stderr
        + (b"\n[osless: stderr truncated]\n" if result.stderr_truncated else b"")
        + f"[osless] exit code {result.exit_code} after {seconds:.1f}s\n".encode(),
    )


def _failure(plan: FetchPlan, spec: FetchSpec, result: ContainerResult, log: Path) -> str:
    """One line: the fetch step, its command, and how it ended (its first error line)."""
    where = f"the fetch step ({plan.description} from {','.join(plan.sources)})"
    if result.timed_out:
        return f"{where} timed out after {spec.timeout:g}s (log: {log})"
    if result.exit_code == 127:
        tool = plan.command[0]
        return f"{where}: {tool!r} is not in the toolchain image (log: {log})"
    lines = [  # without the command trace (`-x`: "# get <url>") and osless' own notes
        line.strip()
        for line in (result.stderr + b"\n" + result.stdout).decode(errors="replace").splitlines()
        if line.strip() and not line.startswith(("[osless", "#"))
    ]
    errors = [line for line in lines if _ERROR_WORDS.search(line)]
    first = (errors[:1] or lines[-1:] or ["no output"])[0][:200]  # else the last word: the fatal one
    missing = any(word in first.lower() for word in ("no such file", "not found"))
    hint = (
        "; without a network, every module must be in the file:// proxies"
        if missing and not spec.network
        else ""
    )
    return f"{where} exited with {result.exit_code}: {first}{hint} (log: {log})"

"""The container engine: one place that talks to Docker, so every container osless starts is labelled,
locked down, bounded in time, memory, processes, CPU and output, and always removed, including on
failure and Ctrl-C.

Every container gets the same least-privilege settings: no network (but a fetch step whose recipe
asks for one), no capabilities at all, no-new-privileges, a read-only root filesystem, pids/memory/CPU
limits (CPUs clamped to the engine's cores), and no log driver (output is read live, bounded, and never
stored by the engine). Writable places are only what the spec asks for: tmpfs mounts and anonymous
volumes (removed with the container). One exception, asked for explicitly: the container that installs
a toolchain layer (build_layer) writes its root filesystem as root with the few capabilities dpkg needs.

Every docker-py call translates the engine's failures (`docker.errors.DockerException`, and
`requests.exceptions.RequestException` when the engine goes away) into one-line `EngineError`s.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, TypeVar

import docker
import docker.errors
import docker.types
import docker.utils.socket
import requests.exceptions

from orchestrator.errors import EngineError
from orchestrator.recipe.model import Limits

RUN_LABEL = "osless.run"
ROLE_LABEL = "osless.role"
PROJECT_LABEL = "osless.project"
# Who started a container: a later run removes the containers of osless processes that are gone.
OWNER_HOST_LABEL = "osless.owner.host"
OWNER_PID_LABEL = "osless.owner.pid"
OWNER_START_LABEL = "osless.owner.start"  # the process's start time (clock ticks since boot)
ENGINE_HINT = "start one with `sudo scripts/setup-host`, or point DOCKER_HOST at a running engine"

MiB = 1024**2
OUTPUT_LIMIT = 1 * MiB  # per stream, for containers run to completion (smoke tests)
# Containers that are neither builders nor smoke tests (SBOM package list, copies) get these.
UTILITY_LIMITS = Limits(memory=512 * MiB, pids=256, cpus=1.0)
_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Mount:
    """A host directory bind-mounted into a container."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """Everything needed to create one container; the least-privilege settings are not optional."""

    image: str
    command: Sequence[str]
    role: str  # "builder", "smoke", "sbom", "copy": shown in labels and errors
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = ()
    volumes: Mapping[str, str] = field(default_factory=dict)  # named volume -> mount point
    scratch: Sequence[str] = ()  # mount points of anonymous volumes, removed with the container
    tmpfs: Mapping[str, str] = field(default_factory=dict)  # mount point -> tmpfs options
    working_dir: str | None = None
    user: str | None = None
    platform: str | None = None
    timeout: float = 600.0
    limits: Limits | None = None  # None: UTILITY_LIMITS
    output_limit: int = OUTPUT_LIMIT  # bytes kept of stdout and of stderr each
    labels: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None  # written to the program's stdin, then closed; None: no stdin (/dev/null)
    # The engine's default network instead of none: only a fetch step whose recipe says so gets one.
    network: bool = False
    # Only for a toolchain layer (build_layer): dpkg writes the root filesystem as root, which needs
    # these capabilities (file owners and modes); every other container keeps a read-only root, no caps.
    writable_root: bool = False
    cap_add: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class ContainerResult:
    """How a container (or an exec) ended and what it printed, up to the output limit."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """A local image as a listing gives it."""

    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    created: str  # RFC 3339, as the engine reports it
    size: int  # bytes
    shared_size: int = 0  # bytes of its layers that other images use too (a usage listing's; else 0)


@dataclass(frozen=True, kw_only=True)
class ContainerInfo:
    """A container as the engine's usage listing gives it."""

    id: str
    name: str
    image_id: str
    labels: dict[str, str]
    state: str  # "running", "exited", "created"...
    volumes: tuple[str, ...]  # the named volumes it mounts
    size: int  # bytes it wrote (its writable layer)


@dataclass(frozen=True, kw_only=True)
class VolumeInfo:
    """A named volume as the engine's usage listing gives it."""

    name: str
    labels: dict[str, str]
    size: int  # bytes; -1 when the engine did not count them


@dataclass(frozen=True, kw_only=True)
class EngineUsage:
    """Every image, container and volume of the engine, with sizes (`docker system df -v`)."""

    images: tuple[ImageInfo, ...]
    containers: tuple[ContainerInfo, ...]
    volumes: tuple[VolumeInfo, ...]


class ImageMissing(EngineError):
    """The engine has no image by the reference asked for."""


class PullRefused(EngineError):
    """The engine could not pull an image; `reason` is its own (and the registry's) words, for the caller
    to tell an unreachable registry from a refused login or a missing image."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class FileRefused(Exception):
    """A file to be copied out of a container is missing, not one regular file, or too large."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Owner:
    """The osless process that created a container: host name, pid and the process's start time."""

    host: str
    pid: int
    start: str

    @classmethod
    def current(cls) -> Owner:
        return cls(host=socket.gethostname(), pid=os.getpid(), start=_process_start(os.getpid()) or "")

    def labels(self) -> dict[str, str]:
        return {OWNER_HOST_LABEL: self.host, OWNER_PID_LABEL: str(self.pid), OWNER_START_LABEL: self.start}

    def alive(self) -> bool:
        """Whether that process still runs here (the same pid with the same start time)."""
        start = _process_start(self.pid)
        if start is not None:
            return start == self.start or not self.start
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not self.start  # /proc unreadable but the process answers: keep it when unsure


def project_label(root: Path) -> str:
    """The `osless.project` label of a project: the first 16 hex digits of sha256(resolved root)."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


class Engine:
    """A connection to one Docker engine, tagging every container it starts with this run's id."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.run_id = uuid.uuid4().hex[:12]
        self.owner = Owner.current()
        self.leftovers: list[str] = []  # containers that could not be removed (the engine was gone)
        self._created: dict[str, Any] = {}  # id -> container, until removed
        self._cancelled = threading.Event()
        self._cpus: int | None = None

    @classmethod
    def connect(cls, host: str | None = None, *, purpose: str | None = None) -> Engine:
        """Connect as the docker CLI would (DOCKER_HOST honoured), or to `host` (unix://, tcp://, ssh://),
        and check the engine answers."""
        try:
            if host is None:
                client = docker.from_env(timeout=300)
            else:
                client = docker.DockerClient(
                    base_url=host, timeout=300, use_ssh_client=host.startswith("ssh://")
                )
            client.ping()
        except _ENGINE_ERRORS as error:
            if host is None:
                raise EngineError(
                    f"no Docker engine answers: {_first_line(error)}", hint=ENGINE_HINT
                ) from error
            raise EngineError(
                f"{purpose or 'the engine'} at {host} does not answer: {_first_line(error)}",
                hint="start that engine, or leave its --engine option out to use the default engine",
            ) from error
        return cls(client)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def version(self) -> str:
        return str(
            self._call("cannot ask the engine its version", self.client.version).get("Version", "unknown")
        )

    @property
    def cpus(self) -> int:
        """The engine's CPU count (`docker info` NCPU): container CPU limits are clamped to it."""
        if self._cpus is None:
            info = self._call("cannot ask the engine its CPU count", self.client.info)
            self._cpus = max(1, int(info.get("NCPU") or 1))
        return self._cpus

    def image_id(self, reference: str) -> str | None:
        """The id of a local image, or None when the engine does not have it."""
        try:
            return str(self.client.images.get(reference).id)
        except docker.errors.ImageNotFound:
            return None
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot look up image {reference}: {_first_line(error)}") from error

    def tagged_images(self) -> dict[str, str]:
        """Every tag of the engine's images and the id it names, from one listing: checking hundreds of
        cached targets' images one call each costs more than the rest of a run that builds nothing."""
        listed = self._call("cannot list the engine's images", self.client.api.images)
        return {tag: str(image["Id"]) for image in listed for tag in image.get("RepoTags") or ()}

    def image_size(self, reference: str) -> int:
        """Bytes of a local image, as the engine counts them."""
        image = self._call(f"cannot read image {reference}", lambda: self.client.images.get(reference))
        return int(image.attrs["Size"])

    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run a container to completion (or its timeout) and remove it, whatever happens.

        Output is read live from an attached stream and kept up to spec.output_limit per stream; the
        rest is read and dropped so that the program never blocks on a full pipe. spec.stdin is written
        by a thread of its own while the output is read, so neither side waits on the other.
        """
        self._check_cancelled()
        container = self._create(spec)
        try:
            self._check_cancelled()
            feeder: _StdinFeeder | None = None
            if spec.stdin is None:
                stream: Any = self._call(
                    f"cannot attach to the {spec.role} container",
                    lambda: self.client.api.attach(
                        container.id, stdout=True, stderr=True, stream=True, logs=False, demux=True
                    ),
                )
                frames: Iterable[tuple[bytes | None, bytes | None]] = stream
            else:
                params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
                stream = self._call(
                    f"cannot attach to the {spec.role} container",
                    lambda: self.client.api.attach_socket(container.id, params=params),
                )
                feeder = _StdinFeeder(stream, spec.stdin)
                frames = _demultiplexed(stream)
            capture = _Capture(spec.output_limit)
            reader = threading.Thread(target=capture.consume, args=(frames,), daemon=True)
            reader.start()
            try:
                self._call(f"cannot start the {spec.role} container", container.start)
                if feeder is not None:
                    feeder.start()
                exit_code, timed_out = self._wait(container, spec)
                reader.join(timeout=30)
            finally:
                if feeder is not None:
                    feeder.stop()
                with contextlib.suppress(Exception):
                    stream.close()
                if feeder is not None:
                    feeder.close()
            self._check_cancelled()
            return capture.result(exit_code=exit_code, timed_out=timed_out)
        finally:
            self._remove(container)

    def _wait(self, container: Any, spec: ContainerSpec) -> tuple[int, bool]:
        """(exit code, timed out): wait for the container, kill it when it outlives spec.timeout."""
        started = time.monotonic()
        try:
            status = container.wait(timeout=spec.timeout)
            return int(status.get("StatusCode", -1)), False
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as error:
            if time.monotonic() - started < spec.timeout * 0.95:
                self._check_cancelled()
                raise EngineError(f"{spec.role} container failed: {_first_line(error)}") from error
        except _ENGINE_ERRORS as error:
            self._check_cancelled()
            raise EngineError(f"{spec.role} container failed: {_first_line(error)}") from error
        # The wait's read timed out: the container outlived its budget.
        with contextlib.suppress(*_ENGINE_ERRORS):
            container.kill()
        return -1, True

    def start_long_lived(self, spec: ContainerSpec) -> Any:
        """Start a container that idles until this run ends (or is cancelled), for `exec` to use."""
        self._check_cancelled()
        container = self._create(replace(spec, command=["sleep", "infinity"]))
        try:
            container.start()
        except _ENGINE_ERRORS as error:
            self._remove(container)
            raise EngineError(f"cannot start the {spec.role} container: {_first_line(error)}") from error
        return container

    def exec(
        self,
        container: Any,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        working_dir: str,
        user: str,
        timeout: float,
        output_limit: int = OUTPUT_LIMIT,
    ) -> ContainerResult:
        """Run a command in a long-lived container; coreutils `timeout` bounds it (exit 124 when it fires).
        Output is streamed and kept up to output_limit bytes per stream."""
        self._check_cancelled()
        bounded = ["timeout", "--kill-after=10", f"{timeout:g}", *command]
        capture = _Capture(output_limit)
        try:
            created = self.client.api.exec_create(
                container.id, bounded, environment=dict(env), workdir=working_dir, user=user
            )
            capture.consume(self.client.api.exec_start(created["Id"], stream=True, demux=True))
            exit_code = self.client.api.exec_inspect(created["Id"]).get("ExitCode")
            for _ in range(50):  # the stream can end a moment before the engine records the exit
                if exit_code is not None:
                    break
                time.sleep(0.1)
                exit_code = self.client.api.exec_inspect(created["Id"]).get("ExitCode")
        except _ENGINE_ERRORS as error:
            self._check_cancelled()
            raise EngineError(
                f"exec in the {_name(container)} container failed: {_first_line(error)}"
            ) from error
        code = -1 if exit_code is None else int(exit_code)
        return capture.result(exit_code=code, timed_out=code == 124)

    def copy_image(self, source: Engine, reference: str) -> None:
        """`docker save` on source streamed into `docker load` here: the same image, the same id."""
        try:
            self.client.api.load_image(source.client.api.get_image(reference))  # type: ignore[no-untyped-call]
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot copy {reference} between engines: {_first_line(error)}") from error

    def pull_image(
        self,
        repository: str,
        tag: str,
        *,
        credentials: Mapping[str, str] | None,
        progress: Callable[[str], None],
    ) -> None:
        """`docker pull repository:tag`, or `repository@tag` when tag is a digest; the engine checks every
        blob against its digest. `credentials` ({"username", "password"}) go to the engine with the
        request; None: docker-py's own lookup in the docker config. Layers done are passed to progress.
        PullRefused when the engine or the registry refuses."""
        self._check_cancelled()
        try:
            events = self.client.api.pull(
                repository,
                tag=tag,
                stream=True,
                decode=True,
                auth_config=dict(credentials) if credentials else None,
            )
            for event in events:
                if "error" in event:
                    reason = _first_line(Exception(str(event["error"])))
                    raise PullRefused(f"cannot pull {repository}: {reason}", reason=reason)
                if event.get("status") in ("Pull complete", "Already exists") and event.get("id"):
                    progress(f"layer {event['id']}: {str(event['status']).lower()}")
        except docker.errors.APIError as error:
            reason = _first_line(Exception(str(error.explanation or error)))
            raise PullRefused(f"cannot pull {repository}: {reason}", reason=reason) from error
        except _ENGINE_ERRORS as error:
            self._check_cancelled()
            raise EngineError(f"cannot pull {repository}: {_first_line(error)}") from error

    def repo_digests(self, reference: str) -> list[str]:
        """The `REPO@sha256:...` names a local image has from the registries it was pulled from (or
        pushed to)."""
        return [str(digest) for digest in self.image_attributes(reference).get("RepoDigests") or []]

    def image_labels(self, reference: str) -> dict[str, str] | None:
        """The labels of a local image, None when the engine does not have it."""
        try:
            return dict(self.client.images.get(reference).labels or {})
        except docker.errors.ImageNotFound:
            return None
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot look up image {reference}: {_first_line(error)}") from error

    def build_layer(
        self, spec: ContainerSpec, files: bytes, collect: Callable[[list[dict[str, Any]], IO[bytes]], T]
    ) -> tuple[ContainerResult, T | None]:
        """What a container of spec.image changes, as `collect` makes it (a layer file): the container
        gets `files` (a tar, extracted at /) and runs spec.command (root filesystem writable only with
        spec.writable_root); when that exits 0, `collect` gets the engine's diff (`docker diff`: Path,
        Kind) and the container's export (a tar stream of its whole filesystem). No `docker commit`: it
        stamps the time into the image. Returns how the command ended and what `collect` returned (None
        when the command failed); the container is removed whatever happens."""
        self._check_cancelled()
        container = self._create(spec)
        try:
            self.put_archive(container, "/", files)
            stream = self._call(
                f"cannot attach to the {spec.role} container",
                lambda: self.client.api.attach(
                    container.id, stdout=True, stderr=True, stream=True, logs=False, demux=True
                ),
            )
            capture = _Capture(spec.output_limit)
            reader = threading.Thread(target=capture.consume, args=(stream,), daemon=True)
            reader.start()
            try:
                self._call(f"cannot start the {spec.role} container", container.start)
                exit_code, timed_out = self._wait(container, spec)
                reader.join(timeout=30)
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
            self._check_cancelled()
            result = capture.result(exit_code=exit_code, timed_out=timed_out)
            if exit_code != 0 or timed_out:
                return result, None
            changes = self._call(f"cannot read what the {spec.role} container changed", container.diff)
            chunks = self._call(
                f"cannot export the {spec.role} container",
                lambda: self.client.api.export(container.id, chunk_size=MiB),
            )
            try:
                return result, collect(list(changes or []), io.BufferedReader(_ChunkReader(chunks), MiB))
            except _ENGINE_ERRORS as error:
                raise EngineError(f"cannot export the {spec.role} container: {_first_line(error)}") from error
            finally:
                _close(chunks)
        finally:
            self._remove(container)

    def load_archive(self, chunks: Iterable[bytes]) -> None:
        """`docker load` of an archive given as a stream of chunks (never whole in memory)."""
        try:
            # The engine answers with a stream of progress events; an error is one of them.
            for event in self.client.api.load_image(chunks) or ():  # type: ignore[no-untyped-call]
                if isinstance(event, dict) and event.get("error"):
                    raise EngineError(f"docker load refused the image: {event['error']}")
        except _ENGINE_ERRORS as error:
            raise EngineError(f"docker load refused the image: {_first_line(error)}") from error

    def image_attributes(self, reference: str) -> dict[str, Any]:
        """`docker inspect` of a local image (its Config, RootFS, Architecture...)."""
        image = self._call(f"cannot read image {reference}", lambda: self.client.images.get(reference))
        return dict(image.attrs)

    def images_labelled(self, label: str, value: str) -> list[ImageInfo]:
        """The local images whose `label` is `value`: id, tags, labels, creation time and size."""
        images = self._call(
            "cannot list images", lambda: self.client.images.list(filters={"label": f"{label}={value}"})
        )
        return [
            ImageInfo(
                id=str(image.id),
                tags=tuple(image.tags),
                labels=dict(image.labels or {}),
                created=str(image.attrs.get("Created", "")),
                size=int(image.attrs.get("Size", 0)),
            )
            for image in images
        ]

    def containers_using(self, image_id: str) -> list[str]:
        """The names of the containers (running or not) created from the image."""
        containers = self._call(
            "cannot list containers",
            lambda: self.client.containers.list(all=True, filters={"ancestor": image_id}),
        )
        return [_name(container) for container in containers]

    def remove_unused_image(self, image_id: str) -> str | None:
        """Remove a local image (every tag), never forced: None when removed, else why the engine kept it
        (a container uses it, images are layered on it)."""
        try:
            self.client.api.remove_image(image_id, force=False, noprune=False)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as error:
            if error.status_code == 409:
                return _first_line(error)
            raise EngineError(f"cannot remove image {image_id[7:19]}: {_first_line(error)}") from error
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot remove image {image_id[7:19]}: {_first_line(error)}") from error
        return None

    def usage(self) -> EngineUsage:
        """Every image, container and volume with its size, from one `docker system df -v` call."""
        listed = self._call("cannot ask the engine what it stores", self.client.df)
        return EngineUsage(
            images=tuple(
                ImageInfo(
                    id=str(image["Id"]),
                    tags=tuple(tag for tag in image.get("RepoTags") or () if tag != "<none>:<none>"),
                    labels=dict(image.get("Labels") or {}),
                    created=_rfc3339(int(image.get("Created") or 0)),
                    size=int(image.get("Size") or 0),
                    shared_size=max(0, int(image.get("SharedSize") or 0)),
                )
                for image in listed.get("Images") or ()
            ),
            containers=tuple(
                ContainerInfo(
                    id=str(container["Id"]),
                    name=str((container.get("Names") or ["?"])[0]).lstrip("/"),
                    image_id=str(container.get("ImageID") or ""),
                    labels=dict(container.get("Labels") or {}),
                    state=str(container.get("State") or ""),
                    volumes=tuple(
                        str(mount["Name"])
                        for mount in container.get("Mounts") or ()
                        if mount.get("Type") == "volume" and mount.get("Name")
                    ),
                    size=int(container.get("SizeRw") or 0),
                )
                for container in listed.get("Containers") or ()
            ),
            volumes=tuple(
                VolumeInfo(
                    name=str(volume["Name"]),
                    labels=dict(volume.get("Labels") or {}),
                    size=int((volume.get("UsageData") or {}).get("Size", -1)),
                )
                for volume in listed.get("Volumes") or ()
            ),
        )

    def remove_container(self, container_id: str) -> str | None:
        """Remove a container (stopped first) and its anonymous volumes: None when removed (or already
        gone), else the engine's reason."""
        try:
            self.client.api.remove_container(container_id, v=True, force=True)
        except docker.errors.NotFound:
            return None
        except _ENGINE_ERRORS as error:
            return _first_line(error)
        return None

    def remove_volume(self, name: str) -> str | None:
        """Remove a named volume, never forced: None when removed (or already gone), else the engine's
        reason (a container uses it)."""
        try:
            self.client.api.remove_volume(name, force=False)
        except docker.errors.NotFound:
            return None
        except _ENGINE_ERRORS as error:
            return _first_line(error)
        return None

    def ensure_volume(self, name: str, labels: Mapping[str, str] | None = None) -> str:
        """A named volume (created when missing, with the labels): caches that outlive runs."""
        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            self._call(
                f"cannot create volume {name}",
                lambda: self.client.volumes.create(name, labels={ROLE_LABEL: "cache", **(labels or {})}),
            )
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot look up volume {name}: {_first_line(error)}") from error
        return name

    def remove_volumes(self, *, containing: str) -> None:
        """Remove the named volumes whose names contain the text (throw-away caches)."""
        for volume in self._call("cannot list volumes", self.client.volumes.list):
            if containing in volume.name:
                try:
                    volume.remove(force=True)
                except _ENGINE_ERRORS as error:
                    raise EngineError(f"cannot remove volume {volume.name}: {_first_line(error)}") from error

    def put_archive(self, container: Any, path: str, data: bytes) -> None:
        """Extract a tar into a container (`docker cp` in); `path` must be on a writable volume."""
        try:
            container.put_archive(path, data)
        except _ENGINE_ERRORS as error:
            raise EngineError(
                f"cannot copy into the {_name(container)} container: {_first_line(error)}"
            ) from error

    def read_from_container(self, container: Any, path: str) -> bytes:
        """A tar of `path` inside a container (`docker cp` out)."""
        try:
            stream, _ = container.get_archive(path)
            return b"".join(stream)
        except docker.errors.NotFound as error:
            raise EngineError(f"{path} does not exist in {_image_name(container)}") from error
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot read {path} from {_name(container)}: {_first_line(error)}") from error

    def read_file(self, container: Any, path: str, *, limit: int) -> IO[bytes]:
        """One regular file out of a container (`docker cp` out, through the archive API), as a temporary
        file positioned at its start; the caller closes it.

        Raises FileRefused when `path` is missing, is not exactly one regular file (a symlink, a
        directory, a device, a FIFO), or is larger than `limit`; EngineError when the engine fails.
        """
        try:
            stream, stat = self.client.api.get_archive(container.id, path, chunk_size=MiB)
        except docker.errors.NotFound as error:
            raise FileRefused("it does not exist") from error
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot read {path} from {_name(container)}: {_first_line(error)}") from error
        kind = _file_kind(int(stat.get("mode", 0)), str(stat.get("linkTarget") or ""))
        if kind != "regular file":
            _close(stream)
            raise FileRefused(f"it is a {kind}, not a regular file")
        if int(stat.get("size", 0)) > limit:
            _close(stream)
            raise FileRefused(f"it is larger than {limit} bytes")
        archive = tempfile.SpooledTemporaryFile(max_size=64 * MiB)  # noqa: SIM115 (returned below)
        try:
            received = 0
            for chunk in stream:
                received += len(chunk)
                if received > limit + MiB:  # the file plus tar headers and padding
                    raise FileRefused(f"it is larger than {limit} bytes")
                archive.write(chunk)
            archive.seek(0)
            return _single_file(archive, limit)
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot read {path} from {_name(container)}: {_first_line(error)}") from error
        finally:
            archive.close()
            _close(stream)

    def read_from_image(self, image: str, path: str) -> bytes:
        """A tar of `path` inside an image (`docker cp` from a created, never started, container)."""
        container = self._create(ContainerSpec(image=image, command=["true"], role="copy"))
        try:
            return self.read_from_container(container, path)
        finally:
            self._remove(container)

    def remove_image(self, reference: str) -> None:
        """Untag `reference`, and remove the image when no other tag names it (`docker rmi`): a smoke
        test's own image after its run. Never raises: an image left behind is only space."""
        with contextlib.suppress(*_ENGINE_ERRORS):
            self.client.images.remove(reference)

    def load_image(self, archive: bytes) -> None:
        """Load an image archive (`docker load`)."""
        self.load_archive(iter((archive,)))  # a stream: requests would form-encode a tuple

    def save_image(self, reference: str, into: IO[bytes]) -> None:
        """`docker save` of a local image, written to `into`; ImageMissing when the engine has no image
        by that reference (or it is not a valid reference)."""
        try:
            for chunk in self.client.images.get(reference).save(named=True):
                into.write(chunk)
        except (docker.errors.ImageNotFound, docker.errors.NullResource) as error:
            raise ImageMissing(f"no image {reference} in the engine") from error
        except docker.errors.APIError as error:
            if error.status_code in (400, 404):  # 400: not a valid reference
                raise ImageMissing(f"{reference} is not an image reference the engine knows") from error
            raise EngineError(f"cannot read image {reference}: {_first_line(error)}") from error
        except _ENGINE_ERRORS as error:
            raise EngineError(f"cannot read image {reference}: {_first_line(error)}") from error

    def cancel(self) -> None:
        """Stop starting containers and remove every container of this run (Ctrl-C, SIGTERM)."""
        self._cancelled.set()
        self.remove_run_containers()

    def remove_run_containers(self) -> None:
        """Remove this run's containers; never raises (what could not be removed is in leftovers)."""
        listed = self._list_containers({"label": f"{RUN_LABEL}={self.run_id}"})
        known = {str(c.id): c for c in listed} if listed is not None else dict(self._created)
        for container in known.values():
            self._remove(container)

    def remove_containers(self, containers: Iterable[Any]) -> None:
        """Remove these containers; never raises (what could not be removed is in leftovers)."""
        for container in containers:
            self._remove(container)

    def remove_stale_containers(self) -> list[str]:
        """Remove the containers (and their anonymous volumes) left by osless processes of this host that
        are gone (killed, crashed, the engine restarted under them); a running osless keeps its own.
        Returns the names removed; never raises."""
        removed = []
        for container in self._list_containers({"label": f"{OWNER_HOST_LABEL}={self.owner.host}"}) or []:
            labels = container.labels or {}
            try:
                owner = Owner(
                    host=labels[OWNER_HOST_LABEL],
                    pid=int(labels[OWNER_PID_LABEL]),
                    start=labels.get(OWNER_START_LABEL, ""),
                )
            except (KeyError, ValueError):
                continue
            if owner.pid == self.owner.pid and owner.start == self.owner.start:
                continue
            if not owner.alive() and self._remove(container):
                removed.append(_name(container))
        return removed

    def _list_containers(self, filters: Mapping[str, str]) -> list[Any] | None:
        """The matching containers, None when the engine does not answer."""
        try:
            return list(self.client.containers.list(all=True, filters=dict(filters)))
        except _ENGINE_ERRORS:
            return None

    def _create(self, spec: ContainerSpec) -> Any:
        limits = spec.limits or UTILITY_LIMITS
        labels = {**spec.labels, **self.owner.labels(), RUN_LABEL: self.run_id, ROLE_LABEL: spec.role}
        options: dict[str, Any] = {
            "command": list(spec.command),
            "environment": dict(spec.env),
            "labels": labels,
            "network_mode": "bridge" if spec.network else "none",
            "privileged": False,
            "cap_drop": ["ALL"],
            "cap_add": list(spec.cap_add) or None,
            "security_opt": ["no-new-privileges"],
            "read_only": not spec.writable_root,
            "mem_limit": limits.memory,
            "memswap_limit": limits.memory,  # no swap beyond the memory limit
            "pids_limit": limits.pids,
            "nano_cpus": int(min(limits.cpus, self.cpus) * 1e9),
            "log_config": docker.types.LogConfig(type="none"),  # output is read live, never stored
            "volumes": {
                **{m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in spec.mounts},
                **{name: {"bind": target, "mode": "rw"} for name, target in spec.volumes.items()},
            },
            "mounts": [
                docker.types.Mount(target=target, source=None, type="volume", labels=labels)
                for target in spec.scratch
            ],
            "tmpfs": dict(spec.tmpfs),
        }
        if spec.working_dir:
            options["working_dir"] = spec.working_dir
        if spec.stdin is not None:
            options["stdin_open"] = True  # with the attach below: StdinOnce, closed when osless closes it
        if spec.user:
            options["user"] = spec.user
        if spec.platform:
            options["platform"] = spec.platform
        try:
            container = self.client.containers.create(spec.image, **options)
            self._created[str(container.id)] = container
            return container
        except docker.errors.ImageNotFound as error:
            raise EngineError(f"image {spec.image} is not in the engine") from error
        except _ENGINE_ERRORS as error:
            self._check_cancelled()
            raise EngineError(f"cannot create the {spec.role} container: {_first_line(error)}") from error

    def _remove(self, container: Any) -> bool:
        """Remove a container and its anonymous volumes; never raises. False (and the container noted in
        leftovers) when the engine could not do it."""
        try:
            container.remove(v=True, force=True)
        except docker.errors.NotFound:
            pass
        except _ENGINE_ERRORS as error:
            if "already in progress" not in str(error):
                if _name(container) not in self.leftovers:
                    self.leftovers.append(_name(container))
                return False
        self._created.pop(str(getattr(container, "id", "")), None)
        return True

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise EngineError("run cancelled")

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except _ENGINE_ERRORS as error:
            raise EngineError(f"{what}: {_first_line(error)}") from error


class _Capture:
    """Collects a demultiplexed (stdout, stderr) chunk stream, keeping at most `limit` bytes of each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = bytearray()
        self.err = bytearray()
        self.out_seen = 0
        self.err_seen = 0

    def consume(self, stream: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Read the stream to its end; what exceeds the limit is read and dropped. An engine that goes
        away ends the stream: the caller learns it from its next call."""
        with contextlib.suppress(*_ENGINE_ERRORS, OSError, ValueError):
            for out, err in stream:
                if out:
                    self.out_seen += len(out)
                    self.out += out[: max(0, self.limit - len(self.out))]
                if err:
                    self.err_seen += len(err)
                    self.err += err[: max(0, self.limit - len(self.err))]

    def result(self, *, exit_code: int, timed_out: bool) -> ContainerResult:
        return ContainerResult(
            exit_code=exit_code,
            stdout=bytes(self.out),
            stderr=bytes(self.err),
            timed_out=timed_out,
            stdout_truncated=self.out_seen > self.limit,
            stderr_truncated=self.err_seen > self.limit,
        )


class _StdinFeeder:
    """Writes a container's stdin through its attach socket, then half-closes the socket: the engine
    then closes the program's stdin (StdinOnce), which reads end of file. A program that exits without
    reading (all of) it leaves the write blocked or failing: `stop` ends it either way."""

    def __init__(self, sock: Any, data: bytes) -> None:
        self.socket = getattr(sock, "_sock", sock)  # the socket under socket.SocketIO (unix, tcp)
        self.data = data
        self.thread = threading.Thread(target=self._write, daemon=True, name="osless-stdin")

    def start(self) -> None:
        self.thread.start()

    def _write(self) -> None:
        with contextlib.suppress(OSError, ValueError, *_ENGINE_ERRORS):  # the program exited early
            self.socket.sendall(self.data)
            if self._ssh is not None:  # docker's ssh transport: the pipe to the ssh client is the socket
                self._ssh.stdin.close()
            else:
                self.socket.shutdown(socket.SHUT_WR)

    @property
    def _ssh(self) -> Any:
        """The ssh client process of an `ssh://` engine's connection, None for a socket."""
        return getattr(self.socket, "proc", None)

    def stop(self) -> None:
        """Unblocks a write the program will never read (the container has ended) and waits for it."""
        if self.thread.is_alive():
            with contextlib.suppress(OSError, ValueError, *_ENGINE_ERRORS):
                if self._ssh is not None:
                    self._ssh.terminate()
                else:
                    self.socket.shutdown(socket.SHUT_RDWR)
        if self.thread.ident is not None:
            self.thread.join(timeout=30)

    def close(self) -> None:
        with contextlib.suppress(OSError, *_ENGINE_ERRORS):
            self.socket.close()


def _demultiplexed(sock: Any) -> Iterator[tuple[bytes | None, bytes | None]]:
    """An attach socket's frames as (stdout, stderr) chunks, like `attach(..., demux=True)`."""
    for stream_id, data in docker.utils.socket.frames_iter(sock, tty=False):  # type: ignore[no-untyped-call]
        yield docker.utils.socket.demux_adaptor(stream_id, data)


# Go's os.FileMode type bits, as the engine reports them in an archive's stat header.
_MODE_KINDS = (
    (1 << 31, "directory"),
    (1 << 27, "symbolic link"),
    (1 << 26, "device"),
    (1 << 25, "named pipe"),
    (1 << 24, "socket"),
    (1 << 21, "character device"),
    (1 << 19, "irregular file"),
)


def _file_kind(mode: int, link_target: str) -> str:
    if link_target:
        return "symbolic link"
    for bit, kind in _MODE_KINDS:
        if mode & bit:
            return kind
    return "regular file"


def _single_file(archive: IO[bytes], limit: int) -> IO[bytes]:
    """The content of the one regular file in a tar, as a new temporary file positioned at 0."""
    try:
        with tarfile.open(fileobj=archive, mode="r|") as tar:
            members = iter(tar)
            member = next(members, None)
            if member is None:
                raise FileRefused("the engine sent an empty archive")
            if not member.isreg():
                raise FileRefused("it is not a regular file")
            if member.size > limit:
                raise FileRefused(f"it is larger than {limit} bytes")
            content = tempfile.SpooledTemporaryFile(max_size=64 * MiB)  # noqa: SIM115 (returned)
            extracted = tar.extractfile(member)
            assert extracted is not None
            for chunk in _chunks(extracted):
                content.write(chunk)
            if next(members, None) is not None:
                content.close()
                raise FileRefused("the engine sent more than one file")
            content.seek(0)
            return content
    except tarfile.TarError as error:
        raise FileRefused(f"the engine sent an unreadable archive ({error})") from error


class _ChunkReader(io.RawIOBase):
    """A readable file over a stream of byte chunks (the engine's export), for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")  # a view: no copy of the rest of a chunk at each read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _chunks(stream: IO[bytes], size: int = MiB) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def _close(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.close()


def _process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _name(container: Any) -> str:
    try:
        return str(container.name)
    except Exception:  # a name for a message only
        return str(getattr(container, "id", "?"))[:12]


def _image_name(container: Any) -> str:
    try:
        return str(container.image.tags or container.image.id)
    except _ENGINE_ERRORS:
        return _name(container)


def _rfc3339(seconds: int) -> str:
    """An engine timestamp (seconds since the epoch) as RFC 3339, the way image labels write it."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

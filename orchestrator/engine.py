"""The container engine: one place that talks to Docker, so every container osless starts is labelled,
bounded in time and always removed, including on failure and Ctrl-C.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import docker
import docker.errors
import requests.exceptions

from orchestrator.errors import EngineError

RUN_LABEL = "osless.run"
ROLE_LABEL = "osless.role"
ENGINE_HINT = "start one with `sudo scripts/setup-host`, or point DOCKER_HOST at a running engine"


@dataclass(frozen=True, kw_only=True)
class Mount:
    """A host directory bind-mounted into a container."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """Everything needed to run one short-lived container to completion."""

    image: str
    command: Sequence[str]
    role: str  # "build" or "smoke": shown in labels and errors
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[Mount] = ()
    volumes: Mapping[str, str] = field(default_factory=dict)  # named volume -> mount point
    working_dir: str | None = None
    user: str | None = None
    platform: str | None = None
    timeout: float = 600.0
    read_only_root: bool = False
    drop_privileges: bool = False  # all capabilities dropped, no-new-privileges


@dataclass(frozen=True, kw_only=True)
class ContainerResult:
    """How a container ended and what it printed."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool


class Engine:
    """A connection to one Docker engine, tagging every container it starts with this run's id."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.run_id = uuid.uuid4().hex[:12]
        self._cancelled = threading.Event()

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
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
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
        return str(self.client.version().get("Version", "unknown"))

    def image_id(self, reference: str) -> str | None:
        """The id of a local image, or None when the engine does not have it."""
        try:
            return str(self.client.images.get(reference).id)
        except docker.errors.ImageNotFound:
            return None

    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run a container to completion (or its timeout) and remove it, whatever happens."""
        if self._cancelled.is_set():
            raise EngineError("run cancelled")
        container = self._create(spec)
        try:
            if self._cancelled.is_set():
                raise EngineError("run cancelled")
            container.start()
            timed_out = False
            try:
                status = container.wait(timeout=spec.timeout)
                exit_code = int(status.get("StatusCode", -1))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                # The wait's read timed out: the container outlived its budget.
                timed_out = True
                container.kill()
                exit_code = -1
            stdout = container.logs(stdout=True, stderr=False)
            stderr = container.logs(stdout=False, stderr=True)
            return ContainerResult(exit_code=exit_code, stdout=stdout, stderr=stderr, timed_out=timed_out)
        except docker.errors.APIError as error:
            raise EngineError(f"{spec.role} container failed: {_first_line(error)}") from error
        finally:
            self._remove(container)

    def start_long_lived(self, spec: ContainerSpec) -> Any:
        """Start a container that idles until this run ends (or is cancelled), for `exec` to use."""
        if self._cancelled.is_set():
            raise EngineError("run cancelled")
        container = self._create(replace(spec, command=["sleep", "infinity"]))
        try:
            container.start()
        except docker.errors.APIError as error:
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
    ) -> ContainerResult:
        """Run a command in a long-lived container; coreutils `timeout` bounds it (exit 124 when it fires)."""
        if self._cancelled.is_set():
            raise EngineError("run cancelled")
        bounded = ["timeout", "--kill-after=10", f"{timeout:g}", *command]
        try:
            created = self.client.api.exec_create(
                container.id, bounded, environment=dict(env), workdir=working_dir, user=user
            )
            stdout, stderr = self.client.api.exec_start(created["Id"], demux=True)
            exit_code = int(self.client.api.exec_inspect(created["Id"]).get("ExitCode") or 0)
        except (docker.errors.APIError, requests.exceptions.RequestException) as error:
            raise EngineError(
                f"exec in the {container.name} container failed: {_first_line(error)}"
            ) from error
        return ContainerResult(
            exit_code=exit_code, stdout=stdout or b"", stderr=stderr or b"", timed_out=exit_code == 124
        )

    def copy_image(self, source: Engine, reference: str) -> None:
        """`docker save` on source streamed into `docker load` here: the same image, the same id."""
        try:
            self.client.api.load_image(source.client.api.get_image(reference))  # type: ignore[no-untyped-call]
        except (docker.errors.APIError, requests.exceptions.RequestException) as error:
            raise EngineError(f"cannot copy {reference} between engines: {_first_line(error)}") from error

    def ensure_volume(self, name: str) -> str:
        """A named volume (created when missing): caches that outlive runs."""
        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            self.client.volumes.create(name, labels={ROLE_LABEL: "cache"})
        return name

    def remove_volumes(self, *, containing: str) -> None:
        """Remove the named volumes whose names contain the text (throw-away caches)."""
        for volume in self.client.volumes.list():
            if containing in volume.name:
                volume.remove(force=True)

    def put_archive(self, container: Any, path: str, data: bytes) -> None:
        """Extract a tar into a container (`docker cp` in)."""
        try:
            container.put_archive(path, data)
        except docker.errors.APIError as error:
            raise EngineError(
                f"cannot copy into the {container.name} container: {_first_line(error)}"
            ) from error

    def read_from_container(self, container: Any, path: str) -> bytes:
        """A tar of `path` inside a container (`docker cp` out)."""
        try:
            stream, _ = container.get_archive(path)
            return b"".join(stream)
        except docker.errors.NotFound as error:
            raise EngineError(
                f"{path} does not exist in {container.image.tags or container.image.id}"
            ) from error
        except docker.errors.APIError as error:
            raise EngineError(f"cannot read {path} from {container.name}: {_first_line(error)}") from error

    def read_from_image(self, image: str, path: str) -> bytes:
        """A tar of `path` inside an image (`docker cp` from a created, never started, container)."""
        container = self._create(ContainerSpec(image=image, command=["true"], role="copy"))
        try:
            return self.read_from_container(container, path)
        finally:
            self._remove(container)

    def load_image(self, archive: bytes) -> None:
        """Load an image archive (`docker load`)."""
        try:
            self.client.images.load(archive)
        except docker.errors.APIError as error:
            raise EngineError(f"docker load refused the image: {_first_line(error)}") from error

    def tag_image(self, image_id: str, repository: str, tag: str) -> None:
        self.client.images.get(image_id).tag(repository, tag)

    def cancel(self) -> None:
        """Stop starting containers and remove every container of this run (Ctrl-C, SIGTERM)."""
        self._cancelled.set()
        self.remove_run_containers()

    def remove_run_containers(self) -> None:
        for container in self.client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={self.run_id}"}
        ):
            self._remove(container)

    def _create(self, spec: ContainerSpec) -> Any:
        options: dict[str, Any] = {
            "command": list(spec.command),
            "environment": dict(spec.env),
            "labels": {RUN_LABEL: self.run_id, ROLE_LABEL: spec.role},
            "network_mode": "none",
            "privileged": False,
            "read_only": spec.read_only_root,
            "volumes": {
                **{m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in spec.mounts},
                **{name: {"bind": target, "mode": "rw"} for name, target in spec.volumes.items()},
            },
        }
        if spec.working_dir:
            options["working_dir"] = spec.working_dir
        if spec.user:
            options["user"] = spec.user
        if spec.platform:
            options["platform"] = spec.platform
        if spec.drop_privileges:
            options["cap_drop"] = ["ALL"]
            options["security_opt"] = ["no-new-privileges"]
        try:
            return self.client.containers.create(spec.image, **options)
        except docker.errors.ImageNotFound as error:
            raise EngineError(f"image {spec.image} is not in the engine") from error
        except docker.errors.APIError as error:
            raise EngineError(f"cannot create the {spec.role} container: {_first_line(error)}") from error

    @staticmethod
    def _remove(container: Any) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            if "already in progress" not in str(error):
                raise


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

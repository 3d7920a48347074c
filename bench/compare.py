"""What osless is measured against, for synthetic services and real programs alike.

Both take each target's steps from osless itself (its environment, placeholders, workspace path and
artifact: stages/build.py's own functions), so they run exactly what osless runs:

- baseline: what teams write instead and what works with Docker 20.10's classic builder (no BuildKit):
  per target, a Dockerfile that COPYs the source and RUNs the steps (`docker build`), `docker create`
  + `docker cp` the binary out, `docker build --platform P` of a FROM scratch + COPY context, one
  `docker run` of it; J targets at a time. Its layer cache is all it has: a changed file invalidates
  the COPY and every step after it.
- lower bound: the steps alone, `docker exec`'d into one warm container per toolchain image, each
  target in a writable copy of its source at osless's workspace path (copied before the clock starts),
  with caches (ccache, Go's build cache, cargo's target directory) in fresh volumes at osless's paths:
  a first run builds from scratch, a later one is the bare incremental build. Plus one `docker run`
  of the image osless built per smoke check of the recipe, as the smoke test's stand-in.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import shlex
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bench.common import BUILD_TIMEOUT, Run, capture, docker, in_parallel, timed
from orchestrator.bootstrap.spec import image_reference
from orchestrator.pipeline.provenance import provenance
from orchestrator.platforms import PLATFORMS, Platform
from orchestrator.recipe.model import Project, Service
from orchestrator.recipe.placeholders import build_values, script_env
from orchestrator.stages.build import (
    BUILD_USER,
    CACHE_DIR,
    OUTPUT_DIR,
    PROJECT_DIR,
    WORKSPACE_DIR,
    artifact_path,
    build_commands,
    container_env,
    workspace_dir,
)
from orchestrator.stages.package import image_tag
from orchestrator.stages.smoke import judge, smoke_input

BASELINE_REPOSITORY = "osless-bench-baseline"


@dataclass(frozen=True, kw_only=True)
class Target:
    """One (service, platform) as osless would build it: the steps with every placeholder filled."""

    service: Service
    platform: Platform
    toolchain_image: str
    env: dict[str, str]  # the steps' environment
    steps: tuple[tuple[str, ...], ...]
    workspace: str  # the writable copy of the source the steps run in
    source: str  # the service's source as the warm container sees it (read-only)
    output: str  # `{output}`: its directory exists before the steps run, as in osless's builders
    binary: str  # where the steps leave the binary: `{output}`, or the recipe's artifact

    @property
    def name(self) -> str:
        return f"{self.service.name} {self.platform.name}"

    @property
    def image(self) -> str:
        """The image osless made of it (in the engine after an osless run)."""
        return image_tag(self.service, self.platform)


def targets_of(project: Project, platforms: Collection[str]) -> list[Target]:
    """Every target of the project on those platforms, with the environment and steps osless gives it
    ({JOBS} as osless's default: the build's CPU limit, at most this machine's cores)."""
    targets = []
    for service in project.services.values():
        toolchain = project.toolchains[service.toolchain]
        epoch = provenance(service.source).source_date_epoch
        for platform in (PLATFORMS[name] for name in service.platforms if name in platforms):
            env = container_env(service, toolchain, platform, epoch)
            workspace = workspace_dir(service, platform)
            output = f"{OUTPUT_DIR}/{service.name}/{platform.slug}/bin/{service.build.output}"
            jobs = max(1, min(math.ceil(service.build.limits.cpus), os.cpu_count() or 1))
            values = build_values(platform, env, output=output, jobs=jobs, workspace=workspace)
            targets.append(
                Target(
                    service=service,
                    platform=platform,
                    toolchain_image=toolchain.image or image_reference(toolchain),
                    env=script_env(values) if service.build.script is not None else env,
                    steps=tuple(tuple(argv) for argv in build_commands(service, values)),
                    workspace=workspace,
                    source=f"{PROJECT_DIR}/{service.source.relative_to(project.root).as_posix()}",
                    output=output,
                    binary=artifact_path(service, values, workspace) or output,
                )
            )
    return targets


def run_image(image: str, target: Target) -> None:
    """The smoke test's stand-in: one run of the image per check of the recipe (its arguments, stdin
    and files), each judged as osless judges it: the same work as osless's smoke stage."""
    for check in target.service.smoke.checks:
        stdin = smoke_input(check)
        argv = ["docker", "run", "--rm", "--network", "none", "--platform", target.platform.name]
        argv += ["--interactive"] if stdin is not None else []
        argv += [f"--volume={path}:{inside}:ro" for inside, path in sorted(check.files.items())]
        result = capture([*argv, image, *check.args], stdin=stdin, timeout=check.timeout + 60)
        reason, diff = judge(
            check.expected(target.platform.name),
            stdout=result.stdout.decode(errors="replace"),
            stderr=result.stderr.decode(errors="replace"),
            exit_code=result.returncode,
            timed_out=False,
            timeout=check.timeout,
        )
        if reason is not None:
            raise RuntimeError(f"{image} ({target.name}), check {check.name!r}: {reason}\n{diff or ''}")


# --- Lower bound ---


class WarmContainers:
    """One idle container per toolchain image, the project's root mounted read-only where osless's
    builders see it, and fresh (labelled, anonymous) volumes for the caches, workspaces and outputs:
    starting them makes every cache empty. A context manager: they are removed on exit."""

    def __init__(self, bench: Run, project_root: Path, group: str) -> None:
        self.bench = bench
        self.project_root = project_root
        self.group = group
        self.containers: dict[str, str] = {}  # toolchain image -> container

    def __enter__(self) -> WarmContainers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.containers:
            docker("rm", "--force", "--volumes", *self.containers.values(), check=False)
        self.containers = {}

    def start(self, targets: Collection[Target]) -> None:
        """Containers for these targets' toolchain images, the ones before removed: caches empty again."""
        self.__exit__()
        for image in sorted({target.toolchain_image for target in targets}):
            name = f"osless-bench-{self.bench.run_id}-{self.group}-{len(self.containers)}"
            volumes = [
                f"--mount=type=volume,dst={path},volume-label={self.bench.label}"
                for path in (CACHE_DIR, WORKSPACE_DIR, OUTPUT_DIR)
            ]
            docker(
                "run", "--detach", "--name", name, "--label", self.bench.label, "--network", "none",
                *volumes, "--tmpfs", "/tmp:rw,exec,nosuid,nodev",
                "--volume", f"{self.project_root}:{PROJECT_DIR}:ro",
                "--entrypoint", "sleep", image, "infinity",
            )  # fmt: skip
            self.containers[image] = name
            docker("exec", "--user", "0:0", name, "chmod", "1777", CACHE_DIR, WORKSPACE_DIR, OUTPUT_DIR)

    def sync(self, target: Target) -> None:
        """The target's workspace made (or brought up to date with) a writable copy of its source, the
        mtimes kept: in an existing copy only the files changed since are newer than the objects."""
        script = 'mkdir -p -- "$1" "$3" && cp -a -- "$2/." "$1/" && chmod -R u+w -- "$1"'
        docker(
            "exec", "--user", BUILD_USER, self.containers[target.toolchain_image],
            "sh", "-c", script, "sh", target.workspace, target.source, posixpath.dirname(target.output),
            timeout=BUILD_TIMEOUT,
        )  # fmt: skip

    def build(self, target: Target) -> None:
        """The target's steps, bare, in its workspace, with osless's environment for them; their output
        appended to lower-bound-<group>-<service>-<platform>.log in the bench's directory (each run of
        them: the incremental one shows what it recompiled)."""
        env = [f"--env={name}={value}" for name, value in target.env.items()]
        container = self.containers[target.toolchain_image]
        run_in = ["docker", "exec", "--user", BUILD_USER, "--workdir", target.workspace, *env, container]
        log = self.bench.root / f"lower-bound-{self.group}-{target.service.name}-{target.platform.slug}.log"
        with log.open("ab") as stream:
            for argv in target.steps:
                result = capture([*run_in, *argv], timeout=BUILD_TIMEOUT)
                stream.write(f"$ {shlex.join(argv)}\n".encode() + result.stdout + result.stderr)
                if result.returncode != 0:
                    raise RuntimeError(f"{target.name}: {argv[0]} exited {result.returncode} (log {log})")


def lower_bound(warm: WarmContainers, targets: Collection[Target]) -> float:
    """The targets' workspaces synced (before the clock), then timed: their steps, J targets at a time,
    and one run of each image osless built per smoke check."""
    in_parallel(warm.bench.jobs, warm.sync, targets)

    def one(target: Target) -> None:
        warm.build(target)
        run_image(target.image, target)

    seconds = timed(lambda: in_parallel(warm.bench.jobs, one, targets))
    print(f"  lower bound ({len(targets)} targets): {seconds:.1f} s", flush=True)
    return seconds


# --- Baseline ---


def baseline(bench: Run, targets: Collection[Target], contexts: Path) -> float:
    """Every target's Dockerfiles built and its image run once, J targets at a time."""
    seconds = timed(
        lambda: in_parallel(bench.jobs, lambda target: _baseline(bench, target, contexts), targets)
    )
    print(f"  Dockerfiles ({len(targets)} targets): {seconds:.1f} s", flush=True)
    return seconds


def remove_baseline_images(bench: Run) -> None:
    """The baselines' images and their layers: the next baseline starts without a layer cache."""
    images = docker("images", "--quiet", "--filter", f"reference={BASELINE_REPOSITORY}/*").split()
    if images:
        docker("rmi", "--force", *sorted(set(images)), check=False)
    docker("image", "prune", "--force", "--filter", f"label={bench.label}", check=False)


def _baseline(bench: Run, target: Target, contexts: Path) -> None:
    service, platform = target.service, target.platform
    context = contexts / f"{service.name}-{platform.slug}"
    (context / "image").mkdir(parents=True, exist_ok=True)
    dockerfile = context / "Dockerfile.build"
    dockerfile.write_text(_build_dockerfile(bench, target))
    binary = posixpath.basename(target.binary)
    (context / "image" / "Dockerfile").write_text(
        # COPY first: the classic builder labels a metadata-only step of FROM scratch with the host's
        # platform, and then refuses to COPY onto it for a foreign --platform.
        f"FROM scratch\nCOPY {binary} /{service.build.output}\nUSER {service.image.user}\n"
        f"ENTRYPOINT {json.dumps(list(service.image.entrypoint))}\nLABEL {bench.label}\n"
    )
    slug = f"{service.name}:{platform.tag_suffix}"
    stage, image = f"{BASELINE_REPOSITORY}/build-{slug}", f"{BASELINE_REPOSITORY}/{slug}"
    build = ("build", "--quiet", "--force-rm")
    docker(*build, "-t", stage, "-f", str(dockerfile), str(service.source), timeout=BUILD_TIMEOUT)
    container = docker("create", "--label", bench.label, stage, "true").strip()
    try:
        docker("cp", f"{container}:{target.binary}", str(context / "image" / binary))
    finally:
        docker("rm", "--force", container, check=False)
    docker(*build, "--platform", platform.name, "-t", image, str(context / "image"), timeout=BUILD_TIMEOUT)
    run_image(image, target)


def _build_dockerfile(bench: Run, target: Target) -> str:
    """The toolchain stage: the environment osless gives the steps, the source COPYed to the workspace
    path, a RUN per step (as root: what such Dockerfiles do)."""
    env = " ".join(f"{name}={_quoted(value)}" for name, value in target.env.items())
    runs = "".join(f"RUN {json.dumps(list(argv))}\n" for argv in target.steps)
    return (
        f"FROM {target.toolchain_image}\nLABEL {bench.label}\nENV {env}\n"
        f"WORKDIR {posixpath.dirname(target.output)}\nWORKDIR {target.workspace}\n"
        f"COPY . {target.workspace}\n{runs}"
    )


def _quoted(value: str) -> str:
    """A Dockerfile ENV value in double quotes: JSON escapes quotes and backslashes, `$` is escaped too
    (ENV would substitute variables)."""
    return json.dumps(value).replace("$", "\\$")

"""The warm builders without an engine: their containers are removed on exit, whatever happens inside;
they mount the workspace volume; a build says how long each part took, records its workspace when it
succeeded, and the next build syncs it (a fresh copy with --rebuild, or after a failure)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import ROLE_LABEL, ContainerResult
from orchestrator.platforms import PLATFORMS
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Project
from orchestrator.stages import workspace
from orchestrator.stages.build import Builders, BuildResult, StepTime, build
from tests.factories import service_recipe

RECIPE = service_recipe("hello", ["{CC}", "-o", "{output}", "main.c"])


class FakeEngine:
    """Starts containers as plain objects and records which were removed; runs every exec as a success
    (the workspace script says it kept the workspace when it was given a token to expect), except the
    build steps when `failing`; a binary is a few bytes."""

    cpus = 4

    def __init__(self, *, failing: bool = False) -> None:
        self.started: list[object] = []
        self.removed: list[object] = []
        self.specs: list[Any] = []
        self.volumes: dict[str, Any] = {}
        self.execs: list[list[str]] = []
        self.failing = failing

    def image_id(self, reference: str) -> str | None:
        return "sha256:" + "2" * 64

    def ensure_volume(self, name: str, labels: Any = None) -> str:
        self.volumes[name] = labels
        return name

    def start_long_lived(self, spec: Any) -> object:
        container = object()
        self.started.append(container)
        self.specs.append(spec)
        return container

    def exec(self, container: object, command: Any, **kwargs: Any) -> ContainerResult:
        self.execs.append(list(command))
        stdout, code = b"", 0
        if command[2:3] == [workspace.SCRIPT]:
            stdout = b"kept\n" if command[8] else b"fresh\n"
        elif command[0] == "gcc" and self.failing:
            code = 1
        return ContainerResult(exit_code=code, stdout=stdout, stderr=b"", timed_out=False)

    def read_file(self, container: object, path: str, *, limit: int) -> io.BytesIO:
        return io.BytesIO(b"\x7fELF")

    @property
    def prepared(self) -> list[list[str]]:
        """The workspace script's commands, in order."""
        return [command for command in self.execs if command[2:3] == [workspace.SCRIPT]]

    def remove_containers(self, containers: Iterable[object]) -> None:
        self.removed.extend(containers)


@pytest.fixture
def start(make_project: Callable[[dict[str, str]], Path]) -> Callable[[Builders], object]:
    root = make_project(
        {"recipes/hello.toml": RECIPE, "sources/hello/main.c": "int main(void) { return 0; }\n"}
    )
    project = load_project(root)
    service = project.services["hello"]

    def start(builders: Builders) -> object:
        return builders.container(project.toolchains["gcc"], "osless-toolchain/gcc:x", service)

    return start


def _builders(engine: FakeEngine, root: Path) -> Builders:
    return Builders(engine, root, root / "out")  # type: ignore[arg-type]


def test_the_builders_are_removed_when_the_run_ends(
    start: Callable[[Builders], object], tmp_path: Path
) -> None:
    engine = FakeEngine()
    with _builders(engine, tmp_path / "project") as builders:
        first = start(builders)
        assert start(builders) is first  # one warm builder per (toolchain image, service)
        assert engine.removed == []
    assert engine.removed == engine.started == [first]


def test_the_builders_are_removed_whatever_ends_the_run(
    start: Callable[[Builders], object], tmp_path: Path
) -> None:
    engine = FakeEngine()
    builders = _builders(engine, tmp_path / "project")
    with pytest.raises(KeyboardInterrupt), builders:
        start(builders)
        raise KeyboardInterrupt
    assert engine.removed == engine.started and len(engine.started) == 1
    builders.__exit__(None, None, None)
    assert len(engine.removed) == 1  # removed once


AMD64 = PLATFORMS["linux/amd64"]


@pytest.fixture
def project(make_project: Callable[[dict[str, str]], Path]) -> Project:
    return load_project(
        make_project({"recipes/hello.toml": RECIPE, "sources/hello/main.c": "int main(void) { return 0; }\n"})
    )


def _build(builders: Builders, project: Project, jobs: int | None = None) -> BuildResult:
    service = project.services["hello"]
    return build(
        builders,
        service,
        toolchain=project.toolchains["gcc"],
        toolchain_image="osless-toolchain/gcc:x",
        platform=AMD64,
        output_dir=builders.out_root / "hello" / AMD64.slug,
        source_date_epoch=0,
        jobs=jobs,
    )


def test_the_builders_keep_workspaces_in_a_volume(project: Project) -> None:
    engine = FakeEngine()
    with _builders(engine, project.root) as builders:
        _build(builders, project)
        volume = builders.workspace_volume(project.toolchains["gcc"], "osless-toolchain/gcc:x")
    assert volume.startswith("osless-work-gcc-")
    [spec] = engine.specs
    assert spec.volumes[volume] == "/workspace" and "/workspace" not in spec.scratch
    assert engine.volumes[volume][ROLE_LABEL] == "workspace"


def test_a_build_is_timed_and_its_workspace_synced_by_the_next(project: Project) -> None:
    engine = FakeEngine()
    with _builders(engine, project.root) as builders:
        first = _build(builders, project)
    assert first.ok and not first.incremental
    assert set(first.timings) == {"builder", "workspace", "steps", "copy-out"}
    assert abs(sum(first.timings.values()) - first.seconds) < 0.05
    assert [(s.label, s.exit_code) for s in first.steps] == [("the build command (gcc)", 0)]
    assert isinstance(first.steps[0], StepTime)
    log = first.log.read_text()
    assert f"a fresh copy of /project/sources/hello: {workspace.NO_RECORD}" in log
    (project.root / "sources" / "hello" / "main.c").write_text("int main(void) { return 1; }\n")
    with _builders(engine, project.root) as builders:  # the next run: the source read again
        second = _build(builders, project, jobs=3)  # another {JOBS}: the same build
    assert second.ok and second.incremental
    expected, token, removing, *paths = engine.prepared[1][8:]
    assert expected == engine.prepared[0][9] and token != expected  # the first build's token
    assert (removing, paths) == ("0", ["./main.c"])
    assert (
        "workspace kept from the previous build: 1 file changed (main.c), 0 removed" in second.log.read_text()
    )


def test_rebuild_and_a_failed_build_give_a_fresh_copy(project: Project) -> None:
    engine = FakeEngine()
    with _builders(engine, project.root) as builders:
        _build(builders, project)
    with Builders(engine, project.root, project.root / "out", rebuild=True) as builders:  # type: ignore[arg-type]
        rebuilt = _build(builders, project)
    assert not rebuilt.incremental and engine.prepared[-1][8] == ""
    assert "a fresh copy of /project/sources/hello: --rebuild" in rebuilt.log.read_text()
    failing = FakeEngine(failing=True)
    with _builders(failing, project.root) as builders:
        assert not _build(builders, project).ok
    with _builders(engine, project.root) as builders:
        _build(builders, project)
    assert engine.prepared[-1][8] == engine.prepared[-2][9]  # the --rebuild's record: the failure left none


def test_a_clean_build_in_a_cache_namespace_records_no_workspace(project: Project) -> None:
    """--check-reproducible's builds: their volumes are removed after them, a record would outlive them."""
    engine = FakeEngine()
    with Builders(engine, project.root, project.root / "out", "-check-run-a", rebuild=True) as builders:  # type: ignore[arg-type]
        assert _build(builders, project).ok
        assert builders.workspace_volume(project.toolchains["gcc"], "x").endswith("-check-run-a")
    assert not (project.root / "out" / ".workspaces").exists()

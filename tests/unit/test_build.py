"""The warm builders as a context manager, without an engine: their containers are removed on exit,
whatever happens inside."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.recipe.loader import load_project
from orchestrator.stages.build import Builders
from tests.factories import service_recipe

RECIPE = service_recipe("hello", ["{CC}", "-o", "{output}", "main.c"])


class FakeEngine:
    """Starts containers as plain objects and records which were removed."""

    def __init__(self) -> None:
        self.started: list[object] = []
        self.removed: list[object] = []

    def image_id(self, reference: str) -> str | None:
        return "sha256:" + "2" * 64

    def ensure_volume(self, name: str, labels: Any = None) -> str:
        return name

    def start_long_lived(self, spec: Any) -> object:
        container = object()
        self.started.append(container)
        return container

    def exec(self, container: object, command: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(exit_code=0, stderr=b"")

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

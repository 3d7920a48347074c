"""Engine routing and run-wide cleanup, without an engine: each platform goes to its engine, and an
engine that does not answer is noted, never raised."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.outputs.progress import ProgressView
from orchestrator.pipeline.engines import DEFAULT, Engines
from orchestrator.platforms import PLATFORMS


class FakeEngine:
    def __init__(self, *, stale: list[str] | None = None, gone: bool = False) -> None:
        self.stale = stale or []
        self.gone = gone
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.gone:
            raise EngineError("Cannot connect to the Docker daemon\nsecond line")

    def cancel(self) -> None:
        self._call("cancel")

    def remove_run_containers(self) -> None:
        self._call("remove_run_containers")

    def remove_stale_containers(self) -> list[str]:
        self._call("remove_stale_containers")
        return self.stale


def _engines(default: FakeEngine, arm64: FakeEngine) -> Engines:
    return Engines(default, {"linux/arm64": arm64})  # type: ignore[arg-type,dict-item]


def test_each_platform_goes_to_its_engine() -> None:
    default, arm64 = FakeEngine(), FakeEngine()
    engines = _engines(default, arm64)
    assert engines.name_for(PLATFORMS["linux/amd64"]) == DEFAULT
    assert engines.for_platform(PLATFORMS["linux/amd64"]) is default
    assert engines.name_for(PLATFORMS["linux/arm64"]) == "linux/arm64"
    assert engines.for_platform(PLATFORMS["linux/arm64"]) is arm64
    assert list(engines.by_name()) == [DEFAULT, "linux/arm64"]
    assert Engines.sees_local_files(DEFAULT) and not Engines.sees_local_files("linux/arm64")


def test_the_default_engines_toolchains_come_first() -> None:
    needed = [("linux/arm64", "gcc"), (DEFAULT, "go"), (DEFAULT, "gcc")]
    assert sorted(needed, key=Engines.default_first) == [
        (DEFAULT, "gcc"),
        (DEFAULT, "go"),
        ("linux/arm64", "gcc"),
    ]


def test_cleanup_reaches_every_engine_and_a_gone_one_is_noted() -> None:
    default, arm64 = FakeEngine(stale=["osless-old"]), FakeEngine(gone=True)
    engines = _engines(default, arm64)
    output = io.StringIO()
    with ProgressView(Console(file=output, force_terminal=False, width=200), groups=False) as view:
        engines.remove_stale_containers(view)
        engines.remove_run_containers(view)
        engines.cancel(view)
    for engine in (default, arm64):
        assert engine.calls == ["remove_stale_containers", "remove_run_containers", "cancel"]
    text = output.getvalue()
    assert "removed 1 containers left by an earlier run: osless-old" in text
    assert (
        "could not remove containers: Cannot connect to the Docker daemon; the next run removes them" in text
    )
    assert "second line" not in text

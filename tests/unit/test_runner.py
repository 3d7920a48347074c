"""The Runner's guards, without an engine: every phase that fails for one toolchain, source or target
is recorded as that target's failure, and report.json is always written (also on an interrupt)."""

from __future__ import annotations

import errno
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator.errors import EngineError
from orchestrator.outputs.profile import PHASES
from orchestrator.outputs.profile import STAGES as PROFILE_STAGES
from orchestrator.outputs.progress import ProgressView
from orchestrator.pipeline import cache
from orchestrator.pipeline import runner as runner_module
from orchestrator.pipeline.runner import BuildOptions, Runner
from orchestrator.pipeline.targets import select_targets
from orchestrator.recipe.loader import load_project
from orchestrator.recipe.model import Project
from orchestrator.stages.toolchain import ToolchainImage
from tests.factories import service_recipe

MAIN_C = "int main(void) { return 0; }\n"


class FakeEngine:
    """An engine that answers the runner's cleanup calls and refuses to start a builder."""

    version = "fake"
    cpus = 2
    cancelled = False
    run_id = "fake"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def remove_stale_containers(self) -> list[str]:
        self.calls.append("remove_stale_containers")
        return []

    def remove_run_containers(self) -> None:
        self.calls.append("remove_run_containers")

    def remove_containers(self, containers: Iterable[Any]) -> None:
        self.calls.append(f"remove_containers {list(containers)}")

    def cancel(self) -> None:
        self.calls.append("cancel")

    def image_id(self, reference: str) -> str | None:
        return None

    def ensure_volume(self, name: str, labels: Any = None) -> str:
        raise EngineError("the fake engine starts no builder")


@pytest.fixture
def view() -> Iterator[ProgressView]:
    with ProgressView(Console(file=io.StringIO(), force_terminal=False), groups=False) as view:
        yield view


@pytest.fixture
def project(make_project: Callable[[dict[str, str]], Path]) -> Path:
    files = {}
    for name in ("a", "b"):
        files[f"recipes/{name}.toml"] = service_recipe(name, ["{CC}", "-o", "{output}", "main.c"])
        files[f"sources/{name}/main.c"] = MAIN_C
    return make_project(files)


def _toolchain_present(monkeypatch: pytest.MonkeyPatch) -> None:
    image = ToolchainImage(
        name="gcc", reference="osless-toolchain/gcc:x", image_id="sha256:" + "1" * 64, bootstrapped=False
    )
    monkeypatch.setattr(runner_module, "provision", lambda *args, **kwargs: image)
    monkeypatch.setattr(runner_module, "debian_slim_size", lambda *args: 1024)


def _run(
    project: Path, view: ProgressView, engine: FakeEngine | None = None, *, loaded: Project | None = None
) -> tuple[Path, Any]:
    out = project / "out"
    loaded = loaded or load_project(project)
    options = BuildOptions(out_root=out)
    report = Runner(loaded, options, engine or FakeEngine(), view).run(select_targets(loaded, [], []))  # type: ignore[arg-type]
    return out, report


def _targets(out: Path) -> dict[str, dict[str, Any]]:
    return {t["service"]: t for t in json.loads((out / "report.json").read_text())["targets"]}


def test_a_toolchain_that_cannot_be_provisioned_fails_its_targets_and_the_report_is_written(
    project: Path, view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unwritable(*args: Any, **kwargs: Any) -> ToolchainImage:
        raise OSError(
            errno.ENOSPC, "No space left on device", str(project / "out" / ".toolchains" / "gcc.lock")
        )

    monkeypatch.setattr(runner_module, "provision", unwritable)
    monkeypatch.setattr(runner_module, "debian_slim_size", unwritable)
    out, report = _run(project, view)
    targets = _targets(out)
    assert {t["failed_stage"] for t in targets.values()} == {"toolchain"}
    assert all("gcc.lock: No space left on device" in t["reason"] for t in targets.values())
    assert [t.status.value for t in report.targets] == ["failed", "failed"]


def test_a_source_that_cannot_be_read_fails_its_targets_at_build(
    project: Path, view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    _toolchain_present(monkeypatch)
    loaded = load_project(project)
    os.mkfifo(project / "sources" / "a" / "pipe")  # after the recipes were checked: a race
    out, _ = _run(project, view, loaded=loaded)
    targets = _targets(out)
    assert targets["a"]["failed_stage"] == "build"
    assert targets["a"]["reason"].startswith("the source cannot be read: ")
    assert "pipe: is a FIFO" in targets["a"]["reason"]
    assert targets["b"]["reason"] == "the fake engine starts no builder"  # b went on to its build


def test_a_cache_read_that_fails_is_the_targets_failure(
    project: Path, view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    _toolchain_present(monkeypatch)

    def broken(output_dir: Path, key: str, platform: Any = None) -> None:
        if output_dir.parent.name == "a":
            raise OSError(errno.EIO, "Input/output error", str(output_dir / cache.RESULT_FILE))
        raise ValueError("a bug of ours")

    monkeypatch.setattr(cache, "load", broken)
    out, _ = _run(project, view)
    targets = _targets(out)
    assert targets["a"]["status"] == "failed" and "Input/output error" in targets["a"]["reason"]
    assert targets["b"]["status"] == "failed"
    assert targets["b"]["reason"].startswith("internal error: ValueError: a bug of ours (traceback: ")
    assert "ValueError: a bug of ours" in (out / "b" / "linux-amd64" / "error.log").read_text()


def test_an_engine_error_at_build_is_the_build_failure_and_the_builders_are_removed(
    project: Path, view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    _toolchain_present(monkeypatch)
    engine = FakeEngine()
    out, report = _run(project, view, engine)
    assert {(t.failed_stage, t.reason) for t in report.targets} == {
        ("build", "the fake engine starts no builder")
    }
    assert engine.calls[0] == "remove_stale_containers"
    assert engine.calls[-2:] == ["remove_run_containers", "remove_containers []"]
    assert (out / "report.json").is_file() and (out / "junit.xml").is_file()


def test_an_interrupt_writes_the_report_and_goes_on(
    project: Path, view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> ToolchainImage:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner_module, "provision", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(project, view)
    targets = _targets(project / "out")
    assert {(t["status"], t["failed_stage"], t["reason"]) for t in targets.values()} == {
        ("cancelled", "queued", "interrupted")
    }
    phases = json.loads((project / "out" / "report.json").read_text())["profile"]["phases"]
    assert set(phases) == {"startup", "toolchains", "report"}  # its profile: interrupted while provisioning


def test_a_service_whose_source_is_missing_fails_alone(
    make_project: Callable[[dict[str, str]], Path], view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: its targets fail at build with the recipe line, before anything is provisioned for it
    (its own toolchain is not even asked for); the other service goes on to its build."""
    root = make_project(
        {
            "recipes/a.toml": service_recipe("a", ["go", "build", "-o", "{output}"], toolchain="go"),
            "recipes/b.toml": service_recipe("b", ["{CC}", "-o", "{output}", "main.c"]),
            "sources/b/main.c": MAIN_C,
        }
    )
    provisioned: list[str] = []
    image = ToolchainImage(
        name="gcc", reference="osless-toolchain/gcc:x", image_id="sha256:" + "1" * 64, bootstrapped=False
    )

    def provision(engine: Any, toolchain: Any, *args: Any, **kwargs: Any) -> ToolchainImage:
        provisioned.append(toolchain.name)
        return image

    monkeypatch.setattr(runner_module, "provision", provision)
    monkeypatch.setattr(runner_module, "debian_slim_size", lambda *args: 1024)
    out, _ = _run(root, view)
    targets = _targets(out)
    assert (targets["a"]["status"], targets["a"]["failed_stage"]) == ("failed", "build")
    assert targets["a"]["reason"] == "recipes/a.toml:3: service.source: 'sources/a' is missing"
    assert targets["b"]["reason"] == "the fake engine starts no builder"  # b went on to its build
    assert provisioned == ["gcc"]
    assert not (out / "a").exists()


def test_the_report_says_why_a_selected_platform_is_not_built(
    make_project: Callable[[dict[str, str]], Path], view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--platform` for a platform one selected service lists and another does not: the report keeps
    the reason of the one left out (before: only platforms `["all"]` had left out were listed)."""
    _toolchain_present(monkeypatch)
    root = make_project(
        {
            "recipes/a.toml": service_recipe("a", platforms=["linux/amd64", "linux/arm64"]),
            "recipes/b.toml": service_recipe("b"),
            "sources/a/main.c": MAIN_C,
            "sources/b/main.c": MAIN_C,
        }
    )
    loaded = load_project(root)
    options = BuildOptions(out_root=root / "out", platforms=("linux/arm64",))
    targets = select_targets(loaded, [], ["linux/arm64"])
    report = Runner(loaded, options, FakeEngine(), view).run(targets)  # type: ignore[arg-type]
    assert [t.service for t in report.targets] == ["a"]
    written = json.loads((root / "out" / "report.json").read_text())["unsupported"]
    assert written == [
        {"service": "b", "platform": "linux/arm64", "reason": "not among its platforms (b.toml: linux/amd64)"}
    ]


def test_the_report_times_the_runs_phases_and_each_targets_wait_and_lookup(
    project: Path, view: ProgressView, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both targets fail at their build (the fake engine starts no builder), after their wait for a
    slot and their cache lookup were timed and their {JOBS} given; the profile has every phase."""
    _toolchain_present(monkeypatch)
    out, report = _run(project, view)
    written = json.loads((out / "report.json").read_text())
    for target in written["targets"]:
        assert {"queued", "cache", "build"} <= set(target["seconds"]) <= set(PROFILE_STAGES), target
        assert target["jobs"] in (1, 2) and target["steps"] == []  # 2 cores, 2 slots; no step ran
    profile = written["profile"]
    assert set(profile["phases"]) == set(PHASES)
    assert profile["wall"] == pytest.approx(sum(profile["phases"].values()), abs=0.05)
    assert profile["wall"] == pytest.approx(profile["phases"]["startup"] + written["seconds"], abs=0.05)
    assert (profile["targets"], profile["built"]) == (2, 2)
    assert profile["peak_rss_bytes"] > 0
    assert report.profile is not None and report.profile.phases["upload"] == 0.0  # no --cache-to

"""Target selection: by name, by platform, and by what changed since a git revision."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.bootstrap.lock import Lock, render
from orchestrator.errors import TargetsFailedAtBuild, UsageError
from orchestrator.pipeline.targets import (
    Skipped,
    changed_services,
    select_targets,
    skipped_platforms,
    unbuildable_only,
)
from orchestrator.recipe.loader import load_project
from tests.factories import service_recipe


def _service(name: str) -> str:
    command = ["{CC}", "-o", "{output}", "main.c"]
    return service_recipe(name, command, platforms=["linux/amd64", "linux/arm64"])


@pytest.fixture
def repo(make_project: Callable[[dict[str, str]], Path]) -> Path:
    files = {}
    for name in ("a", "b"):
        files[f"recipes/{name}.toml"] = _service(name)
        files[f"sources/{name}/main.c"] = "int main(void) { return 0; }\n"
    root = make_project(files)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    return root


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda root: None, []),
        (lambda root: (root / "sources/a/main.c").write_text("int main(void) { return 1; }\n"), ["a"]),
        (lambda root: (root / "sources/b/new.h").write_text("#define X\n"), ["b"]),  # untracked
        (lambda root: (root / "recipes/a.toml").write_text(_service("a") + "timeout = 60\n"), ["a"]),
        (
            lambda root: (root / "recipes/toolchains/gcc.toml").write_text(
                (root / "recipes/toolchains/gcc.toml").read_text() + "\n"
            ),
            ["a", "b"],
        ),
        (
            lambda root: (root / "recipes/toolchains/gcc.lock").write_text(
                render(Lock(toolchain="gcc", spec="0" * 16, suite="trixie", release_date="", requested=()))
            ),
            ["a", "b"],
        ),
    ],
    ids=["nothing", "source", "new file", "recipe", "toolchain recipe", "toolchain lock"],
)
def test_changed_since_selects_what_changed(
    repo: Path, change: Callable[[Path], object], expected: list[str]
) -> None:
    change(repo)
    assert changed_services(load_project(repo), "HEAD") == expected


def test_changed_since_an_unknown_revision_is_a_usage_error(repo: Path) -> None:
    with pytest.raises(UsageError, match="nope"):
        changed_services(load_project(repo), "nope")


@pytest.mark.parametrize("ref", ["--output=written-by-git", "-p", "--no-index"])
def test_changed_since_an_option_shaped_revision_never_reaches_git_as_an_option(repo: Path, ref: str) -> None:
    """`git diff --output=FILE` would write FILE: the revision is resolved after --end-of-options."""
    with pytest.raises(UsageError, match="git cannot compare"):
        changed_services(load_project(repo), ref)
    assert not (repo / "written-by-git").exists()


def test_select_targets_by_service_and_platform(repo: Path) -> None:
    targets = select_targets(load_project(repo), ["b"], ["linux/arm64"])
    assert [t.name for t in targets] == ["b linux/arm64"]


def test_select_targets_suggests_close_platform_names(repo: Path) -> None:
    with pytest.raises(UsageError, match="linux/arm64"):
        select_targets(load_project(repo), [], ["linux/arm46"])


@pytest.fixture
def mixed(make_project: Callable[[dict[str, str]], Path]) -> Path:
    """a: amd64 and arm64; all: every platform its toolchain targets (a toolchain with amd64 only);
    gone: its source is missing."""
    files = {
        "recipes/a.toml": _service("a"),
        "recipes/all.toml": service_recipe("all", toolchain="tiny", platforms=["all"]),
        "recipes/gone.toml": _service("gone"),
        "recipes/toolchains/tiny.toml": (
            '[toolchain]\nname = "tiny"\nimage = "debian:trixie"\n'
            '[toolchain.platforms."linux/amd64"]\nenv = { CC = "gcc" }\n'
        ),
        "sources/a/main.c": "int main(void) { return 0; }\n",
        "sources/all/main.c": "int main(void) { return 0; }\n",
    }
    return make_project(files)


def test_nothing_to_build_says_why_for_each_service(mixed: Path) -> None:
    """Issue 13 #6: it said only "no selected service targets the selected platforms"."""
    with pytest.raises(UsageError) as caught:
        select_targets(load_project(mixed), ["all", "a"], ["linux/s390x"])
    assert caught.value.message == (
        "nothing to build: all does not build for linux/s390x: toolchain tiny does not target linux/s390x; "
        "a does not build for linux/s390x: not among its platforms (a.toml: linux/amd64, linux/arm64)"
    )


def test_skipped_platforms_are_those_asked_for_or_left_out_by_all(mixed: Path) -> None:
    project = load_project(mixed)
    assert skipped_platforms(project, ["a", "all"], ["linux/arm64"]) == [
        Skipped(service="all", platform="linux/arm64", reason="toolchain tiny does not target linux/arm64")
    ]
    without = skipped_platforms(project, [], [])  # only what ["all"] left out
    assert {s.service for s in without} == {"all"} and len(without) == 6


def test_a_selection_of_unbuildable_services_only_fails_at_once(mixed: Path) -> None:
    project = load_project(mixed)
    assert unbuildable_only(select_targets(project, [], [])) is None  # a and all can be built
    error = unbuildable_only(select_targets(project, ["gone"], []))
    assert isinstance(error, TargetsFailedAtBuild) and error.exit_code == 10
    assert (
        error.message
        == "gone cannot be built: recipes/gone.toml:3: service.source: 'sources/gone' is missing"
    )

"""Target selection: by name, by platform, and by what changed since a git revision."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.pipeline.targets import changed_services, select_targets
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
    ],
    ids=["nothing", "source", "new file", "recipe", "toolchain recipe"],
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

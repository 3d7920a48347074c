"""The command line as a user meets it: exit codes and one-line reasons, without a Docker engine."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the SDK at nothing: a command that contacted the engine would exit 4."""
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("gcc") is None:
        pytest.skip("the host has no gcc")
    work = tmp_path_factory.mktemp("bin")
    (work / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    subprocess.run(["gcc", "-static", "-o", "static", "hello.c"], cwd=work, check=True)
    subprocess.run(["gcc", "-o", "dynamic", "hello.c"], cwd=work, check=True)
    (work / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "truncated").write_bytes((work / "static").read_bytes()[:100])
    return {p.name: p for p in work.iterdir()}


def test_verify_accepts_a_static_binary(
    binaries: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--platform", "linux/amd64", str(binaries["static"])]) == 0
    assert "linux/amd64" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "reason"),
    [("dynamic", "libc.so.6"), ("script.sh", "not an ELF"), ("truncated", "corrupt")],
)
def test_verify_rejects_with_a_one_line_reason(
    binaries: dict[str, Path], capsys: pytest.CaptureFixture[str], name: str, reason: str
) -> None:
    assert main(["verify", str(binaries[name])]) == 7
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1 and reason in lines[0], lines


def test_verify_rejects_wrong_architecture(
    binaries: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--platform", "linux/arm64", str(binaries["static"])]) == 7
    assert "built for x86-64, recipe says linux/arm64" in capsys.readouterr().out


def _recipe(
    name: str, *, source: str = "sources/ok", platform: str = "linux/amd64", key: str = "command"
) -> str:
    return (
        f'[service]\nname = "{name}"\nsource = "{source}"\ntoolchain = "gcc"\n'
        f'platforms = ["{platform}"]\n[build]\n{key} = ["true"]\n'
    )


def test_bad_recipes_are_rejected_before_any_container(
    no_engine: None, make_project: Callable[[dict[str, str]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            "sources/ok/main.c": "int main(void) { return 0; }\n",
            "recipes/typo.toml": _recipe("typo", key="comand"),
            "recipes/platform.toml": _recipe("platform", platform="linux/arm65"),
            "recipes/escape.toml": _recipe("escape", source="../outside"),
        }
    )
    (project.parent / "outside").mkdir()
    assert main(["-C", str(project), "build"]) == 3
    errors = capsys.readouterr().err
    assert "recipes/typo.toml" in errors and "comand" in errors and "'command'" in errors
    assert "recipes/platform.toml" in errors and "linux/arm65" in errors and "linux/arm64" in errors
    assert "recipes/escape.toml" in errors and "source" in errors


def test_unknown_service_is_a_usage_error(no_engine: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(Path(__file__).parents[2]), "build", "hello-gp"]) == 2
    assert "did you mean 'hello-go'" in capsys.readouterr().err


def test_build_without_engine_says_how_to_start_one(
    no_engine: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(Path(__file__).parents[2]), "build"]) == 4
    assert "setup-host" in capsys.readouterr().err

"""Shell completion: the scripts come from the grammar (every command and option), and bash really
completes commands, platforms and the project's services with them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import completion
from orchestrator.cli.main import main
from orchestrator.cli.parser import build_parser
from orchestrator.platforms import PLATFORMS
from tests.factories import true_recipe

GRAMMAR = completion.commands(build_parser())


def test_the_grammar_is_every_visible_command() -> None:
    keys = {command.key for command in GRAMMAR}
    assert {"", "build", "list", "verify", "toolchain", "toolchain push", "completion"} <= keys
    assert "__names" not in keys  # hidden


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_a_script_names_every_command_option_and_platform(shell: str) -> None:
    script = completion.script(shell, build_parser())
    for command in GRAMMAR:
        for word in command.path:
            assert word in script, (shell, word)
        for option in command.options:
            for name in option.names:
                assert (name if shell != "fish" else name.lstrip("-")) in script, (shell, command.key, name)
    for platform in PLATFORMS:
        assert platform in script
    assert "__names" in script and "names services" in script and "names toolchains" in script


def test_values_are_known_by_their_argument() -> None:
    build = next(command for command in GRAMMAR if command.key == "build")
    options = {name: option.values for option in build.options for name in option.names}
    assert options["--platform"] == completion.Values(kind="words", words=tuple(PLATFORMS))
    assert options["--out"] == completion.Values(kind="files")
    assert options["--jobs"] == completion.TEXT
    assert options["--rebuild"] is None  # a flag
    assert build.positionals == completion.Values(kind="services")
    push = next(command for command in GRAMMAR if command.key == "toolchain push")
    assert push.positionals == completion.Values(kind="toolchains")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Services named unlike their files, one broken recipe (left out), a name a shell would expand."""
    root = tmp_path / "project"
    (root / "recipes" / "toolchains").mkdir(parents=True)
    (root / "recipes" / "one.toml").write_text(true_recipe("web-server", source="sources/web"))
    (root / "recipes" / "two.toml").write_text(true_recipe("worker", source="sources/worker"))
    (root / "recipes" / "broken.toml").write_text("[service\nname = 'x'\n")
    (root / "recipes" / "odd.toml").write_text('[service]\nname = "w$(touch pwned)"\n')
    (root / "recipes" / "toolchains" / "gcc.toml").write_text('[toolchain]\nname = "gcc"\n')
    return root


def test_names_are_read_from_the_recipes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert completion.recipe_names(project, "services") == ["w$(touch pwned)", "web-server", "worker"]
    assert main(["-C", str(project), "__names", "toolchains"]) == 0
    assert capsys.readouterr().out == "gcc\n"


def _complete(line: str, *, cwd: Path) -> list[str]:
    """COMPREPLY for `line` (the word being completed is its last, possibly empty) in a bash that
    loaded `osless completion bash`, with this osless first on PATH."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = subprocess.run(
        [sys.executable, "-m", "orchestrator", "completion", "bash"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    words = line.split(" ")
    driver = (
        script
        + 'COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n'
        + 'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}\n'
        + "_osless\n"
        + 'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", driver, "bash", *words],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        check=True,
        timeout=60,
    )
    return [word for word in result.stdout.splitlines() if word]


def test_bash_completes_a_command(tmp_path: Path) -> None:
    assert _complete("osless bu", cwd=tmp_path) == ["build"]
    assert _complete("osless -q --color never bu", cwd=tmp_path) == ["build"]
    assert _complete("osless toolchain ", cwd=tmp_path) == ["push"]


def test_bash_completes_a_platform(tmp_path: Path) -> None:
    assert _complete("osless build --platform linux/ar", cwd=tmp_path) == ["linux/arm64", "linux/arm/v7"]
    assert _complete("osless run hello --platform linux/s", cwd=tmp_path) == ["linux/s390x"]


def test_bash_completes_options_and_choices(tmp_path: Path) -> None:
    assert _complete("osless build --reb", cwd=tmp_path) == ["--rebuild"]
    assert _complete("osless matrix --by s", cwd=tmp_path) == ["service"]
    assert _complete("osless --color n", cwd=tmp_path) == ["never"]


def test_bash_completes_the_projects_services(project: Path, tmp_path: Path) -> None:
    assert _complete("osless build w", cwd=project) == ["w$(touch pwned)", "web-server", "worker"]
    assert _complete(f"osless -C {project} build --platform linux/amd64 wo", cwd=tmp_path) == ["worker"]
    assert _complete("osless toolchain push g", cwd=project) == ["gcc"]
    assert not (project / "pwned").exists() and not (tmp_path / "pwned").exists()  # offered, never run


@pytest.mark.parametrize(("shell", "check"), [("zsh", ["-n"]), ("fish", ["--no-execute"])])
def test_the_other_scripts_are_valid_for_their_shell(shell: str, check: list[str], tmp_path: Path) -> None:
    program = shutil.which(shell)
    if program is None:
        pytest.skip(f"no {shell}")
    path = tmp_path / f"osless.{shell}"
    path.write_text(completion.script(shell, build_parser()))
    subprocess.run([program, *check, str(path)], check=True, capture_output=True, timeout=60)


def test_fish_completes_commands_platforms_and_services(project: Path) -> None:
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("no fish")
    script = completion.script("fish", build_parser())
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def complete(line: str) -> list[str]:
        result = subprocess.run(
            [fish, "--no-config", "-c", f"{script}\ncomplete -C {line!r}"],
            capture_output=True,
            text=True,
            cwd=project,
            env=environment,
            check=True,
            timeout=60,
        )
        return sorted(line.split("\t")[0] for line in result.stdout.splitlines())

    assert complete("osless bu") == ["build"]
    assert complete("osless build --platform linux/ar") == ["linux/arm/v7", "linux/arm64"]
    assert complete("osless build wo") == ["worker"]
    assert complete("osless -q toolchain push ") == ["gcc"]

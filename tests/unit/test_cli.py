"""The command line as a user meets it: exit codes and one-line reasons, without a Docker engine."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from orchestrator.cli import render
from orchestrator.cli.main import main
from orchestrator.outputs import outdir
from orchestrator.verify.findings import Verdict, error
from tests.conftest import REPO_ROOT
from tests.factories import true_recipe

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
    (work / "lookup.c").write_text('#include <pwd.h>\nint main(void) { return getpwnam("root") == 0; }\n')
    subprocess.run(["gcc", "-static", "-o", "lookup", "lookup.c"], cwd=work, check=True, capture_output=True)
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
    """The verdict's line says why; the errors below it (indented) say what to do."""
    assert main(["verify", str(binaries[name])]) == 7
    first, *rest = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert reason in first and rest[0].startswith("  error ") and reason in rest[0], (first, rest)
    assert all(line.startswith("  ") for line in rest), rest


def test_verify_prints_warnings_with_their_hints(
    binaries: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A static program calling getpwnam passes, and says what the image needs for it and where that is
    explained; info findings only with -v."""
    path = binaries["lookup"]
    assert main(["verify", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: ok (linux/amd64, static, c)",
        "  warning needs.passwd: calls getpwnam: user and group lookups read /etc/passwd and /etc/group"
        " — absent in scratch",
        '    hint: add extras = ["passwd"] to [image]',
        "    see docs/findings.md#needspasswd",
    ]
    assert main(["verify", "-v", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  info linkage.static: statically linked\n    see docs/findings.md#linkagestatic\n" in out
    assert out.index("  warning needs.passwd") < out.index("  info ")


def test_verify_prints_every_error_then_the_warnings_then_infos(
    binaries: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--verbose", "--platform", "linux/arm64", str(binaries["lookup"])]) == 7
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{binaries['lookup']}: FAIL — built for x86-64, recipe says linux/arm64")
    severities = [line.split()[0] for line in lines[1:] if not line.startswith("    ")]
    assert severities == sorted(severities, key=["error", "warning", "info"].index), severities
    assert severities.count("warning") == 1 and "info" in severities


def test_findings_are_printed_as_written() -> None:
    """Messages and hints quote the file (paths, strings): never read as markup."""
    verdict = Verdict(
        path="[bold]x",
        facts=None,
        findings=(error("elf.not-elf", "not an ELF file (starts with '[/x]')", hint="[red]no[/red]"),),
    )
    output = io.StringIO()
    render.print_verdicts(Console(file=output, highlight=False, soft_wrap=True), [verdict], verbose=False)
    assert output.getvalue().splitlines() == [
        "[bold]x: FAIL — not an ELF file (starts with '[/x]')",
        "  error elf.not-elf: not an ELF file (starts with '[/x]')",
        "    hint: [red]no[/red]",
        "    see docs/findings.md#elfnot-elf",
    ]


def test_verify_rejects_wrong_architecture(
    binaries: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--platform", "linux/arm64", str(binaries["static"])]) == 7
    assert "built for x86-64, recipe says linux/arm64" in capsys.readouterr().out


def test_bad_recipes_are_rejected_before_any_container(
    no_engine: None, make_project: Callable[[dict[str, str]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            "sources/ok/main.c": "int main(void) { return 0; }\n",
            "recipes/typo.toml": true_recipe("typo", key="comand"),
            "recipes/platform.toml": true_recipe("platform", platform="linux/arm65"),
            "recipes/escape.toml": true_recipe("escape", source="../outside"),
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
    no_engine: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["-C", str(Path(__file__).parents[2]), "build", "--out", str(tmp_path / "out")]) == 4
    assert "setup-host" in capsys.readouterr().err


def _one_error_line(captured: str) -> str:
    """The error output: one `osless:` line (and maybe its hint), never a traceback."""
    assert "Traceback" not in captured, captured
    lines = [line for line in captured.splitlines() if line.strip() and not line.startswith("  hint:")]
    assert len(lines) == 1 and lines[0].startswith("osless: "), captured
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["build", "x[/y]"], "'x[/y]'"),
        (["build", "[bold]x"], "'[bold]x'"),
        (["build", "--platform", "linux/[/x]"], "'linux/[/x]'"),
        (["build", "--shard", "[/x]"], "--shard '[/x]'"),
        (["build", "--changed-since", "[/x]"], "'[/x]'"),
        (["build", "--engine", "linux/[/x]=unix:///x"], "linux/[/x]=unix:///x"),
        (["push", "hello-go", "--to", "localhost:5000/a[/b]"], "'a[/b]'"),
        (["push", "[/x]", "--to", "localhost:5000/a"], "'[/x]'"),
        (["run", "x[/y]"], "'x[/y]'"),
        (["assemble", "[/x]"], "[/x] is not a directory"),
    ],
)
def test_user_text_is_printed_as_text(
    no_engine: None, capsys: pytest.CaptureFixture[str], argv: list[str], shown: str
) -> None:
    """Brackets in names, platforms and references are text, not rich markup (a MarkupError before)."""
    assert main(["-C", str(Path(__file__).parents[2]), *argv]) == 2
    assert shown in _one_error_line(capsys.readouterr().err)


def test_list_prints_a_source_path_with_brackets_as_it_is(
    no_engine: None, make_project: Callable[[dict[str, str]], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        {
            "sources/x[/]y/main.c": "int main(void) { return 0; }\n",
            "recipes/odd.toml": true_recipe("odd", source="sources/x[/]y"),
        }
    )
    assert main(["-C", str(project), "list"]) == 0
    captured = capsys.readouterr()
    assert "sources/x[/]y" in captured.out and "Traceback" not in captured.err


def test_emoji_codes_in_user_text_stay_text(no_engine: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(Path(__file__).parents[2]), "build", "a:smile:b"]) == 2
    assert "'a:smile:b'" in _one_error_line(capsys.readouterr().err)


def test_a_file_in_place_of_out_is_a_usage_error(
    no_engine: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").write_text("not a directory\n")
    repo = str(Path(__file__).parents[2])
    assert main(["-C", repo, "build", "hello-c", "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'out'} is not a directory" in _one_error_line(capsys.readouterr().err)
    assert main(["-C", repo, "build", "hello-c", "--out", str(tmp_path / "out" / "sub")]) == 2
    assert f"{tmp_path / 'out' / 'sub'} cannot be used" in _one_error_line(capsys.readouterr().err)


def test_an_out_held_by_another_run_is_refused_naming_the_holder(
    no_engine: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock is taken before the engine is asked: the refusal is exit 2, not exit 4."""
    out = tmp_path / "out"
    with outdir.locked(out):
        assert main(["-C", str(Path(__file__).parents[2]), "build", "hello-c", "--out", str(out)]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"{out} is in use by another osless run (pid {os.getpid()}, started " in line
    # released: the same command now gets as far as the engine
    assert main(["-C", str(Path(__file__).parents[2]), "build", "hello-c", "--out", str(out)]) == 4


# Every subcommand's options, and values that have broken osless before (markup, emoji, paths).
OPTIONS = {
    "build": ["--platform", "--jobs", "-j", "--emulated-jobs", "--changed-since", "--engine",
              "--check-reproducible", "--rebuild", "--fail-fast", "--shard", "--out", "--profile"],
    "list": [],
    "verify": ["--platform", "--json", "-v", "--verbose"],
    "inspect": ["--platform", "--json", "-v", "--verbose"],
    "run": ["--platform", "--"],
    "push": ["--to", "--out", "--insecure"],
    "doctor": [],
    "matrix": ["--by", "--max-jobs", "--format"],
    "assemble": ["--out"],
    "init": ["--name", "--dry-run"],
    "schema": ["--write"],
    "clean": ["--out", "--dry-run", "--all-toolchains", "--all-projects"],
    "completion": [],
}  # fmt: skip
GLOBAL_OPTIONS = ["-q", "--quiet", "-v", "--verbose", "--color"]
VALUES = ["hello", "linux/amd64", "linux/[/x]", "[/x]", "x[/y]", "[bold]", ":smile:", "1/2", "0/0",
          "-1", "0", "999999999999999999999", "localhost:5000/a", "a@sha256:00", "out", "..", "/",
          "linux/amd64=unix:///nothing", "platform", "github", "HEAD", "", " ", "-", "--",
          "\u00e9\u4e2d"]  # fmt: skip
VALUE = st.one_of(
    st.sampled_from(VALUES),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A subcommand, some positional values, then options each with a value (or misplaced ones)."""
    command = draw(st.sampled_from(sorted(OPTIONS)))
    arguments = draw(st.lists(VALUE, max_size=3))
    for option in draw(st.lists(st.sampled_from(OPTIONS[command] + GLOBAL_OPTIONS), max_size=3)):
        arguments += [option, *draw(st.lists(VALUE, max_size=1))]
    if draw(st.booleans()):
        arguments = draw(st.permutations(arguments))
    return [command, *arguments]


@pytest.fixture(scope="module")
def fuzz_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with one service (named like the values above), and a working directory for relative
    paths the generated arguments name: nothing lands in the repository."""
    root = tmp_path_factory.mktemp("fuzz") / "project"
    shutil.copytree(REPO_ROOT / "recipes" / "toolchains", root / "recipes" / "toolchains")
    (root / "sources" / "hello").mkdir(parents=True)
    (root / "sources" / "hello" / "main.c").write_text("int main(void) { return 0; }\n")
    (root / "recipes" / "hello.toml").write_text(true_recipe("hello", source="sources/hello"))
    return root


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command_line=command_lines())
def test_no_command_line_ends_in_a_traceback(
    fuzz_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command_line: list[str],
) -> None:
    """Any arguments to any subcommand, engine unreachable: an exit code and one-line reasons, never an
    exception out of main (argparse's SystemExit 0/2 aside) and never an "internal error"."""
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    work = fuzz_project.parent / "work" / "a" / "b"
    work.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(work)
    argv = ["-C", str(fuzz_project), *_contained(command_line)]
    try:
        code = main(argv)
    except SystemExit as exit_:
        assert exit_.code in (0, 2), argv
        capsys.readouterr()
        return
    captured = capsys.readouterr()
    assert isinstance(code, int), argv
    assert "Traceback" not in captured.out + captured.err, argv
    assert "internal error" not in captured.err, (argv, captured.err)


def _contained(arguments: list[str]) -> list[str]:
    """The arguments with every --out and --write value made a path below the working directory: the
    commands that write (build, assemble, clean, schema) create or empty what they name."""
    contained = list(arguments)
    for index, argument in enumerate(contained[:-1]):
        if argument in ("--out", "--write"):
            value = contained[index + 1].lstrip("/")
            contained[index + 1] = value if value and ".." not in value else "out"
    return contained

"""Terminal manners: --color and NO_COLOR/FORCE_COLOR (no ANSI escapes at all without colour), and the
-q/-v options before or after the command."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli import render
from orchestrator.cli.main import main
from orchestrator.cli.parser import build_parser
from orchestrator.cli.terminal import console, wants_color
from orchestrator.stages.build import StepTime
from tests.conftest import REPO_ROOT
from tests.run_reports import failed_at_build, report, target

ESCAPE = "\x1b"
STYLE = re.compile(r"\x1b\[[0-9;]*m")  # an SGR sequence: colour, bold, dim...


@pytest.mark.parametrize(
    ("choice", "environ", "isatty", "color"),
    [
        ("auto", {}, True, True),
        ("auto", {}, False, False),
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"NO_COLOR": ""}, True, True),  # empty: not set
        ("auto", {"TERM": "dumb"}, True, False),
        ("auto", {"FORCE_COLOR": "1"}, False, True),
        ("auto", {"FORCE_COLOR": "0"}, False, False),
        ("auto", {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),
        ("always", {"NO_COLOR": "1"}, False, True),
        ("never", {"FORCE_COLOR": "1"}, True, False),
    ],
)
def test_who_decides_on_colour(choice: str, environ: dict[str, str], isatty: bool, color: bool) -> None:
    assert wants_color(choice, environ=environ, isatty=isatty) is color


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "GITHUB_ACTIONS", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def test_no_escapes_at_all_off_a_terminal(
    clean_environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pipe or a log (pytest's capture is one) gets plain text: the table, its bold header, an
    error's red, all without ANSI escapes."""
    assert main(["-C", str(REPO_ROOT), "list"]) == 0
    assert main(["-C", str(REPO_ROOT), "build", "no-such-service"]) == 2
    captured = capsys.readouterr()
    assert "hello-c" in captured.out and "no-such-service" in captured.err
    assert ESCAPE not in captured.out + captured.err


@pytest.mark.parametrize(
    ("columns", "width"), [(None, 160), ("250", 250), ("60", 60), ("0", 160), ("wide", 160)]
)
def test_off_a_terminal_the_width_is_columns_else_160(columns: str | None, width: int) -> None:
    environ = {} if columns is None else {"COLUMNS": columns}
    assert console("auto", environ=environ).width == width  # pytest's capture is not a terminal


def test_color_always_colours_a_pipe_even_with_no_color(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["--color", "always", "-C", str(REPO_ROOT), "build", "no-such-service"]) == 2
    assert STYLE.search(capsys.readouterr().err)
    assert main(["-C", str(REPO_ROOT), "build", "no-such-service", "--color", "always"]) == 2  # after it too
    assert STYLE.search(capsys.readouterr().err)


def test_force_color_colours_a_pipe_unless_no_color_or_never(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert main(["-C", str(REPO_ROOT), "build", "no-such-service"]) == 2
    assert STYLE.search(capsys.readouterr().err)
    assert main(["--color", "never", "-C", str(REPO_ROOT), "build", "no-such-service"]) == 2
    assert ESCAPE not in capsys.readouterr().err
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["-C", str(REPO_ROOT), "build", "no-such-service"]) == 2
    assert ESCAPE not in capsys.readouterr().err


def _on_a_terminal(*arguments: str, environ: dict[str, str]) -> str:
    """What `osless ARGUMENTS` writes to a pseudo-terminal (stdout and stderr both)."""
    reader, writer = pty.openpty()
    env = {name: value for name, value in os.environ.items() if name not in ("NO_COLOR", "FORCE_COLOR")}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *arguments],
        stdout=writer,
        stderr=writer,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", **environ},
    )
    os.close(writer)
    output = b""
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(reader)
    return output.decode(errors="replace")


def test_a_terminal_is_coloured_unless_told_not_to() -> None:
    arguments = ("-C", str(REPO_ROOT), "build", "no-such-service")
    assert STYLE.search(_on_a_terminal(*arguments, environ={}))
    assert not STYLE.search(shown := _on_a_terminal(*arguments, environ={"NO_COLOR": "1"}))
    assert "no-such-service" in shown
    assert not STYLE.search(_on_a_terminal("--color", "never", *arguments, environ={}))
    listing = _on_a_terminal("-C", str(REPO_ROOT), "list", "--color", "never", environ={})
    assert "hello-c" in listing and not STYLE.search(listing)


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "list"],
        ["list", "-q"],
        ["--quiet", "toolchain", "push", "gcc", "--to", "r/x"],
        ["toolchain", "push", "gcc", "--to", "r/x", "-q"],
    ],
)
def test_quiet_is_taken_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.quiet and not args.verbose and args.color == "auto"


@pytest.mark.parametrize(
    "argv",
    [["-v", "verify", "FILE"], ["verify", "-v", "FILE"], ["verify", "FILE", "--verbose"], ["build", "-v"]],
)
def test_verbose_is_taken_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.verbose and not args.quiet


def test_no_option_given_is_their_defaults() -> None:
    args = build_parser().parse_args(["verify", "FILE"])
    assert (args.quiet, args.verbose, args.color) == (False, False, "auto")
    assert build_parser().parse_args(["--color", "never", "list"]).color == "never"


def test_quiet_and_verbose_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["-q", "list", "-v"])
    assert exit_.value.code == 2
    assert "exclude each other" in capsys.readouterr().err


def test_a_quiet_run_is_one_line_and_its_failures(tmp_path: Path) -> None:
    output = io.StringIO()
    run = report(target("a"), target("b", result_from="local-cache", cached=True), failed_at_build())
    render.print_run(Console(file=output, width=200), run, tmp_path, quiet=True)
    lines = output.getvalue().splitlines()
    assert lines[0] == (
        f"3 targets: 2 passed, 1 failed (1 reused from out/); report: {tmp_path / 'report.json'}"
    )
    assert len(lines) == 2 and lines[1].startswith("✗ broken linux/amd64 build: ")


def test_a_verbose_run_lists_each_targets_build_steps(tmp_path: Path) -> None:
    steps = (
        StepTime(label="step 1/2 (configure)", seconds=0.5, exit_code=0),
        StepTime(label="step 2/2 (make)", seconds=2.25, exit_code=2),
    )
    output = io.StringIO()
    render.print_run(
        Console(file=output, width=200), report(target("a", steps=steps)), tmp_path, verbose=True
    )
    shown = output.getvalue()
    assert "  a linux/amd64: step 1/2 (configure) 0.50s\n" in shown
    assert "  a linux/amd64: step 2/2 (make) 2.25s (exit 2)\n" in shown
    plain = io.StringIO()
    render.print_run(Console(file=plain, width=200), report(target("a", steps=steps)), tmp_path)
    assert "configure" not in plain.getvalue()

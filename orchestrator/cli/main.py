"""`osless`: runs the command the arguments name and turns its errors into exit codes.

The grammar is in `parser`, each command in `commands/<name>.py`, what is printed in `render`.

Exit codes (stable; scripts and CI may rely on them):

    0    success
    2    usage: unknown service, platform or option
    3    invalid recipes (nothing was started)
    4    Docker engine unavailable
    5    toolchain: a toolchain image could not be provisioned, so its targets were not built
    6    a target failed otherwise: at package, or an internal error; or `--check-reproducible` found
         that two clean builds differ; or a file could not be written (disk full, say), named with its
         path
    7    `verify` or `inspect` rejected a file
    8    `push` failed (broken layout, registry unreachable or refused)
    10   a target failed to build
    11   a target's binary failed verification (not static, wrong architecture, policy)
    12   a target failed its smoke test (stdout or exit code not as the recipe expects)
    130  interrupted (Ctrl-C or SIGTERM): report.json says which targets were interrupted

When targets fail at different stages, `build` exits with the code of the earliest failing stage in
pipeline order (toolchain 5, build 10, verify 11, package 6, smoke 12): the first thing to look at.
Under GitHub Actions (GITHUB_ACTIONS=true) the log is folded into groups per phase and recipe problems
and failed targets are `::error` annotations; with GITHUB_STEP_SUMMARY set, the run's Markdown summary
is appended to the job summary.

Before or after the command: `--color auto|always|never` (NO_COLOR and FORCE_COLOR as usual; never: no
ANSI escapes at all), `-q` (only errors and the one-line result) and `-v` (more detail).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from rich.console import Console
from rich.markup import escape

from orchestrator.cli import render, terminal
from orchestrator.cli.parser import build_parser
from orchestrator.errors import Interrupted, OslessError, OutputError, RecipeError
from orchestrator.outputs import github, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.error("-q/--quiet and -v/--verbose exclude each other")
    # User text (names, paths, messages) is never markup: it is escaped or printed with markup off.
    console = terminal.console(args.color)
    errors = terminal.console(args.color, stderr=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        code: int = args.command(args, console)
        return code
    except RecipeError as error:
        errors.print(f"[bold red]osless: {escape(error.message)}[/] (nothing was started):")
        for problem in error.problems:
            errors.print(f"  {problem}", markup=False)
        if github.active():
            render.workflow_commands(
                console, github.recipe_annotations(error.problems, args.project.resolve())
            )
        github.append_step_summary(summary.recipe_markdown(error.problems))
        return error.exit_code
    except OslessError as error:
        return _report_error(console, errors, error)
    except KeyboardInterrupt:
        errors.print("[bold red]osless: interrupted[/]; this run's containers were removed")
        return Interrupted.exit_code
    except OSError as error:  # out/ unwritable mid-run, disk full: the file and the reason, one line
        return _report_error(console, errors, OutputError(_os_error_text(error)))
    except Exception as error:  # a bug of ours: still one line, the traceback only on request
        if os.environ.get("OSLESS_TRACEBACK"):
            raise
        message = f"internal error: {type(error).__name__}: {_first_line(str(error))}"
        return _report_error(
            console, errors, OslessError(message, hint="OSLESS_TRACEBACK=1 shows the traceback")
        )


def _report_error(console: Console, errors: Console, error: OslessError) -> int:
    """An error as one line (and its hint), and a CI annotation under GitHub Actions."""
    errors.print(f"[bold red]osless:[/] {escape(error.message)}", highlight=False)
    if error.hint:
        errors.print(f"  hint: {error.hint}", markup=False)
    if github.active():
        message = error.message + (f" (hint: {error.hint})" if error.hint else "")
        render.workflow_commands(console, [github.command("error", message, title="osless")])
    return error.exit_code


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _os_error_text(error: OSError) -> str:
    """'cannot write PATH: No space left on device' from an OSError, whichever call raised it."""
    reason = error.strerror or _first_line(str(error)) or type(error).__name__
    if error.filename is None:
        return f"a file could not be read or written: {reason}"
    return f"cannot use {error.filename}: {reason}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM behaves like Ctrl-C, so containers are cleaned up the same way."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

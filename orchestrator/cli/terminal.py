"""Terminal manners: whether osless colours its output (`--color`, NO_COLOR, FORCE_COLOR) and the
consoles it prints through.

Without colour there are no ANSI escapes at all (no bold either), so a log or a pipe gets plain text;
a terminal still gets the live progress view, which moves the cursor. `--color always` colours a log
or a pipe too, without making it a terminal: it never gets the live view.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from rich.console import Console

COLOR_CHOICES = ("auto", "always", "never")


def wants_color(choice: str, *, environ: Mapping[str, str], isatty: bool) -> bool:
    """`--color` wins; under `auto`, NO_COLOR (any non-empty value) says no, FORCE_COLOR (non-empty,
    not "0") says yes, and otherwise only a terminal that is not TERM=dumb gets colour."""
    if choice != "auto":
        return choice == "always"
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR", "0") not in ("", "0"):
        return True
    return isatty and environ.get("TERM") != "dumb"


def console(choice: str, *, stderr: bool = False, environ: Mapping[str, str] | None = None) -> Console:
    """A console on stdout (or stderr): coloured as `wants_color` decides; off a terminal, as wide as
    COLUMNS says, else 160 columns, so tables in CI logs and pipes are not wrapped at 80. User text is
    never markup (render escapes it), so highlighting and emoji codes are off."""
    isatty = _isatty(sys.stderr if stderr else sys.stdout)
    environ = os.environ if environ is None else environ
    color = wants_color(choice, environ=environ, isatty=isatty)
    return Console(
        stderr=stderr,
        # Colour off a terminal needs a forced terminal (and a colour system rich would not detect
        # there); no colour is no colour system at all, whatever rich reads from the environment.
        force_terminal=color or isatty,
        color_system=("auto" if isatty else "standard") if color else None,
        no_color=not color,
        highlight=False,
        soft_wrap=True,
        width=None if isatty else _columns(environ),
        emoji=False,
    )


def _columns(environ: Mapping[str, str]) -> int:
    """The width asked for with COLUMNS (a positive number), else 160."""
    text = environ.get("COLUMNS", "")
    return int(text) if text.isdigit() and int(text) > 0 else 160


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or foreign stream
        return False

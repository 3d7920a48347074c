"""Progress while a run works: a live view on a terminal, plain timestamped lines elsewhere (CI logs).

Stages call `step(subject, text)` from any thread; the view decides how to show it. The pipeline
calls `phase(title)` between its phases (from its main thread): in a GitHub Actions log each phase's
lines are one collapsible group.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from orchestrator.outputs import github


class ProgressView:
    """One line per subject (a toolchain or a target), showing its current step and elapsed time."""

    def __init__(self, console: Console, *, groups: bool | None = None) -> None:
        self.console = console
        self._groups = github.active() if groups is None else groups  # ::group:: folding, no live view
        self._group_open = False
        self._lock = threading.Lock()
        self._steps: dict[str, tuple[str, float, float | None]] = {}  # subject -> (text, started, ended)
        self._live: Live | None = None
        self._started = time.monotonic()

    def __enter__(self) -> ProgressView:
        if self.console.is_terminal and not self._groups:  # a CI log (FORCE_COLOR) is no terminal
            self._live = Live(
                self._render(),
                console=self.console,
                refresh_per_second=8,
                transient=True,
                get_renderable=self._render,
            )
            self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, trace)
            self._live = None
        self._end_group()

    def phase(self, title: str) -> None:
        """A new phase of the run begins (the previous one ends): a log group in GitHub Actions.

        Groups cannot nest, so opening one closes the one before; leaving the view closes the last.
        """
        if not self._groups:
            return
        self._end_group()
        self.console.print(github.group(title), markup=False, highlight=False, emoji=False)
        self._group_open = True

    def _end_group(self) -> None:
        if self._group_open:
            self.console.print(github.endgroup(), markup=False, highlight=False, emoji=False)
            self._group_open = False

    def step(self, subject: str, text: str, *, done: bool = False) -> None:
        """Record that subject moved to a new step (or finished with text as its outcome)."""
        now = time.monotonic()
        with self._lock:
            started = self._steps.get(subject, ("", now, None))[1]
            self._steps[subject] = (text, started, now if done else None)
        if self._live is None:
            elapsed = now - self._started
            self.console.print(f"[{elapsed:7.1f}s] {subject}: {text}", markup=False, highlight=False)

    def _render(self) -> Table:
        table = Table.grid(padding=(0, 1))
        now = time.monotonic()
        with self._lock:
            rows = list(self._steps.items())
        for subject, (text, started, ended) in rows:
            marker = Spinner("dots") if ended is None else Text("•", style="dim")
            table.add_row(
                marker,
                Text(subject, style="bold"),
                Text(text),
                Text(f"{(ended or now) - started:5.1f}s", style="dim"),
            )
        return table

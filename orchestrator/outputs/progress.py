"""Progress while a run works: a live view on a terminal, plain timestamped lines elsewhere (CI logs).

Stages call `step(subject, text)` from any thread; the view decides how to show it. The pipeline
calls `phase(title)` between its phases (from its main thread): in a GitHub Actions log each phase's
lines are one collapsible group. Given the run's targets, the view also counts them (done, failed,
running, queued) and estimates when the run ends: on a terminal in a status line under the live view,
in a log as a line every `STATUS_EVERY` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from orchestrator.outputs import github
from orchestrator.outputs.profile import WAITS
from orchestrator.outputs.report import Status

STATUS_EVERY = 30.0  # seconds between the status lines of a log (no live view)
_FAILED = (Status.FAILED.value, Status.CANCELLED.value)  # how a target's outcome text begins when failed


@dataclass(frozen=True, kw_only=True)
class Unfinished:
    """A target not done yet: the seconds it should take in all (None: nothing to go by), and the
    seconds it has run so far (0 while queued)."""

    expected: float | None
    elapsed: float = 0.0


def eta_seconds(unfinished: Sequence[Unfinished], finished: Sequence[float], slots: int) -> float | None:
    """Seconds until the last target is done, or None while there is nothing to go by.

    A target is expected to take what it took in the previous run, else what this run's finished
    targets took on average; less what it has run already. The remainders are shared by the slots
    (--jobs), but the run lasts at least the longest one. A target past its expected time counts 0:
    when only such targets are left, the estimate has run out and there is nothing to go by.
    """
    if not unfinished:
        return 0.0
    typical = sum(finished) / len(finished) if finished else None
    remainders = []
    for target in unfinished:
        expected = typical if target.expected is None else target.expected
        if expected is None:
            return None
        remainders.append(max(expected - target.elapsed, 0.0))
    return max(sum(remainders) / max(slots, 1), *remainders) or None


def previous_seconds(report: Path) -> dict[tuple[str, str], float]:
    """Each target's seconds of work, (service, platform) → seconds, in the run that wrote report
    (out/report.json): what the ETA expects of it this time. Waits for a slot are left out (they
    depend on the other targets). No readable report: nothing to go by, {}."""
    try:
        document = json.loads(report.read_text())
        return {
            (str(target["service"]), str(target["platform"])): sum(
                float(seconds) for stage, seconds in target["seconds"].items() if stage not in WAITS
            )
            for target in document["targets"]
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


@dataclass(frozen=True, kw_only=True)
class Counts:
    """The run's targets by where they are."""

    done: int = 0
    failed: int = 0  # failed or cancelled
    running: int = 0
    queued: int = 0

    @property
    def total(self) -> int:
        return self.done + self.failed + self.running + self.queued


def status_line(counts: Counts, elapsed: float, eta: float | None) -> str:
    """The run so far in a line: `targets: 3 done, 1 failed, 2 running, 6 queued of 12; 1m20s elapsed,
    ETA 2m05s` (no ETA while there is nothing to go by)."""
    line = (
        f"targets: {counts.done} done, {counts.failed} failed, {counts.running} running, "
        f"{counts.queued} queued of {counts.total}; {duration(elapsed)} elapsed"
    )
    return line if eta is None else f"{line}, ETA {duration(eta)}"


def duration(seconds: float) -> str:
    """42s, 3m05s, 1h02m: as short as a status line wants."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole // 60 % 60:02d}m"


class ProgressView:
    """One line per subject (a toolchain or a target), showing its current step and elapsed time.

    quiet: nothing at all (the command prints its one-line result). verbose: on a terminal, every step
    is also printed as a line above the live view, so the scrollback keeps them. targets: the run's
    target names and the seconds each is expected to take (None: unknown), for the counts and the ETA.
    """

    def __init__(
        self,
        console: Console,
        *,
        groups: bool | None = None,
        quiet: bool = False,
        verbose: bool = False,
        targets: Mapping[str, float | None] | None = None,
        slots: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self._groups = github.active() if groups is None else groups  # ::group:: folding, no live view
        self._group_open = False
        self._quiet = quiet
        self._verbose = verbose
        self._targets = dict(targets or {})
        self._slots = slots
        self._clock = clock
        self._lock = threading.Lock()
        self._steps: dict[str, tuple[str, float, float | None]] = {}  # subject -> (text, started, ended)
        self._live: Live | None = None
        self._started = clock()
        self._last_status = self._started

    def __enter__(self) -> ProgressView:
        if _interactive(self.console) and not self._groups and not self._quiet:
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
        if not self._groups or self._quiet:
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
        now = self._clock()
        with self._lock:
            started = self._steps.get(subject, ("", now, None))[1]
            self._steps[subject] = (text, started, now if done else None)
            status_due = (
                self._live is None and bool(self._targets) and now - self._last_status >= STATUS_EVERY
            )
            if status_due:
                self._last_status = now
        if self._quiet or (self._live is not None and not self._verbose):
            return
        elapsed = now - self._started
        self.console.print(f"[{elapsed:7.1f}s] {subject}: {text}", markup=False, highlight=False)
        if status_due:
            self.console.print(f"[{elapsed:7.1f}s] {self.status()}", markup=False, highlight=False)

    def counts(self) -> Counts:
        """The targets by where they are now."""
        with self._lock:
            return self._counts()

    def status(self) -> str:
        """The status line: the targets' counts, the time so far and (once there is something to go
        by) the ETA."""
        now = self._clock()
        with self._lock:
            counts, eta = self._counts(), self._eta(now)
        return status_line(counts, now - self._started, eta)

    def _counts(self) -> Counts:
        states = [self._steps.get(name) for name in self._targets]
        finished = [state for state in states if state is not None and state[2] is not None]
        failed = sum(text.startswith(_FAILED) for text, _, _ in finished)
        running = sum(state is not None and state[2] is None for state in states)
        return Counts(
            done=len(finished) - failed,
            failed=failed,
            running=running,
            queued=states.count(None),
        )

    def _eta(self, now: float) -> float | None:
        unfinished, finished = [], []
        for name, expected in self._targets.items():
            state = self._steps.get(name)
            if state is None:
                unfinished.append(Unfinished(expected=expected))
            elif state[2] is None:
                unfinished.append(Unfinished(expected=expected, elapsed=now - state[1]))
            else:
                finished.append(state[2] - state[1])
        return eta_seconds(unfinished, finished, self._slots)

    def _render(self) -> Group:
        """The subjects at work (and the last ones that finished, as room allows), then the status."""
        now = self._clock()
        with self._lock:
            rows = list(self._steps.items())
            status = (
                status_line(self._counts(), now - self._started, self._eta(now)) if self._targets else None
            )
        room = max(self.console.height - 3, 4)
        working = [row for row in rows if row[1][2] is None]
        finished = sorted((row for row in rows if row[1][2] is not None), key=lambda row: row[1][2] or 0)
        recent = finished[-(room - len(working)) :] if len(working) < room else []
        table = Table.grid(padding=(0, 1))
        for subject, (text, started, ended) in recent + working[:room]:
            marker = Spinner("dots") if ended is None else Text("•", style="dim")
            table.add_row(
                marker,
                Text(subject, style="bold"),
                Text(text),
                Text(f"{(ended or now) - started:5.1f}s", style="dim"),
            )
        if len(working) > room:
            table.add_row(Text(""), Text(f"… and {len(working) - room} more at work", style="dim"))
        return Group(table, Text(status, style="bold")) if status else Group(table)


def _interactive(console: Console) -> bool:
    """Whether console writes to a real terminal, worth a live view: a forced terminal (`--color
    always`, FORCE_COLOR) writing to a log or a pipe is not one."""
    try:
        isatty = console.file.isatty()
    except (AttributeError, ValueError):
        isatty = False
    return console.is_terminal and not console.is_dumb_terminal and isatty

"""The progress view: its counts, its ETA (a pure function), the status lines of a log and the live view
on a terminal, and what -q and -v make of it."""

from __future__ import annotations

import io
import os
import pty
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.outputs.progress import (
    STATUS_EVERY,
    Counts,
    ProgressView,
    Unfinished,
    duration,
    eta_seconds,
    previous_seconds,
    status_line,
)
from orchestrator.outputs.report import report_json
from tests.run_reports import failed_at_build, report, target


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------------
# The ETA


def test_nothing_left_is_done_now() -> None:
    assert eta_seconds([], [3.0], slots=4) == 0.0


def test_no_eta_without_anything_to_go_by() -> None:
    """No previous run for a target and none finished in this one: no guess."""
    assert eta_seconds([Unfinished(expected=None)], [], slots=2) is None
    assert eta_seconds([Unfinished(expected=10.0), Unfinished(expected=None)], [], slots=2) is None


def test_the_previous_run_is_what_a_target_should_take() -> None:
    """Four 10 s targets on two slots: 20 s; the time a running one has had is taken off."""
    assert eta_seconds([Unfinished(expected=10.0)] * 4, [], slots=2) == 20.0
    running = [Unfinished(expected=10.0, elapsed=6.0), Unfinished(expected=10.0, elapsed=6.0)]
    assert eta_seconds(running, [], slots=2) == 4.0


def test_this_runs_finished_targets_stand_in_for_an_unknown_one() -> None:
    """Unknown targets are expected to take the mean of those done: (2 + 4) / 2 = 3 s each."""
    assert eta_seconds([Unfinished(expected=None)] * 2, [2.0, 4.0], slots=1) == 6.0
    assert eta_seconds([Unfinished(expected=None, elapsed=1.0)], [2.0, 4.0], slots=1) == 2.0


def test_the_run_lasts_at_least_its_longest_target() -> None:
    """Slots to spare do not make a 60 s target shorter."""
    assert eta_seconds([Unfinished(expected=60.0), Unfinished(expected=1.0)], [], slots=8) == 60.0


def test_a_target_past_its_expected_time_counts_nothing_more() -> None:
    """When only such targets are left, the estimate has run out: no ETA rather than "0s"."""
    late = Unfinished(expected=5.0, elapsed=9.0)
    assert eta_seconds([late, Unfinished(expected=4.0)], [], slots=1) == 4.0
    assert eta_seconds([late], [], slots=1) is None


def test_previous_seconds_are_the_work_of_each_target_in_report_json(tmp_path: Path) -> None:
    """Waits for a slot depend on the other targets: left out."""
    path = tmp_path / "report.json"
    waited = target("a", seconds={"queued": 30.0, "build": 2.0, "smoke-queued": 5.0, "smoke": 1.0})
    path.write_bytes(report_json(report(waited, failed_at_build())))
    assert previous_seconds(path) == {("a", "linux/amd64"): 3.0, ("broken", "linux/amd64"): 1.5}


@pytest.mark.parametrize(
    "content", [None, "", "{", "[]", '{"targets": [{"service": "a"}]}', '{"targets": 3}']
)
def test_no_readable_previous_report_is_nothing_to_go_by(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    assert previous_seconds(path) == {}


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.4, "0s"), (42, "42s"), (59.6, "1m00s"), (185, "3m05s"), (3720, "1h02m")]
)
def test_durations_are_short(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_status_line_counts_and_estimates() -> None:
    counts = Counts(done=3, failed=1, running=2, queued=6)
    assert status_line(counts, 80, 125) == (
        "targets: 3 done, 1 failed, 2 running, 6 queued of 12; 1m20s elapsed, ETA 2m05s"
    )
    assert status_line(counts, 5, None).endswith("; 5s elapsed")


# ---------------------------------------------------------------------------------------------------
# The view


def test_targets_are_counted_by_where_they_are() -> None:
    clock = Clock()
    names = ["a linux/amd64", "b linux/amd64", "c linux/amd64", "d linux/amd64", "e linux/amd64"]
    view = ProgressView(_log(), targets=dict.fromkeys(names), groups=False, clock=clock)
    view.step("toolchain gcc", "present", done=True)  # not a target: not counted
    view.step("a linux/amd64", "build")
    view.step("a linux/amd64", "passed", done=True)
    view.step("b linux/amd64", "failed at build: error", done=True)
    view.step("c linux/amd64", "cached: inputs unchanged", done=True)
    view.step("d linux/amd64", "smoke")
    assert view.counts() == Counts(done=2, failed=1, running=1, queued=1)
    view.step("c linux/amd64", "failed at package: disk full", done=True)  # a later verdict wins
    assert view.counts() == Counts(done=1, failed=2, running=1, queued=1)


def test_the_view_estimates_from_the_previous_run_then_from_this_one() -> None:
    clock = Clock()
    view = ProgressView(_log(), targets={"a x": 10.0, "b x": None}, slots=1, groups=False, clock=clock)
    assert "ETA" not in view.status()  # b: nothing to go by yet
    view.step("a x", "build")
    clock.now += 4
    view.step("a x", "passed", done=True)
    assert view.status().endswith("4s elapsed, ETA 4s")  # b is expected to take what a took


def test_a_log_gets_a_status_line_every_so_often() -> None:
    """Off a terminal every step is a line, and a status line follows one when STATUS_EVERY seconds
    have passed since the last (b's ETA: 100 s less the 2 s it has run)."""
    clock, output = Clock(), io.StringIO()
    with ProgressView(_log(output), targets={"a x": 100.0, "b x": 100.0}, groups=False, clock=clock) as view:
        view.step("a x", "build")
        clock.now += STATUS_EVERY - 1
        view.step("b x", "build")
        clock.now += 2
        view.step("a x", "passed", done=True)
        view.step("b x", "smoke")
    lines = output.getvalue().splitlines()
    assert lines == [
        "[    0.0s] a x: build",
        "[   29.0s] b x: build",
        "[   31.0s] a x: passed",
        "[   31.0s] targets: 1 done, 0 failed, 1 running, 0 queued of 2; 31s elapsed, ETA 1m38s",
        "[   31.0s] b x: smoke",
    ]
    assert "\x1b" not in output.getvalue()


def test_quiet_shows_nothing() -> None:
    output = io.StringIO()
    with ProgressView(_log(output), quiet=True, groups=True, targets={"a x": None}) as view:
        view.phase("toolchains")
        view.step("a x", "build")
        view.step("a x", "passed", done=True)
    assert output.getvalue() == ""


@pytest.fixture
def terminal() -> Iterator[tuple[Console, int]]:
    """A console on a pseudo-terminal, and the end of it the test reads."""
    reader, writer = pty.openpty()
    stream = open(writer, "w", closefd=True)  # noqa: SIM115 - closed by _everything_shown
    yield Console(file=stream, width=100, height=30, color_system=None), reader
    stream.close()
    os.close(reader)


def _everything_shown(console: Console, reader: int) -> str:
    """All the console wrote: its end closed, then read to the end."""
    console.file.close()
    output = b""
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # EIO: everything was read
            break
        if not chunk:
            break
        output += chunk
    return output.decode(errors="replace")


def test_a_terminal_gets_a_live_view_with_the_status_line(terminal: tuple[Console, int]) -> None:
    console, reader = terminal
    with ProgressView(console, targets={"a x": 10.0, "b x": 20.0}, slots=2, groups=False) as view:
        view.step("a x", "build")
    shown = _everything_shown(console, reader)
    assert "a x" in shown and "build" in shown  # its last drawing, as the view ends
    assert "targets: 0 done, 0 failed, 1 running, 1 queued of 2" in shown and "ETA 20s" in shown
    assert "[    0.0s]" not in shown  # no step lines: the live view shows the steps


def test_verbose_keeps_every_step_above_the_live_view(terminal: tuple[Console, int]) -> None:
    console, reader = terminal
    with ProgressView(console, verbose=True, targets={"a x": None}, groups=False) as view:
        view.step("a x", "build")
        view.step("a x", "passed", done=True)
    shown = _everything_shown(console, reader)
    assert "a x: build" in shown and "a x: passed" in shown


def test_a_forced_terminal_that_is_a_log_gets_no_live_view() -> None:
    """FORCE_COLOR or --color always make rich treat a log as a terminal: still lines, no cursor moves."""
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=100)
    with ProgressView(console, targets={"a x": None}, groups=False) as view:
        view.step("a x", "build")
    assert output.getvalue().endswith("a x: build\n")
    assert "\x1b[?25l" not in output.getvalue()  # the live view hides the cursor


def _log(output: io.StringIO | None = None) -> Console:
    return Console(file=output or io.StringIO(), width=200, color_system=None)

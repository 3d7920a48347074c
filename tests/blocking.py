"""Calls that must never block (on a FIFO, say): run in a thread, so that a regression fails its test
instead of hanging the suite."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


def outcome_within(
    call: Callable[[], T], seconds: float, *, fifos: Iterable[Path], what: str
) -> T | BaseException:
    """What `call` returned or raised; the test fails when it is still running after `seconds` (the
    FIFOs are then opened for writing, so that a reader blocked on one returns and the thread ends)."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"{what} blocked for {seconds} s")
    return outcome[0]

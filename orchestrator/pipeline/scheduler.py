"""The run's thread pools: builds on one pool, smoke tests on a native and an emulated pool.

A target's build callable either ends it (its outcome) or hands on its smoke test (SmokeDue), which
goes to the native or the emulated pool: a build worker never waits for a smoke slot, so emulated smoke
tests queue up without holding back compiles. It knows nothing of engines or stages (plain callables),
so fail-fast and cancellation are tested without an engine.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")  # a target's outcome


@dataclass(frozen=True, kw_only=True)
class SmokeDue(Generic[R]):
    """A target that passed every stage up to packaging: its smoke test, and whether it is emulated."""

    smoke: Callable[[], R]
    emulated: bool


class Scheduler(Generic[R]):
    """Runs each target's build, then its smoke test when it hands one on, `jobs` builds and `jobs`
    native smoke tests at a time and `emulated_jobs` emulated ones.

    `stop` set (by fail_fast after an outcome that did not pass, or by the caller) makes targets not
    started yet end as `not_started` says. An exception in the loop (Ctrl-C) calls `cancel`, drops the
    queued work, waits for the work in flight, keeps the passed outcomes that finished meanwhile in
    `finished`, and goes on. `release` is called once the pools are idle, however the run ends.
    """

    def __init__(
        self,
        *,
        jobs: int,
        emulated_jobs: int,
        fail_fast: bool,
        stop: threading.Event,
        passed: Callable[[R], bool],
        not_started: Callable[[str], R],
        cancel: Callable[[], None],
        release: Callable[[], None],
        note: Callable[[str, str], None],
    ) -> None:
        self.jobs = max(1, jobs)
        self.emulated_jobs = max(1, emulated_jobs)
        self.fail_fast = fail_fast
        self.stop = stop
        self.passed = passed
        self.not_started = not_started
        self.cancel = cancel
        self.release = release
        self.note = note
        self.finished: dict[str, R] = {}  # target name -> its outcome, as targets finish

    def run(self, builds: Mapping[str, Callable[[], R | SmokeDue[R]]]) -> dict[str, R]:
        """Every target's outcome by name."""
        pools = {
            "build": ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="osless-build"),
            "smoke": ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="osless-smoke"),
            "emulated": ThreadPoolExecutor(max_workers=self.emulated_jobs, thread_name_prefix="osless-qemu"),
        }
        pending: dict[Future[R | SmokeDue[R]], str] = {}
        try:
            for name, build in builds.items():
                self.note(name, "queued")
                pending[pools["build"].submit(self._start, name, build)] = name
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    name = pending.pop(future)
                    outcome = future.result()
                    if isinstance(outcome, SmokeDue):
                        self.note(name, "waiting for a qemu slot" if outcome.emulated else "smoke queued")
                        pool = pools["emulated" if outcome.emulated else "smoke"]
                        pending[pool.submit(outcome.smoke)] = name
                        continue
                    self.finished[name] = outcome
                    if self.fail_fast and not self.passed(outcome):
                        self.stop.set()
        except BaseException:
            with signals_deferred():  # a second Ctrl-C must not cut the cleanup short
                self.cancel()
                for pool in pools.values():
                    pool.shutdown(wait=True, cancel_futures=True)
                self.release()
                for future, name in pending.items():  # finished while the run was stopping
                    if future.done() and not future.cancelled() and future.exception() is None:
                        outcome = future.result()
                        if not isinstance(outcome, SmokeDue) and self.passed(outcome):
                            self.finished[name] = outcome
            raise
        for pool in pools.values():
            pool.shutdown(wait=True)
        self.release()
        return self.finished

    def _start(self, name: str, build: Callable[[], R | SmokeDue[R]]) -> R | SmokeDue[R]:
        if self.stop.is_set():
            return self.not_started(name)
        return build()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the run cleans up after an interrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

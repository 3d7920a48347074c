"""The run's thread pools: builds on one pool, smoke tests on a native and an emulated pool.

A target's build callable either ends it (its outcome) or hands on its smoke test (SmokeDue), which
goes to the native or the emulated pool: a build worker never waits for a smoke slot, so emulated smoke
tests queue up without holding back compiles. Each build is told, when a worker takes it, how long it
waited and how many builds share the cores now (its `{JOBS}`: `core_share`), and each smoke test how
long it waited for its slot. It knows nothing of engines or stages (plain callables), so fail-fast,
cancellation and the core shares are tested without an engine.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")  # a target's outcome


@dataclass(frozen=True, kw_only=True)
class SmokeDue(Generic[R]):
    """A target that passed every stage up to packaging: its smoke test (given the seconds it waited for
    a smoke slot since it became due), and whether it is emulated."""

    smoke: Callable[[float], R]
    emulated: bool
    due: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, kw_only=True)
class Slot:
    """What a build is given when a worker takes it."""

    waited: float  # seconds since it was queued
    sharing: int  # builds the cores are shared by now: the slots while others wait, else those running

    def cores(self, total: int, limit: int) -> int:
        """`{JOBS}`: this build's share of `total` cores, at most `limit` (the recipe's CPU limit)."""
        return core_share(total, sharing=self.sharing, limit=limit)


def core_share(cores: int, *, sharing: int, limit: int) -> int:
    """An equal share of the cores among the builds sharing them, at least 1, at most `limit`: two
    builds on two cores each get `make -j1`, not two `make -j2` that fight for them."""
    return max(1, min(limit, cores // max(1, sharing)))


def builds_sharing(*, slots: int, running: int, waiting: int) -> int:
    """How many builds the cores are shared by for one starting now (`running` counts it): as many as
    can run at once while others wait for a slot; at the tail only those still running, so a lone last
    build gets every core."""
    return max(1, min(slots, running + waiting))


class Scheduler(Generic[R]):
    """Runs each target's build (given its Slot), then its smoke test when it hands one on, `jobs`
    builds and `jobs` native smoke tests at a time and `emulated_jobs` emulated ones.

    `stop` set (by fail_fast after an outcome that did not pass, or by the caller) makes targets not
    started yet end as `not_started` says. An exception in the loop (Ctrl-C) calls `cancel`, drops the
    queued work, waits for the work in flight, keeps the passed outcomes that finished meanwhile in
    `finished`, and goes on. `release` is called once the pools are idle, however the run ends.
    `outcome` hears of each target's outcome as it comes (not of those an interrupt leaves).
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
        outcome: Callable[[str, R], None] = lambda name, outcome: None,
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
        self.outcome = outcome
        self.finished: dict[str, R] = {}  # target name -> its outcome, as targets finish
        self._counts = threading.Lock()
        self._waiting = 0  # builds queued that no worker took yet
        self._running = 0  # builds a worker is running

    def run(self, builds: Mapping[str, Callable[[Slot], R | SmokeDue[R]]]) -> dict[str, R]:
        """Every target's outcome by name."""
        pools = {
            "build": ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="osless-build"),
            "smoke": ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="osless-smoke"),
            "emulated": ThreadPoolExecutor(max_workers=self.emulated_jobs, thread_name_prefix="osless-qemu"),
        }
        pending: dict[Future[R | SmokeDue[R]], str] = {}
        try:
            with self._counts:
                self._waiting = len(builds)
            queued = time.monotonic()  # every target at once: the pool starts them in order
            for name, build in builds.items():
                self.note(name, "queued")
                pending[pools["build"].submit(self._start, name, build, queued)] = name
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    name = pending.pop(future)
                    outcome = future.result()
                    if isinstance(outcome, SmokeDue):
                        self.note(name, "waiting for a qemu slot" if outcome.emulated else "smoke queued")
                        pool = pools["emulated" if outcome.emulated else "smoke"]
                        pending[pool.submit(_smoke, outcome)] = name
                        continue
                    self.finished[name] = outcome
                    self.outcome(name, outcome)
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

    def _start(self, name: str, build: Callable[[Slot], R | SmokeDue[R]], queued: float) -> R | SmokeDue[R]:
        with self._counts:
            self._waiting -= 1
            self._running += 1
            sharing = builds_sharing(slots=self.jobs, running=self._running, waiting=self._waiting)
        try:
            if self.stop.is_set():
                return self.not_started(name)
            return build(Slot(waited=time.monotonic() - queued, sharing=sharing))
        finally:
            with self._counts:
                self._running -= 1


def _smoke(due: SmokeDue[R]) -> R:
    return due.smoke(time.monotonic() - due.due)


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

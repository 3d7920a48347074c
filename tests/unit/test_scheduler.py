"""The scheduler over plain callables, without an engine: pools, fail-fast and cancellation.

Every wait is on an event with a timeout that only a broken scheduler reaches: no sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from orchestrator.pipeline.scheduler import Scheduler, SmokeDue

WAIT = 10  # seconds: reached only when the scheduler is broken


def _scheduler(
    *,
    jobs: int = 2,
    emulated_jobs: int = 1,
    fail_fast: bool = False,
    calls: list[str] | None = None,
    notes: list[tuple[str, str]] | None = None,
    note: Callable[[str, str], None] | None = None,
) -> Scheduler[str]:
    """A scheduler of string outcomes ("passed", "failed", ...); hooks append to `calls`."""
    calls = [] if calls is None else calls
    stop = threading.Event()

    def cancel() -> None:
        calls.append("cancel")
        stop.set()

    return Scheduler[str](
        jobs=jobs,
        emulated_jobs=emulated_jobs,
        fail_fast=fail_fast,
        stop=stop,
        passed=lambda outcome: outcome == "passed",
        not_started=lambda name: "not started",
        cancel=cancel,
        release=lambda: calls.append("release"),
        note=note or (lambda name, text: (notes if notes is not None else []).append((name, text))),
    )


def test_builds_and_smoke_tests_run_on_their_pools() -> None:
    threads: dict[str, str] = {}

    def build(name: str, emulated: bool | None) -> Callable[[], str | SmokeDue[str]]:
        def run() -> str | SmokeDue[str]:
            threads[f"{name} build"] = threading.current_thread().name
            if emulated is None:
                return "failed"
            return SmokeDue(smoke=lambda: smoke(name), emulated=emulated)

        return run

    def smoke(name: str) -> str:
        threads[f"{name} smoke"] = threading.current_thread().name
        return "passed"

    calls: list[str] = []
    notes: list[tuple[str, str]] = []
    scheduler = _scheduler(calls=calls, notes=notes)
    finished = scheduler.run(
        {"native": build("native", False), "foreign": build("foreign", True), "broken": build("broken", None)}
    )
    assert finished == {"native": "passed", "foreign": "passed", "broken": "failed"}
    assert all(threads[f"{n} build"].startswith("osless-build") for n in ("native", "foreign", "broken"))
    assert threads["native smoke"].startswith("osless-smoke")
    assert threads["foreign smoke"].startswith("osless-qemu")
    assert "broken smoke" not in threads
    assert calls == ["release"]
    assert ("foreign", "waiting for a qemu slot") in notes and ("native", "smoke queued") in notes
    assert [text for _, text in notes[:3]] == ["queued"] * 3


def test_a_build_never_waits_for_a_smoke_slot() -> None:
    """The one emulated slot is held by a slow smoke test; every other build still finishes, and the
    smoke tests queued behind it run once it is free."""
    slot_taken = threading.Event()
    slot_free = threading.Event()
    built: list[str] = []
    all_built = threading.Event()
    names = ["first", "second", "third", "fourth"]

    def build(name: str) -> Callable[[], SmokeDue[str]]:
        def run() -> SmokeDue[str]:
            built.append(name)
            if len(built) == len(names):
                all_built.set()
            return SmokeDue(smoke=slow if name == "first" else lambda: "passed", emulated=True)

        return run

    def slow() -> str:
        slot_taken.set()
        assert slot_free.wait(WAIT), "the test never freed the slot"
        return "passed"

    scheduler = _scheduler(jobs=1, emulated_jobs=1)
    result: dict[str, str] = {}
    running = threading.Thread(target=lambda: result.update(scheduler.run({n: build(n) for n in names})))
    running.start()
    try:
        assert slot_taken.wait(WAIT)
        assert all_built.wait(WAIT), f"builds waited for the emulated slot: only {built} built"
        assert scheduler.finished == {}  # every smoke test is still queued behind the slow one
    finally:
        slot_free.set()
        running.join(WAIT)
    assert not running.is_alive()
    assert result == dict.fromkeys(names, "passed")


def test_fail_fast_stops_the_queued_targets() -> None:
    """One build worker: the first target fails at its smoke test while the second builds (in flight
    until the run stops); the ones queued behind it never start and end as not started."""
    started: list[str] = []
    b_started = threading.Event()
    scheduler = _scheduler(jobs=1, fail_fast=True)

    def failing_smoke() -> str:
        assert b_started.wait(WAIT)
        return "failed"

    def failing() -> SmokeDue[str]:
        started.append("a")
        return SmokeDue(smoke=failing_smoke, emulated=False)

    def in_flight() -> str:
        started.append("b")
        b_started.set()
        assert scheduler.stop.wait(WAIT), "fail-fast did not stop the run"
        return "passed"

    def queued(name: str) -> Callable[[], str]:
        def build() -> str:
            started.append(name)
            return "passed"

        return build

    finished = scheduler.run({"a": failing, "b": in_flight, "c": queued("c"), "d": queued("d")})
    assert started == ["a", "b"]
    assert finished == {"a": "failed", "b": "passed", "c": "not started", "d": "not started"}


def test_without_fail_fast_a_failure_stops_nothing() -> None:
    scheduler = _scheduler(jobs=1)
    finished = scheduler.run({"a": lambda: "failed", "b": lambda: "passed"})
    assert finished == {"a": "failed", "b": "passed"}
    assert not scheduler.stop.is_set()


def test_an_interrupt_cancels_pending_work_and_keeps_what_passed() -> None:
    """Ctrl-C in the loop (here: raised by the progress note of a smoke test being queued) while the
    second target builds and the third waits: the cancel hook runs, the queued build never starts,
    the build in flight finishes and its passed outcome is kept, and the interrupt goes on."""
    calls: list[str] = []
    b_started = threading.Event()
    started: list[str] = []

    def note(name: str, text: str) -> None:
        if name == "a" and text == "waiting for a qemu slot":
            assert b_started.wait(WAIT)
            raise KeyboardInterrupt

    scheduler = _scheduler(jobs=1, calls=calls, note=note)

    def a() -> SmokeDue[str]:
        started.append("a")
        return SmokeDue(smoke=lambda: "passed", emulated=True)

    def b() -> str:
        started.append("b")
        b_started.set()
        assert scheduler.stop.wait(WAIT), "the cancel hook was not called"
        return "passed"

    def c() -> str:
        started.append("c")
        return "passed"

    with pytest.raises(KeyboardInterrupt):
        scheduler.run({"a": a, "b": b, "c": c})
    assert calls == ["cancel", "release"]
    assert started == ["a", "b"]
    assert scheduler.finished == {"b": "passed"}


def test_an_interrupt_keeps_no_failed_outcome_of_work_in_flight() -> None:
    calls: list[str] = []
    b_started = threading.Event()

    def note(name: str, text: str) -> None:
        if name == "a" and text == "smoke queued":
            assert b_started.wait(WAIT)
            raise KeyboardInterrupt

    scheduler = _scheduler(jobs=1, calls=calls, note=note)

    def b() -> str:
        b_started.set()
        assert scheduler.stop.wait(WAIT)
        return "failed"

    with pytest.raises(KeyboardInterrupt):
        scheduler.run({"a": lambda: SmokeDue(smoke=lambda: "passed", emulated=False), "b": b})
    assert calls == ["cancel", "release"]
    assert scheduler.finished == {}

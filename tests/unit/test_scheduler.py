"""The scheduler over plain callables, without an engine: pools, fail-fast, cancellation, the waits it
times and the share of the cores each build is given.

Every wait is on an event with a timeout that only a broken scheduler reaches: no sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from orchestrator.pipeline.scheduler import Scheduler, Slot, SmokeDue, builds_sharing, core_share

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

    def build(name: str, emulated: bool | None) -> Callable[[Slot], str | SmokeDue[str]]:
        def run(slot: Slot) -> str | SmokeDue[str]:
            threads[f"{name} build"] = threading.current_thread().name
            if emulated is None:
                return "failed"
            return SmokeDue(smoke=lambda waited: smoke(name), emulated=emulated)

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

    def build(name: str) -> Callable[[Slot], SmokeDue[str]]:
        def run(slot: Slot) -> SmokeDue[str]:
            built.append(name)
            if len(built) == len(names):
                all_built.set()
            return SmokeDue(smoke=slow if name == "first" else lambda waited: "passed", emulated=True)

        return run

    def slow(waited: float) -> str:
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

    def failing_smoke(waited: float) -> str:
        assert b_started.wait(WAIT)
        return "failed"

    def failing(slot: Slot) -> SmokeDue[str]:
        started.append("a")
        return SmokeDue(smoke=failing_smoke, emulated=False)

    def in_flight(slot: Slot) -> str:
        started.append("b")
        b_started.set()
        assert scheduler.stop.wait(WAIT), "fail-fast did not stop the run"
        return "passed"

    def queued(name: str) -> Callable[[Slot], str]:
        def build(slot: Slot) -> str:
            started.append(name)
            return "passed"

        return build

    finished = scheduler.run({"a": failing, "b": in_flight, "c": queued("c"), "d": queued("d")})
    assert started == ["a", "b"]
    assert finished == {"a": "failed", "b": "passed", "c": "not started", "d": "not started"}


def test_without_fail_fast_a_failure_stops_nothing() -> None:
    scheduler = _scheduler(jobs=1)
    finished = scheduler.run({"a": lambda slot: "failed", "b": lambda slot: "passed"})
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

    def a(slot: Slot) -> SmokeDue[str]:
        started.append("a")
        return SmokeDue(smoke=lambda waited: "passed", emulated=True)

    def b(slot: Slot) -> str:
        started.append("b")
        b_started.set()
        assert scheduler.stop.wait(WAIT), "the cancel hook was not called"
        return "passed"

    def c(slot: Slot) -> str:
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

    def b(slot: Slot) -> str:
        b_started.set()
        assert scheduler.stop.wait(WAIT)
        return "failed"

    with pytest.raises(KeyboardInterrupt):
        scheduler.run({"a": lambda slot: SmokeDue(smoke=lambda waited: "passed", emulated=False), "b": b})
    assert calls == ["cancel", "release"]
    assert scheduler.finished == {}


@pytest.mark.parametrize(
    ("slots", "running", "waiting", "sharing"),
    [
        (2, 1, 5, 2),  # others wait for a slot: the cores go to every slot
        (8, 1, 1, 2),  # fewer targets than slots: shared by those that will run
        (2, 2, 0, 2),  # the tail: shared by the builds still running
        (4, 1, 0, 1),  # the last build, alone
    ],
)
def test_the_builds_sharing_the_cores(slots: int, running: int, waiting: int, sharing: int) -> None:
    assert builds_sharing(slots=slots, running=running, waiting=waiting) == sharing


@pytest.mark.parametrize(
    ("cores", "sharing", "limit", "share"),
    [
        (2, 2, 2, 1),  # --jobs 2 on 2 cores: two make -j1, not two make -j2
        (8, 2, 8, 4),
        (8, 1, 8, 8),  # a lone build gets every core...
        (8, 1, 2, 2),  # ...up to the recipe's CPU limit
        (2, 4, 4, 1),  # never less than 1
    ],
)
def test_a_builds_share_of_the_cores(cores: int, sharing: int, limit: int, share: int) -> None:
    assert core_share(cores, sharing=sharing, limit=limit) == share
    assert Slot(waited=0.0, sharing=sharing).cores(cores, limit) == share


def test_each_build_is_given_its_share_when_it_starts() -> None:
    """Two slots, three targets: the first two share the cores while the third waits; the third starts
    while the first still runs, so it shares them too. One target alone gets every core."""
    c_started = threading.Event()
    slots: dict[str, Slot] = {}

    def build(name: str) -> Callable[[Slot], str]:
        def run(slot: Slot) -> str:
            slots[name] = slot
            if name == "a":
                assert c_started.wait(WAIT)
            if name == "c":
                c_started.set()
            return "passed"

        return run

    _scheduler(jobs=2).run({name: build(name) for name in "abc"})
    assert {name: slot.sharing for name, slot in slots.items()} == {"a": 2, "b": 2, "c": 2}
    assert {name: slot.cores(8, 8) for name, slot in slots.items()} == {"a": 4, "b": 4, "c": 4}

    _scheduler(jobs=4).run({"alone": build("alone")})
    assert slots["alone"].sharing == 1 and slots["alone"].cores(8, 8) == 8


def test_the_waits_for_a_build_and_a_smoke_slot_are_timed() -> None:
    """One build slot and one emulated slot: the second target waits for its build slot at least as
    long as the first builds, and for its smoke slot at least as long as the first's smoke test runs
    after the second's became due."""
    ran: dict[str, tuple[float, float]] = {}  # what -> (started, ended)
    waited: dict[str, float] = {}
    b_due = threading.Event()

    def timed(what: str) -> None:
        started = time.monotonic()
        for _ in range(10_000):  # some work, no sleep
            pass
        ran[what] = (started, time.monotonic())

    def build(name: str) -> Callable[[Slot], SmokeDue[str]]:
        def run(slot: Slot) -> SmokeDue[str]:
            waited[f"{name} build"] = slot.waited
            timed(f"{name} build")
            due = SmokeDue(smoke=lambda seconds: smoke(name, seconds), emulated=True)
            if name == "b":
                b_due.set()
            return due

        return run

    def smoke(name: str, seconds: float) -> str:
        waited[f"{name} smoke"] = seconds
        if name == "a":  # holds the emulated slot until b's smoke test is due
            assert b_due.wait(WAIT)
        timed(f"{name} smoke")
        return "passed"

    _scheduler(jobs=1, emulated_jobs=1).run({"a": build("a"), "b": build("b")})
    assert 0 <= waited["a build"] < WAIT and 0 <= waited["a smoke"] < WAIT
    started, ended = ran["a build"]
    assert waited["b build"] >= ended - started
    started, ended = ran["a smoke"]
    assert waited["b smoke"] >= ended - started

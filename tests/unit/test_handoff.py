"""The hand-off: the newest item runs in one thread of its own, failures are logged once per kind, flush and aclose."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from usermetrics.handoff import Handoff

LOGGER = "tests.handoff"


class Gated:
    """A ``run`` that records each item and its thread, and holds the items listed in ``hold`` until ``gate`` opens."""

    def __init__(self, *, hold: tuple[object, ...] = (), fail: dict[object, Exception] | None = None) -> None:
        self.hold = hold
        self.fail = fail or {}
        self.gate = threading.Event()
        self.started = threading.Event()
        self.ran: list[object] = []
        self.threads: list[str] = []

    def __call__(self, item: object) -> None:
        self.threads.append(threading.current_thread().name)
        if item in self.hold:
            self.started.set()
            assert self.gate.wait(timeout=30), "the test never opened the gate"
        self.ran.append(item)
        if item in self.fail:
            raise self.fail[item]


def handoff(run: Gated, **kwargs) -> Handoff[object]:
    return Handoff(
        run, name="test-handoff", failure="Running the item failed", logger=logging.getLogger(LOGGER), **kwargs
    )


async def started(run: Gated) -> None:
    """Until the thread holds the first held item (a bound for a loaded machine, not a timing assertion)."""
    assert await asyncio.to_thread(run.started.wait, 30)


async def test_handoff_runs_items_in_order_in_its_own_thread():
    run = Gated()
    worker = handoff(run)
    for item in ("a", "b", "c"):
        worker.submit(item)
        await worker.flush()
    await worker.aclose()
    assert run.ran == ["a", "b", "c"]
    assert run.threads and all(name.startswith("test-handoff") for name in run.threads)
    assert threading.current_thread().name not in run.threads


async def test_handoff_while_busy_only_the_newest_item_waits():
    run = Gated(hold=("first",))
    worker = handoff(run)
    worker.submit("first")
    await started(run)
    # submit returns at once although the thread is held: the loop goes on.
    for item in ("second", "third", "newest"):
        worker.submit(item)
    assert run.ran == []
    run.gate.set()
    await worker.flush()
    assert run.ran == ["first", "newest"]
    await worker.aclose()


async def test_handoff_flush_waits_for_every_item_handed_over_and_returns_at_once_when_idle():
    run = Gated(hold=("slow",))
    worker = handoff(run)
    await worker.flush()  # nothing handed over: nothing to wait for
    worker.submit("slow")
    await started(run)
    flushed = asyncio.ensure_future(worker.flush())
    await asyncio.sleep(0)  # let flush start waiting (not a proof of anything by itself)
    assert not flushed.done()
    run.gate.set()
    await flushed
    assert run.ran == ["slow"]
    await worker.aclose()


async def test_handoff_logs_each_new_kind_of_failure_once_and_again_after_a_success(caplog):
    boom, other = ValueError("boom"), KeyError("other")
    run = Gated(fail={1: boom, 2: boom, 3: other, 4: other, 6: other})
    worker = handoff(run)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for item in range(1, 7):  # boom, boom, other, other, fine, other
            worker.submit(item)
            await worker.flush()
    await worker.aclose()
    assert run.ran == [1, 2, 3, 4, 5, 6]  # a failure does not stop the next item
    logged = [r for r in caplog.records if r.name == LOGGER]
    assert [r.exc_info[1] for r in logged] == [boom, other, other]
    assert all(r.levelno == logging.ERROR for r in logged)
    assert logged[0].getMessage() == "Running the item failed (logged again only when the error changes)"


async def test_handoff_logs_at_the_level_it_is_given(caplog):
    run = Gated(fail={1: ValueError("boom")})
    worker = handoff(run, level=logging.WARNING)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        worker.submit(1)
        await worker.flush()
    await worker.aclose()
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [logging.WARNING]


async def test_handoff_on_error_runs_in_the_thread_after_each_failure_only():
    calls: list[tuple[str, list[object]]] = []
    run = Gated(fail={"bad": RuntimeError("bad")})
    worker = handoff(run, on_error=lambda: calls.append((threading.current_thread().name, list(run.ran))))
    for item in ("good", "bad", "good again"):
        worker.submit(item)
        await worker.flush()
    await worker.aclose()
    assert [ran for _, ran in calls] == [["good", "bad"]]
    assert calls[0][0] == run.threads[1]  # the thread that ran the failed item


async def test_handoff_aclose_runs_what_is_pending_then_on_close_in_the_thread_and_stops_it():
    closed: list[tuple[str, list[object]]] = []
    run = Gated(hold=("first",))
    worker = handoff(run, on_close=lambda: closed.append((threading.current_thread().name, list(run.ran))))
    worker.submit("first")
    await started(run)
    worker.submit("pending")
    run.gate.set()
    await worker.aclose()
    assert closed == [(run.threads[0], ["first", "pending"])]  # after the items, in their thread
    assert not [t for t in threading.enumerate() if t.name == run.threads[0]]  # the thread is gone


async def test_handoff_aclose_without_any_item_starts_no_thread():
    closed: list[str] = []
    worker = handoff(Gated(), on_close=lambda: closed.append("closed"))
    await worker.aclose()
    assert closed == []


async def test_handoff_takes_items_again_after_aclose_in_a_new_thread():
    run = Gated()
    worker = handoff(run)
    worker.submit("before")
    await worker.aclose()
    worker.submit("after")
    await worker.aclose()
    assert run.ran == ["before", "after"]


def test_handoff_submit_needs_a_running_loop():
    with pytest.raises(RuntimeError):
        handoff(Gated()).submit("no loop")

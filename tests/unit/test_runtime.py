"""Runtime: reference counting, latency and error accounting, idle cleanup, shutdown."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from usermetrics.runtime import SessionManager


class FakeClock:
    """A settable clock for eviction tests."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _wait_for(predicate, *, deadline: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def test_runtime_ref_counts_under_concurrent_sessions(manager):
    release = asyncio.Event()
    inside = 0

    async def request() -> None:
        nonlocal inside
        async with manager.session("alice"):
            inside += 1
            await release.wait()

    tasks = [asyncio.create_task(request()) for _ in range(5)]
    await _wait_for(lambda: inside == 5)
    info = manager._per_user_builders["alice"]
    assert info.ref_count == 5
    assert info.total_requests == 0  # counted when they finish
    release.set()
    await asyncio.gather(*tasks)
    assert info.ref_count == 0
    assert info.total_requests == 5
    assert len(manager._per_user_builders) == 1  # one builder per user, however many requests


async def test_runtime_latency_and_error_accounting(manager):
    async with manager.session("bob"):
        await asyncio.sleep(0.02)
    info = manager._per_user_builders["bob"]
    assert info.total_requests == 1 and info.error_count == 0
    assert info.total_latency_ms >= 20.0
    first = info.total_latency_ms

    with pytest.raises(KeyError):
        async with manager.session("bob"):
            raise KeyError("boom")
    assert info.total_requests == 2 and info.error_count == 1
    assert info.total_latency_ms >= first
    assert info.ref_count == 0


async def test_runtime_cancelled_request_is_not_an_error(manager):
    started = asyncio.Event()

    async def request() -> None:
        async with manager.session("carol"):
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(request())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    info = manager._per_user_builders["carol"]
    assert info.ref_count == 0
    assert info.total_requests == 1 and info.error_count == 0


async def test_runtime_last_activity_moves_on_use():
    clock = FakeClock()
    mgr = SessionManager(clock=clock)
    async with mgr.session("dave"):
        pass
    info = mgr._per_user_builders["dave"]
    assert info.created_at == info.last_activity == clock.now
    clock.now += timedelta(minutes=3)
    async with mgr.session("dave"):
        pass
    assert info.last_activity == clock.now
    assert info.created_at == clock.now - timedelta(minutes=3)
    await mgr.aclose()


async def test_runtime_cleanup_evicts_only_idle_unreferenced_users():
    clock = FakeClock()
    mgr = SessionManager(per_user_workflow_timeout=timedelta(minutes=30), clock=clock)
    closed: list[str] = []

    def closer(name: str):
        async def close() -> None:
            closed.append(name)

        return close

    for user in ("idle-old", "busy-old", "recent"):
        async with mgr.session(user) as builder:
            builder.push_resource(closer(user))
    clock.now += timedelta(minutes=31)
    async with mgr.session("recent"):
        pass
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        async with mgr.session("busy-old"):
            entered.set()
            await release.wait()

    # busy-old keeps an in-flight request; its last_activity is then pushed back past the timeout.
    task = asyncio.create_task(hold())
    await entered.wait()
    mgr._per_user_builders["busy-old"].last_activity = clock.now - timedelta(hours=2)

    assert await mgr.cleanup_idle() == 1
    assert sorted(mgr._per_user_builders) == ["busy-old", "recent"]
    assert closed == ["idle-old"]

    release.set()
    await task
    await mgr.aclose()
    assert sorted(closed) == ["busy-old", "idle-old", "recent"]


async def test_runtime_periodic_cleanup_runs_by_itself():
    mgr = SessionManager(
        per_user_workflow_timeout=timedelta(0), per_user_workflow_cleanup_interval=timedelta(milliseconds=10)
    )
    async with mgr.session("ephemeral"):
        pass
    mgr.start()
    await _wait_for(lambda: "ephemeral" not in mgr._per_user_builders)
    await mgr.aclose()


async def test_runtime_aclose_closes_every_builder_and_refuses_new_sessions():
    mgr = SessionManager()
    mgr.start()
    async with mgr.session("erin") as builder:
        pass
    await mgr.aclose()
    assert builder.closed
    assert mgr._per_user_builders == {}
    with pytest.raises(RuntimeError):
        async with mgr.session("erin"):
            pass


async def test_runtime_requires_a_user_id(manager):
    with pytest.raises(ValueError):
        async with manager.session(""):
            pass

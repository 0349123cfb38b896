"""The monitor: concurrent refresh, single flight, timeouts, health over an injected clock, UTC, listeners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.factories import ManualClock, ScriptedSource, record
from usermetrics.monitor import MonitorService
from usermetrics.snapshot import Snapshot
from usermetrics.sources import LocalSource


async def test_monitor_single_flight_refresh(install_service):
    source = ScriptedSource("s", [record("a")])
    source.gate = asyncio.Event()
    service = install_service([source], interval=60)
    callers = [asyncio.create_task(service.refresh()) for _ in range(10)]
    waiting = asyncio.create_task(service.snapshot())
    await asyncio.sleep(0)  # let every caller reach the one refresh
    source.gate.set()
    results = await asyncio.gather(*callers)
    assert source.calls == 1
    assert len({id(r) for r in results}) == 1 and await waiting is results[0]
    # A later call within the interval reuses the snapshot; an explicit refresh fetches again.
    await service.snapshot()
    assert source.calls == 1
    await service.refresh()
    assert source.calls == 2


async def test_monitor_snapshot_age_is_read_off_the_injected_clock(install_service):
    clock = ManualClock()
    source = ScriptedSource("s", [record("a")])
    service = install_service([source], interval=2, clock=clock)
    first = await service.snapshot()
    clock.advance(1.9)
    assert await service.snapshot() is first and source.calls == 1
    clock.advance(0.2)
    assert (await service.snapshot()).seq == 2 and source.calls == 2


async def test_monitor_refresh_survives_a_caller_giving_up(install_service):
    source = ScriptedSource("s", [record("a")])
    source.gate = asyncio.Event()
    service = install_service([source])
    impatient = asyncio.create_task(service.refresh())
    patient = asyncio.create_task(service.refresh())
    await asyncio.sleep(0)
    impatient.cancel()
    source.gate.set()
    snapshot = await patient
    assert [u.user_id for u in snapshot.users] == ["a"]


async def test_monitor_hanging_source_keeps_last_good_data_as_stale(install_service):
    flaky = ScriptedSource("flaky", [record("kept")], "hang")
    steady = ScriptedSource("steady", [record("other")])
    service = install_service([flaky, steady], timeout=0.05)
    first = await service.refresh()
    assert {h.name: h.state for h in first.sources} == {"flaky": "ok", "steady": "ok"}
    second = await service.refresh()
    health = {h.name: h for h in second.sources}
    assert health["flaky"].state == "stale"
    assert health["flaky"].last_error == "timed out after 0.05 s"
    assert health["flaky"].last_success == first.sources[0].last_success
    assert health["steady"].state == "ok"  # not blocked by the hanging one
    assert sorted(u.user_id for u in second.users) == ["kept", "other"]
    assert second.stale_sources == ["flaky"]


async def test_monitor_failing_source_without_data_is_down(install_service):
    service = install_service([ScriptedSource("broken", ConnectionError("refused"))])
    (health,) = (await service.refresh()).sources
    assert health.state == "down"
    assert health.last_error == "ConnectionError: refused"
    assert health.last_success is None


async def test_monitor_recovery_after_failure(install_service):
    source = ScriptedSource("s", [record("a")], RuntimeError("down"), [record("a"), record("b")])
    service = install_service([source])
    await service.refresh()
    assert (await service.refresh()).sources[0].state == "stale"
    snapshot = await service.refresh()
    assert snapshot.sources[0].state == "ok"
    assert [u.user_id for u in snapshot.users] == ["a", "b"]
    assert snapshot.seq == 3


async def test_monitor_source_failing_past_down_after_is_down_with_users_kept(install_service):
    clock = ManualClock()
    source = ScriptedSource("s", [record("kept")], RuntimeError("refused"))
    service = install_service([source], down_after=30, clock=clock)
    await service.refresh()
    clock.advance(2)
    blip = await service.refresh()
    assert blip.sources[0].state == "stale" and blip.sources[0].failing_since == clock.now
    assert blip.user_is_stale("kept")
    clock.advance(29.9)
    assert (await service.refresh()).sources[0].state == "stale"  # still a blip, just under the threshold
    clock.advance(0.1)
    down = await service.refresh()
    (health,) = down.sources
    assert health.state == "down" and health.users_stale
    assert health.failing_since == blip.sources[0].failing_since  # the run of failures started once
    assert [u.user_id for u in down.users] == ["kept"]  # never blanked
    assert down.user_is_stale("kept")
    assert health.last_error == "RuntimeError: refused" and health.last_success is not None


async def test_monitor_source_that_cannot_answer_is_down_at_once(install_service):
    class Disabled(Exception):
        down_at_once = True

    service = install_service([ScriptedSource("s", [record("kept")], Disabled("monitoring off"))], down_after=3600)
    await service.refresh()
    assert (await service.refresh()).sources[0].state == "down"


async def test_monitor_per_source_timeout_overrides_the_default(install_service):
    source = ScriptedSource("slow", "hang")
    source.timeout = 0.02
    snapshot = await install_service([source], timeout=60).refresh()
    assert snapshot.sources[0].last_error == "timed out after 0.02 s"


async def test_monitor_timestamps_become_aware_utc(install_service):
    naive = datetime(2026, 3, 1, 8, 30)
    source = ScriptedSource("nat", [record("n", session={"created_at": naive, "last_activity": naive})])
    source.timezone = timezone(timedelta(hours=2))
    snapshot = await install_service([source]).refresh()
    got = snapshot.by_id["n"]
    assert got.session.created_at == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert got.session.created_at.utcoffset() == timedelta(0)
    assert snapshot.timestamp.utcoffset() == timedelta(0)
    assert snapshot.json_all.count(b"+02:00") == 0


async def test_monitor_naive_times_default_to_this_hosts_zone(install_service):
    naive = datetime(2026, 3, 1, 8, 30)
    source = ScriptedSource("nat", [record("n", session={"created_at": naive, "last_activity": naive})])
    snapshot = await install_service([source]).refresh()
    assert snapshot.by_id["n"].session.created_at == naive.astimezone(UTC)


async def test_monitor_listeners_get_every_snapshot_and_a_broken_one_is_contained(install_service):
    service = install_service([ScriptedSource("s", [record("a")])])
    seen: list[int] = []

    async def listener(snapshot: Snapshot) -> None:
        seen.append(snapshot.seq)

    async def broken(snapshot: Snapshot) -> None:
        raise RuntimeError("listener bug")

    service.add_listener(broken)
    service.add_listener(listener)
    await service.refresh()
    await service.refresh()
    assert seen == [1, 2]


async def test_monitor_start_runs_the_periodic_refresh(install_service, manager):
    service = install_service([LocalSource("local", manager)], interval=0.01)
    ticks: list[int] = []
    three = asyncio.Event()

    async def count(snapshot: Snapshot) -> None:
        ticks.append(snapshot.seq)
        if len(ticks) >= 3:
            three.set()

    service.add_listener(count)
    await service.start()
    await asyncio.wait_for(three.wait(), timeout=10)
    assert ticks[:3] == [1, 2, 3]
    await service.aclose()


async def test_monitor_health_is_frozen_per_snapshot(install_service):
    source = ScriptedSource("s", [record("a")], RuntimeError("boom"))
    service = install_service([source])
    first = await service.refresh()
    await service.refresh()
    assert first.sources[0].state == "ok"  # the later failure did not rewrite the earlier snapshot


def test_monitor_unique_source_names():
    with pytest.raises(ValueError):
        MonitorService([ScriptedSource("a", []), ScriptedSource("a", [])])

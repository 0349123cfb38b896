"""The monitor: concurrent refresh, single flight, timeouts, health over an injected clock, UTC, listeners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.support.factories import ManualClock, ScriptedSource, record
from usermetrics.monitor import MonitorService


async def test_monitor_single_flight_refresh(monitor):
    source = ScriptedSource("s", [record("a")])
    source.gate = asyncio.Event()
    service = monitor([source], interval=60)
    callers = [asyncio.create_task(service.refresh()) for _ in range(10)]
    await asyncio.sleep(0)  # let every caller reach the one refresh
    source.gate.set()
    results = await asyncio.gather(*callers)
    assert source.calls == 1
    assert len({id(r) for r in results}) == 1 and service.last_snapshot is results[0]
    # A later call refreshes again.
    await service.refresh()
    assert source.calls == 2


async def test_monitor_refresh_survives_a_caller_giving_up(monitor):
    source = ScriptedSource("s", [record("a")])
    source.gate = asyncio.Event()
    service = monitor([source])
    impatient = asyncio.create_task(service.refresh())
    patient = asyncio.create_task(service.refresh())
    await asyncio.sleep(0)
    impatient.cancel()
    source.gate.set()
    snapshot = await patient
    assert [u.user_id for u in snapshot.users] == ["a"]


async def test_monitor_hanging_source_keeps_last_good_data_as_stale(monitor):
    flaky = ScriptedSource("flaky", [record("kept")], "hang")
    steady = ScriptedSource("steady", [record("other")])
    service = monitor([flaky, steady], timeout=0.05)
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


async def test_monitor_failing_source_without_data_is_down(monitor):
    service = monitor([ScriptedSource("broken", ConnectionError("refused"))])
    (health,) = (await service.refresh()).sources
    assert health.state == "down"
    assert health.last_error == "ConnectionError: refused"
    assert health.last_success is None


async def test_monitor_recovery_after_failure(monitor):
    source = ScriptedSource("s", [record("a")], RuntimeError("down"), [record("a"), record("b")])
    service = monitor([source])
    await service.refresh()
    assert (await service.refresh()).sources[0].state == "stale"
    snapshot = await service.refresh()
    assert snapshot.sources[0].state == "ok"
    assert [u.user_id for u in snapshot.users] == ["a", "b"]
    assert snapshot.seq == 3


async def test_monitor_source_failing_past_down_after_is_down_with_users_kept(monitor):
    clock = ManualClock()
    source = ScriptedSource("s", [record("kept")], RuntimeError("refused"))
    service = monitor([source], down_after=30, clock=clock)
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


async def test_monitor_source_that_cannot_answer_is_down_at_once(monitor):
    class Disabled(Exception):
        down_at_once = True

    service = monitor([ScriptedSource("s", [record("kept")], Disabled("monitoring off"))], down_after=3600)
    await service.refresh()
    assert (await service.refresh()).sources[0].state == "down"


async def test_monitor_per_source_timeout_overrides_the_default(monitor):
    source = ScriptedSource("slow", "hang")
    source.timeout = 0.02
    snapshot = await monitor([source], timeout=60).refresh()
    assert snapshot.sources[0].last_error == "timed out after 0.02 s"


async def test_monitor_timestamps_become_aware_utc(monitor):
    naive = datetime(2026, 3, 1, 8, 30)
    source = ScriptedSource("nat", [record("n", session={"created_at": naive, "last_activity": naive})])
    source.timezone = timezone(timedelta(hours=2))
    snapshot = await monitor([source]).refresh()
    got = snapshot.by_id["n"]
    assert got.session.created_at == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert got.session.created_at.utcoffset() == timedelta(0)
    assert snapshot.timestamp.utcoffset() == timedelta(0)
    assert snapshot.json_all.count(b"+02:00") == 0


async def test_monitor_naive_times_default_to_this_hosts_zone(monitor):
    naive = datetime(2026, 3, 1, 8, 30)
    source = ScriptedSource("nat", [record("n", session={"created_at": naive, "last_activity": naive})])
    snapshot = await monitor([source]).refresh()
    assert snapshot.by_id["n"].session.created_at == naive.astimezone(UTC)


async def test_monitor_continues_the_numbering_it_is_given(monitor):
    service = monitor([ScriptedSource("s", [record("a")])])
    service.seq_from(41)  # a producer taking over from one that published refresh 41
    assert (await service.refresh()).seq == 42
    service.seq_from(7)  # never backwards
    assert (await service.refresh()).seq == 43


async def test_monitor_health_is_frozen_per_snapshot(monitor):
    source = ScriptedSource("s", [record("a")], RuntimeError("boom"))
    service = monitor([source])
    first = await service.refresh()
    await service.refresh()
    assert first.sources[0].state == "ok"  # the later failure did not rewrite the earlier snapshot


def test_monitor_unique_source_names():
    with pytest.raises(ValueError):
        MonitorService([ScriptedSource("a", []), ScriptedSource("a", [])])

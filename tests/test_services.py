"""Service layer: concurrent refresh, single flight, timeouts and staleness, UTC, merging."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from usermetrics import services
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.sources import LocalSource


def usage(user_id: str, **over: object) -> PerUserResourceUsage:
    """A user record with sensible values, overridable per section."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    doc = {
        "user_id": user_id,
        "session": {"created_at": now, "last_activity": now, "ref_count": 0, "is_active": False},
        "requests": {"total_requests": 1, "active_requests": 0, "avg_latency_ms": 10.0, "error_count": 0},
        "memory": {"per_user_functions_count": 1, "per_user_function_groups_count": 0, "exit_stack_size": 1},
    }
    for section, values in over.items():
        doc[section] = {**doc[section], **values}
    return PerUserResourceUsage.model_validate(doc)


class ScriptedSource:
    """A source whose answers the test scripts: a list, an exception, or 'hang'."""

    kind = "test"
    timezone = None
    per_user_workflow_timeout = None

    def __init__(self, name: str, *answers: object) -> None:
        self.name = name
        self.answers = list(answers)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> PerUserMonitorResponse:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == "hang":
            await asyncio.sleep(3600)
        if isinstance(answer, Exception):
            raise answer
        return PerUserMonitorResponse(total_active_users=len(answer), users=answer)


async def test_services_single_flight_refresh(install_service):
    source = ScriptedSource("s", [usage("a")])
    source.gate = asyncio.Event()
    service = install_service([source], interval=60)
    callers = [asyncio.create_task(service.refresh()) for _ in range(10)]
    callers += [asyncio.create_task(services.user_metrics_get(user_id="a")) for _ in range(5)]
    await asyncio.sleep(0.01)
    source.gate.set()
    results = await asyncio.gather(*callers)
    assert source.calls == 1
    assert len({id(r) for r in results[:10]}) == 1
    assert all(r.user_id == "a" for r in results[10:])
    # A later call within the interval reuses the snapshot; an explicit refresh fetches again.
    await services.snapshot_get()
    assert source.calls == 1
    await service.refresh()
    assert source.calls == 2


async def test_services_refresh_survives_a_caller_giving_up(install_service):
    source = ScriptedSource("s", [usage("a")])
    source.gate = asyncio.Event()
    service = install_service([source])
    impatient = asyncio.create_task(service.refresh())
    patient = asyncio.create_task(service.refresh())
    await asyncio.sleep(0.01)
    impatient.cancel()
    source.gate.set()
    snapshot = await patient
    assert [u.user_id for u in snapshot.users] == ["a"]


async def test_services_hanging_source_keeps_last_good_data_as_stale(install_service):
    flaky = ScriptedSource("flaky", [usage("kept")], "hang")
    steady = ScriptedSource("steady", [usage("other")])
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
    status = await services.source_status()
    assert [s["state"] for s in status["sources"]] == ["stale", "ok"]


async def test_services_failing_source_without_data_is_down(install_service):
    broken = ScriptedSource("broken", ConnectionError("refused"))
    service = install_service([broken])
    snapshot = await service.refresh()
    (health,) = snapshot.sources
    assert health.state == "down"
    assert health.last_error == "ConnectionError: refused"
    assert health.last_success is None
    assert snapshot.users == []


async def test_services_recovery_after_failure(install_service):
    source = ScriptedSource("s", [usage("a")], RuntimeError("down"), [usage("a"), usage("b")])
    service = install_service([source])
    await service.refresh()
    assert (await service.refresh()).sources[0].state == "stale"
    snapshot = await service.refresh()
    assert snapshot.sources[0].state == "ok"
    assert [u.user_id for u in snapshot.users] == ["a", "b"]
    assert snapshot.seq == 3


async def test_services_timestamps_become_aware_utc(install_service):
    naive = datetime(2026, 3, 1, 8, 30)
    plus_two = timezone(timedelta(hours=2))
    source = ScriptedSource("nat", [usage("n", session={"created_at": naive, "last_activity": naive})])
    source.timezone = plus_two
    install_service([source])
    got = await services.user_metrics_get(user_id="n")
    assert got.session.created_at == datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert got.session.created_at.utcoffset() == timedelta(0)
    response = await services.user_metrics_list()
    assert response.timestamp.tzinfo is not None and response.timestamp.utcoffset() == timedelta(0)
    assert response.model_dump_json().count("+02:00") == 0


async def test_services_naive_times_default_to_this_hosts_zone(install_service):
    naive = datetime(2026, 3, 1, 8, 30)
    install_service([ScriptedSource("nat", [usage("n", session={"created_at": naive, "last_activity": naive})])])
    got = await services.user_metrics_get(user_id="n")
    assert got.session.created_at == naive.astimezone(UTC)


async def test_services_merge_rules(install_service):
    early = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    late = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    one = usage(
        "u",
        session={"created_at": early, "last_activity": early, "ref_count": 0, "is_active": False},
        requests={"total_requests": 3, "avg_latency_ms": 10.0, "error_count": 1, "active_requests": 0},
        memory={"per_user_functions_count": 2, "per_user_function_groups_count": 1, "exit_stack_size": 3},
    )
    two = usage(
        "u",
        session={"created_at": late, "last_activity": late, "ref_count": 2, "is_active": True},
        requests={"total_requests": 1, "avg_latency_ms": 50.0, "error_count": 0, "active_requests": 2},
        memory={"per_user_functions_count": 2, "per_user_function_groups_count": 0, "exit_stack_size": 4},
    )
    # Two processes, and a duplicate within one response (NAT with an extra endpoint).
    install_service([ScriptedSource("p1", [one]), ScriptedSource("p2", [two, usage("solo")])])
    snapshot = await services.snapshot_get()
    merged = snapshot.by_id["u"]
    assert merged.session.created_at == early and merged.session.last_activity == late
    assert merged.session.ref_count == 2 and merged.session.is_active is True
    assert merged.requests.total_requests == 4
    assert merged.requests.avg_latency_ms == 20.0  # (3*10 + 1*50) / 4
    assert merged.requests.error_count == 1 and merged.requests.active_requests == 2
    assert merged.memory.per_user_functions_count == 4
    assert merged.memory.per_user_function_groups_count == 1
    assert merged.memory.exit_stack_size == 7
    assert snapshot.origins["u"] == ("p1", "p2") and snapshot.origins["solo"] == ("p2",)
    assert [name for name, _ in snapshot.parts["u"]] == ["p1", "p2"]
    # The merged record is still a valid NAT document.
    assert PerUserResourceUsage.model_validate_json(merged.model_dump_json()) == merged


def test_services_merge_duplicates_within_one_source_and_zero_requests():
    a = usage("x", requests={"total_requests": 0, "avg_latency_ms": 0.0})
    merged = services.merge_usages("x", [a, a])
    assert merged.requests.avg_latency_ms == 0.0
    assert merged.memory.exit_stack_size == 2


async def test_services_list_filter_and_unknown_user(install_service, manager):
    async with manager.session("alice"):
        pass
    async with manager.session("bob"):
        pass
    install_service([LocalSource("local", manager)])
    everyone = await services.user_metrics_list()
    assert [u.user_id for u in everyone.users] == ["alice", "bob"] and everyone.total_active_users == 2
    only = await services.user_metrics_list(user_id="bob")
    assert [u.user_id for u in only.users] == ["bob"] and only.total_active_users == 1
    nobody = await services.user_metrics_list(user_id="nobody")
    assert nobody.users == [] and nobody.total_active_users == 0
    assert await services.user_metrics_get(user_id="nobody") is None


async def test_services_status_shape(install_service, manager):
    install_service([LocalSource("local", manager)], interval=3.0, timeout=1.5)
    status = await services.source_status()
    assert status["version"] == services.VERSION
    assert status["refresh_interval"] == 3.0 and status["source_timeout"] == 1.5
    assert datetime.fromisoformat(status["last_refresh"]).tzinfo is not None
    (source,) = status["sources"]
    assert source["name"] == "local" and source["kind"] == "local" and source["state"] == "ok"


async def test_services_listeners_get_every_snapshot(install_service):
    service = install_service([ScriptedSource("s", [usage("a")])])
    seen: list[int] = []

    async def listener(snapshot: services.Snapshot) -> None:
        seen.append(snapshot.seq)

    async def broken(snapshot: services.Snapshot) -> None:
        raise RuntimeError("listener bug")

    service.add_listener(broken)
    service.add_listener(listener)
    await service.refresh()
    await service.refresh()
    assert seen == [1, 2]


async def test_services_start_runs_the_periodic_refresh(install_service, manager):
    service = install_service([LocalSource("local", manager)], interval=0.01)
    await service.start()
    loop = asyncio.get_running_loop()
    end = loop.time() + 5
    while service.refresh_count < 3:
        assert loop.time() < end, "periodic refresh did not run"
        await asyncio.sleep(0.01)
    await service.aclose()


def test_services_unique_source_names():
    import pytest

    with pytest.raises(ValueError):
        services.MonitorService([ScriptedSource("a", []), ScriptedSource("a", [])])


async def test_services_source_failing_past_down_after_is_down_with_users_kept(install_service):
    source = ScriptedSource("s", [usage("kept")], RuntimeError("refused"))
    service = install_service([source], down_after=0.05)
    await service.refresh()
    blip = await service.refresh()
    assert blip.sources[0].state == "stale" and blip.sources[0].failing_since is not None
    assert blip.user_is_stale("kept")
    await asyncio.sleep(0.06)
    down = await service.refresh()
    (health,) = down.sources
    assert health.state == "down" and health.users_stale
    assert health.failing_since == blip.sources[0].failing_since  # the run of failures started once
    assert [u.user_id for u in down.users] == ["kept"]  # never blanked
    assert down.user_is_stale("kept")
    status = await services.source_status()
    (entry,) = status["sources"]
    assert entry["state"] == "down" and entry["users"] == 1 and entry["users_stale"] is True
    assert entry["last_error"] == "RuntimeError: refused" and entry["last_success"] is not None


async def test_services_source_that_cannot_answer_is_down_at_once(install_service):
    class Disabled(Exception):
        down_at_once = True

    source = ScriptedSource("s", [usage("kept")], Disabled("monitoring off"))
    service = install_service([source], down_after=3600)
    await service.refresh()
    assert (await service.refresh()).sources[0].state == "down"


async def test_services_per_source_timeout_overrides_the_default(install_service):
    source = ScriptedSource("slow", "hang")
    source.timeout = 0.02
    snapshot = await install_service([source], timeout=60).refresh()
    assert snapshot.sources[0].last_error == "timed out after 0.02 s"


async def test_services_user_parts_staleness_and_eviction_estimate(install_service):
    idle_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    one = ScriptedSource("one", [usage("u"), usage("solo")])
    one.per_user_workflow_timeout = timedelta(minutes=30)
    two = ScriptedSource("two", [usage("u", session={"last_activity": idle_at + timedelta(minutes=5)})])
    two.per_user_workflow_timeout = timedelta(minutes=10)
    unknown = ScriptedSource("unknown", [usage("mystery"), usage("busy", session={"ref_count": 1, "is_active": True})])
    snapshot = await install_service([one, two, unknown]).refresh()
    assert [name for name, _ in snapshot.user_parts("u")] == ["one", "two"]
    assert [name for name, _ in snapshot.user_parts("solo")] == ["one"]
    assert snapshot.user_parts("nobody") == []
    assert snapshot.health_by_name["one"].per_user_workflow_timeout == 1800.0
    # Gone from both sources only when the later of the two evictions is due.
    assert snapshot.evicted_at("u") == idle_at + timedelta(minutes=30)
    assert snapshot.evicted_at("solo") == idle_at + timedelta(minutes=30)
    assert snapshot.evicted_at("mystery") is None  # the source's timeout is not known
    assert snapshot.evicted_at("busy") is None  # in flight: not idle
    assert not snapshot.user_is_stale("u")

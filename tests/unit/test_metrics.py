"""Seed layer: the models' fields and constraints, the JSON shape, and the collector's semantics."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from usermetrics.metrics import (
    PerUserMemoryMetrics,
    PerUserMetricsCollector,
    PerUserMonitorResponse,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.runtime import PerUserBuilderInfo, SessionManager

REQUIRED = PydanticUndefined

# (model, field, annotation, default, ge, description) exactly as nat.runtime.metrics has them.
SEED_FIELDS = [
    (PerUserSessionMetrics, "created_at", datetime, REQUIRED, None, "When the per-user workflow was created"),
    (PerUserSessionMetrics, "last_activity", datetime, REQUIRED, None, "Last time the workflow was accessed"),
    (PerUserSessionMetrics, "ref_count", int, REQUIRED, 0, "Current number of active references (in-flight requests)"),
    (PerUserSessionMetrics, "is_active", bool, REQUIRED, None, "Whether the workflow is currently being used"),
    (PerUserRequestMetrics, "total_requests", int, 0, 0, "Total number of requests processed"),
    (PerUserRequestMetrics, "active_requests", int, 0, 0, "Number of currently active requests"),
    (PerUserRequestMetrics, "avg_latency_ms", float, 0.0, 0, "Average request latency in milliseconds"),
    (PerUserRequestMetrics, "error_count", int, 0, 0, "Total number of failed requests"),
    (PerUserMemoryMetrics, "per_user_functions_count", int, 0, 0, "Number of per-user functions built"),
    (PerUserMemoryMetrics, "per_user_function_groups_count", int, 0, 0, "Number of per-user function groups built"),
    (PerUserMemoryMetrics, "exit_stack_size", int, 0, 0, "Number of resources in the async exit stack"),
    (PerUserResourceUsage, "user_id", str, REQUIRED, None, "The user identifier"),
    (PerUserResourceUsage, "session", PerUserSessionMetrics, REQUIRED, None, "Session lifecycle metrics"),
    (PerUserResourceUsage, "requests", PerUserRequestMetrics, REQUIRED, None, "Request-level metrics"),
    (PerUserResourceUsage, "memory", PerUserMemoryMetrics, REQUIRED, None, "Memory/resource count metrics"),
    (PerUserMonitorResponse, "timestamp", datetime, REQUIRED, None, "When the metrics were collected"),
    (PerUserMonitorResponse, "total_active_users", int, REQUIRED, 0, "Number of users with active per-user workflows"),
    (PerUserMonitorResponse, "users", list[PerUserResourceUsage], REQUIRED, None, "Per-user resource usage details"),
]


@pytest.mark.parametrize(("model", "name", "annotation", "default", "ge", "description"), SEED_FIELDS)
def test_seed_field_matches_nat(model, name, annotation, default, ge, description):
    field = model.model_fields[name]
    assert field.annotation == annotation
    assert field.description == description
    if name in ("timestamp", "users"):
        assert field.default_factory is not None  # datetime.now and list, as in NAT
    else:
        assert field.default == default
    bounds = [m.ge for m in field.metadata if hasattr(m, "ge")]
    assert bounds == ([ge] if ge is not None else [])


def test_seed_models_have_exactly_the_seed_fields():
    declared = {}
    for model, name, *_ in SEED_FIELDS:
        declared.setdefault(model, []).append(name)
    for model, names in declared.items():
        assert list(model.model_fields) == names


def test_seed_defaults_and_factories():
    requests = PerUserRequestMetrics()
    assert requests.model_dump() == {
        "total_requests": 0,
        "active_requests": 0,
        "avg_latency_ms": 0.0,
        "error_count": 0,
    }
    assert PerUserMemoryMetrics().model_dump() == {
        "per_user_functions_count": 0,
        "per_user_function_groups_count": 0,
        "exit_stack_size": 0,
    }
    response = PerUserMonitorResponse(total_active_users=0)
    assert response.users == []
    assert response.timestamp.tzinfo is None  # NAT stamps naive local time
    with pytest.raises(ValidationError):
        PerUserMonitorResponse()  # total_active_users is required


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        (PerUserSessionMetrics, {"created_at": datetime.now(), "last_activity": datetime.now(), "is_active": False}),
        (PerUserRequestMetrics, {}),
        (PerUserMemoryMetrics, {}),
        (PerUserMonitorResponse, {}),
    ],
)
def test_seed_negative_counts_are_validation_errors(model, kwargs):
    ge_fields = [name for m, name, _, _, ge, _ in SEED_FIELDS if m is model and ge == 0]
    assert ge_fields
    for name in ge_fields:
        base = {**kwargs, "ref_count": 0} if model is PerUserSessionMetrics else dict(kwargs)
        if model is PerUserMonitorResponse:
            base["total_active_users"] = 0
        model(**base)  # zero is fine
        with pytest.raises(ValidationError) as info:
            model(**{**base, name: -1})
        assert info.value.errors()[0]["loc"] == (name,)


def test_seed_types_are_validated():
    with pytest.raises(ValidationError):
        PerUserRequestMetrics(total_requests="many")
    with pytest.raises(ValidationError):
        PerUserSessionMetrics(created_at="yesterday", last_activity=datetime.now(), ref_count=0, is_active=False)


async def _user(manager: SessionManager, user_id: str, latencies_ms: list[float], *, functions: int = 1) -> None:
    """Give ``user_id`` a builder with ``functions`` functions and requests with exact latencies."""
    async with manager.session(user_id) as builder:
        for n in range(functions):
            builder.add_function(f"f{n}", object())
    info = manager._per_user_builders[user_id]
    info.total_requests = len(latencies_ms)
    info.total_latency_ms = sum(latencies_ms)


async def test_collector_json_has_exactly_nat_shape(manager):
    await _user(manager, "alice", [1.0, 1.0, 2.0])
    info = manager._per_user_builders["alice"]
    info.builder.push_resource(_noop)  # two exit callbacks in all
    info.builder.push_resource(_noop)
    response = await PerUserMetricsCollector(manager).collect_all_metrics()
    doc = json.loads(response.model_dump_json())
    assert list(doc) == ["timestamp", "total_active_users", "users"]
    assert doc["total_active_users"] == 1
    (user,) = doc["users"]
    assert list(user) == ["user_id", "session", "requests", "memory"]
    assert list(user["session"]) == ["created_at", "last_activity", "ref_count", "is_active"]
    assert user["session"]["ref_count"] == 0 and user["session"]["is_active"] is False
    assert user["requests"] == {"total_requests": 3, "active_requests": 0, "avg_latency_ms": 1.33, "error_count": 0}
    assert user["memory"] == {"per_user_functions_count": 1, "per_user_function_groups_count": 0, "exit_stack_size": 2}
    datetime.fromisoformat(doc["timestamp"])
    datetime.fromisoformat(user["session"]["created_at"])
    # And what we emit is what NAT's model accepts back.
    assert PerUserMonitorResponse.model_validate_json(response.model_dump_json()) == response


async def test_collector_active_when_references_held(manager):
    entered, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with manager.session("bob"):
            entered.set()
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(2)]
    await entered.wait()
    for _ in range(10):  # let the second request enter too
        await asyncio.sleep(0)
    usage = await PerUserMetricsCollector(manager).collect_user_metrics("bob")
    assert usage is not None
    assert usage.session.ref_count == 2
    assert usage.session.is_active is True
    assert usage.requests.active_requests == 2
    release.set()
    await asyncio.gather(*tasks)
    usage = await PerUserMetricsCollector(manager).collect_user_metrics("bob")
    assert usage.session.is_active is False and usage.requests.active_requests == 0
    assert usage.requests.total_requests == 2


@pytest.mark.parametrize(
    ("total_latency", "requests", "expected"),
    [(0.0, 0, 0.0), (10.0, 0, 0.0), (4.0, 3, 1.33), (5.0, 3, 1.67), (1000.0, 8, 125.0), (0.005, 1, 0.01)],
)
def test_collector_average_latency_rounded_to_two_places(total_latency, requests, expected):
    info = _nat_info(total_requests=requests, total_latency_ms=total_latency)
    usage = PerUserMetricsCollector(_nat_manager({}))._build_user_metrics("u", info)
    assert usage.requests.avg_latency_ms == expected


def test_collector_exit_stack_counting():
    collector = PerUserMetricsCollector(_nat_manager({}))
    stack = AsyncExitStack()
    for _ in range(3):
        stack.push_async_callback(_noop)
    counted = collector._build_user_metrics("u", _nat_info(exit_stack=stack))
    assert counted.memory.exit_stack_size == 3
    no_stack = _nat_info()
    del no_stack.builder._exit_stack
    assert collector._build_user_metrics("u", no_stack).memory.exit_stack_size == 0
    opaque = _nat_info(exit_stack=object())  # an exit stack without _exit_callbacks
    assert collector._build_user_metrics("u", opaque).memory.exit_stack_size == 0
    none_stack = _nat_info(exit_stack=None)
    assert collector._build_user_metrics("u", none_stack).memory.exit_stack_size == 0


def test_collector_function_counts():
    info = _nat_info(functions={"a": 1, "b": 2, "c": 3}, groups={"g": 1})
    usage = PerUserMetricsCollector(_nat_manager({}))._build_user_metrics("u", info)
    assert usage.memory.per_user_functions_count == 3
    assert usage.memory.per_user_function_groups_count == 1


async def test_collector_skips_and_logs_a_failing_user(caplog):
    broken = _nat_info()
    del broken.builder._per_user_functions
    negative = _nat_info(error_count=-1)  # fails validation (ge=0)
    builders = {"good-1": _nat_info(), "broken-user": broken, "negative-user": negative, "good-2": _nat_info()}
    with caplog.at_level(logging.ERROR, logger="usermetrics.metrics"):
        response = await PerUserMetricsCollector(_nat_manager(builders)).collect_all_metrics()
    assert [u.user_id for u in response.users] == ["good-1", "good-2"]
    assert response.total_active_users == 2
    messages = [r.getMessage() for r in caplog.records]
    assert "Failed to collect metrics for user broken-user" in messages
    assert "Failed to collect metrics for user negative-user" in messages
    assert all(r.exc_info for r in caplog.records)


async def test_collector_holds_the_global_lock_while_collecting():
    manager = _nat_manager({})
    seen: list[bool] = []

    class Probe(SimpleNamespace):
        @property
        def total_requests(self) -> int:
            seen.append(manager._per_user_builders_lock.locked())
            return 0

    manager._per_user_builders["p"] = Probe(**vars(_nat_info()))
    collector = PerUserMetricsCollector(manager)
    await collector.collect_all_metrics()
    await collector.collect_user_metrics("p")
    assert seen and all(seen)


async def test_collector_waits_for_a_held_lock():
    manager = _nat_manager({"u": _nat_info()})
    collector = PerUserMetricsCollector(manager)
    await manager._per_user_builders_lock.acquire()
    task = asyncio.create_task(collector.collect_all_metrics())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    manager._per_user_builders_lock.release()
    assert (await task).total_active_users == 1


async def test_collector_reuses_unchanged_users_and_rebuilds_changed_ones(manager):
    for user in ("a", "b"):
        await _user(manager, user, [1.0])
    collector = PerUserMetricsCollector(manager)
    first = {u.user_id: u for u in (await collector.collect_all_metrics()).users}
    info = manager._per_user_builders["b"]
    info.total_requests, info.total_latency_ms = 2, 5.0
    info.builder.push_resource(_noop)
    second = {u.user_id: u for u in (await collector.collect_all_metrics()).users}
    assert second["a"] is first["a"]
    assert second["b"].requests.total_requests == 2 and second["b"].requests.avg_latency_ms == 2.5
    assert second["b"].memory.exit_stack_size == 1
    info.builder.add_function("late", object())
    third = {u.user_id: u for u in (await collector.collect_all_metrics()).users}
    assert third["b"].memory.per_user_functions_count == 2
    del manager._per_user_builders["a"]
    assert [u.user_id for u in (await collector.collect_all_metrics()).users] == ["b"]


async def test_collector_uses_an_overridden_build_every_time(manager, caplog):
    await _user(manager, "a", [1.0])
    collector = PerUserMetricsCollector(manager)
    await collector.collect_all_metrics()
    collector._build_user_metrics = lambda user_id, info: (_ for _ in ()).throw(RuntimeError("patched"))
    with caplog.at_level(logging.ERROR, logger="usermetrics.metrics"):
        response = await collector.collect_all_metrics()
    assert response.users == [] and "Failed to collect metrics for user a" in caplog.text


async def test_collector_unknown_user_is_none(manager):
    await _user(manager, "known", [])
    assert await PerUserMetricsCollector(manager).collect_user_metrics("unknown") is None
    assert (await PerUserMetricsCollector(manager).collect_user_metrics("known")).user_id == "known"


async def test_collector_counts_idle_users_too():
    builders = {"a": _nat_info(ref_count=0), "b": _nat_info(ref_count=1), "c": _nat_info(ref_count=0)}
    response = await PerUserMetricsCollector(_nat_manager(builders)).collect_all_metrics()
    assert response.total_active_users == 3  # NAT: len(users), idle ones included
    assert [u.session.is_active for u in response.users] == [False, True, False]


async def test_collector_on_a_nat_shaped_session_manager():
    """Duck typing: an object with NAT's private contract and NAT-style info objects (naive times)."""
    created = datetime(2026, 1, 2, 9, 0, 0)
    last = datetime(2026, 1, 2, 10, 29, 55)
    builders = {
        "9b0c1f3e-uuid": _nat_info(
            created_at=created,
            last_activity=last,
            ref_count=1,
            total_requests=42,
            error_count=2,
            total_latency_ms=52521.0,
            functions={"f1": 1, "f2": 2},
            groups={"g": 1},
        )
    }
    response = await PerUserMetricsCollector(_nat_manager(builders)).collect_all_metrics()
    assert response.timestamp.tzinfo is None
    (usage,) = response.users
    assert usage.model_dump() == {
        "user_id": "9b0c1f3e-uuid",
        "session": {"created_at": created, "last_activity": last, "ref_count": 1, "is_active": True},
        "requests": {"total_requests": 42, "active_requests": 1, "avg_latency_ms": 1250.5, "error_count": 2},
        "memory": {"per_user_functions_count": 2, "per_user_function_groups_count": 1, "exit_stack_size": 0},
    }


async def test_collector_on_runtime_session_manager_is_utc(manager):
    await _user(manager, "zed", [5.0])
    usage = await PerUserMetricsCollector(manager).collect_user_metrics("zed")
    assert usage.session.created_at.tzinfo is UTC
    assert isinstance(manager._per_user_builders["zed"], PerUserBuilderInfo)


async def _noop() -> None:
    return None


def _nat_manager(builders: dict) -> SimpleNamespace:
    return SimpleNamespace(_per_user_builders=builders, _per_user_builders_lock=asyncio.Lock())


def _nat_info(
    *,
    created_at: datetime | None = None,
    last_activity: datetime | None = None,
    ref_count: int = 0,
    total_requests: int = 0,
    error_count: int = 0,
    total_latency_ms: float = 0.0,
    functions: dict | None = None,
    groups: dict | None = None,
    exit_stack: object = "default",
) -> SimpleNamespace:
    builder = SimpleNamespace(
        _per_user_functions=functions if functions is not None else {},
        _per_user_function_groups=groups if groups is not None else {},
        _exit_stack=AsyncExitStack() if exit_stack == "default" else exit_stack,
    )
    now = datetime.now()
    return SimpleNamespace(
        builder=builder,
        created_at=created_at or now,
        last_activity=last_activity or now,
        ref_count=ref_count,
        total_requests=total_requests,
        error_count=error_count,
        total_latency_ms=total_latency_ms,
    )

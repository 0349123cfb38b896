"""Snapshots: merging by user id, the totals, what "active" means, and the one eviction rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.factories import BASE_TIME, record, usage
from usermetrics.merging import ids_of, merge, merge_usages
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.snapshot import Snapshot, SourceHealth, is_active, totals


def health(name: str, *, state: str = "ok", timeout: float | None = None) -> SourceHealth:
    return SourceHealth(name=name, kind="test", state=state, per_user_workflow_timeout=timeout)


def merged(*reports: tuple[str, list[PerUserResourceUsage]], timeouts: dict[str, float] | None = None) -> Snapshot:
    sources = [health(name, timeout=(timeouts or {}).get(name)) for name, _ in reports]
    return merge(reports, seq=1, timestamp=BASE_TIME, sources=sources)


def test_snapshot_merge_rules():
    early = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    late = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    one = record(
        "u",
        session={"created_at": early, "last_activity": early, "ref_count": 0, "is_active": False},
        requests={"total_requests": 3, "avg_latency_ms": 10.0, "error_count": 1, "active_requests": 0},
        memory={"per_user_functions_count": 2, "per_user_function_groups_count": 1, "exit_stack_size": 3},
    )
    two = record(
        "u",
        session={"created_at": late, "last_activity": late, "ref_count": 2, "is_active": True},
        requests={"total_requests": 1, "avg_latency_ms": 50.0, "error_count": 0, "active_requests": 2},
        memory={"per_user_functions_count": 2, "per_user_function_groups_count": 0, "exit_stack_size": 4},
    )
    # Two processes, and a duplicate within one response (NAT with an extra endpoint).
    snapshot = merged(("p1", [one]), ("p2", [two, record("solo")]))
    u = snapshot.by_id["u"]
    assert u.session.created_at == early and u.session.last_activity == late
    assert u.session.ref_count == 2 and u.session.is_active is True
    assert u.requests.total_requests == 4
    assert u.requests.avg_latency_ms == 20.0  # (3*10 + 1*50) / 4
    assert u.requests.error_count == 1 and u.requests.active_requests == 2
    assert u.memory.per_user_functions_count == 4
    assert u.memory.per_user_function_groups_count == 1
    assert u.memory.exit_stack_size == 7
    assert snapshot.origins["u"] == ("p1", "p2") and snapshot.origins["solo"] == ("p2",)
    assert [name for name, _ in snapshot.parts["u"]] == ["p1", "p2"]
    # The merged record is still a valid NAT document.
    assert PerUserResourceUsage.model_validate_json(u.model_dump_json()) == u


def test_snapshot_merge_duplicates_within_one_source_and_zero_requests():
    a = record("x", requests={"total_requests": 0, "avg_latency_ms": 0.0})
    both = merge_usages("x", [a, a])
    assert both.requests.avg_latency_ms == 0.0
    assert both.memory.exit_stack_size == 2


def test_snapshot_user_parts_and_staleness():
    snapshot = merge(
        [("one", [record("u"), record("solo")]), ("two", [record("u")])],
        seq=1,
        timestamp=BASE_TIME,
        sources=[health("one"), health("two", state="stale")],
    )
    assert [name for name, _ in snapshot.user_parts("u")] == ["one", "two"]
    assert [name for name, _ in snapshot.user_parts("solo")] == ["one"]
    assert snapshot.user_parts("nobody") == []
    assert snapshot.user_is_stale("u") and not snapshot.user_is_stale("solo")
    assert snapshot.stale_sources == ["two"]


def test_snapshot_eviction_is_the_latest_due_time_of_the_users_sources():
    idle_at = BASE_TIME
    snapshot = merged(
        ("one", [record("u"), record("solo")]),
        ("two", [record("u", session={"last_activity": idle_at + timedelta(minutes=5)})]),
        ("unknown", [record("mystery"), record("busy", session={"ref_count": 1, "is_active": True})]),
        timeouts={"one": 1800.0, "two": 600.0},
    )
    # Gone from both sources only when the later of the two evictions is due (one: 12:30, two: 12:15).
    assert snapshot.evicted_at("u") == idle_at + timedelta(minutes=30)
    assert snapshot.evicted_at("solo") == idle_at + timedelta(minutes=30)
    assert snapshot.evicted_at("mystery") is None  # the source's timeout is not known
    assert snapshot.evicted_at("busy") is None  # in flight: not idle
    assert snapshot.evicted_at("nobody") is None


def test_snapshot_active_is_read_off_ref_count_everywhere():
    # A source whose is_active disagrees with its ref_count is judged by the counter (NAT's own rule).
    liar = record("liar", session={"ref_count": 0, "is_active": True})
    busy = record("busy", session={"ref_count": 2, "is_active": True}, requests={"active_requests": 2})
    assert not is_active(liar) and is_active(busy)
    t = totals([liar, busy])
    assert (t.users, t.active, t.in_flight) == (2, 1, 2)


def test_snapshot_totals_weight_latency_by_requests():
    a = record("a", requests={"total_requests": 3, "avg_latency_ms": 10.0, "error_count": 1})
    b = record("b", requests={"total_requests": 1, "avg_latency_ms": 50.0}, memory={"exit_stack_size": 4})
    snapshot = merged(("s", [a, b]))
    t = snapshot.totals
    assert t.requests == 4 and t.errors == 1 and t.avg_latency_ms == 20.0 and t.exit_stack == 5
    assert snapshot.totals is t  # once per snapshot
    assert totals([]).avg_latency_ms == 0.0


def test_snapshot_json_all_is_the_nat_document():
    snapshot = merged(("s", [record("a"), record("b")]))
    assert snapshot.json_all is snapshot.json_all
    doc = snapshot.response()
    assert doc.total_active_users == 2 and [u.user_id for u in doc.users] == ["a", "b"]


def test_snapshot_ids_of_reads_only_records_that_are_not_the_same_objects():
    a, b, c = usage("a"), usage("b"), usage("c")
    assert ids_of([a, b, c], [], []) == ["a", "b", "c"]
    b2 = usage("x")  # another record in b's place (a source may reorder or replace users)
    assert ids_of([a, b2, c], [a, b, c], ["a", "b", "c"]) == ["a", "x", "c"]
    # The ids given for the unchanged places are trusted, not read again: that is the point.
    assert ids_of([a, b2, c], [a, b2, c], ["kept-a", "x", "kept-c"]) == ["kept-a", "x", "kept-c"]
    assert ids_of([c, a], [a, b, c], ["a", "b", "c"]) == ["c", "a"]  # another length: read

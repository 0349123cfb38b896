"""Merging: one user's records from several sources into one, and the ids of a report read once."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support.factories import merged, record, usage
from usermetrics.merging import ids_of, merge_usages
from usermetrics.metrics import PerUserResourceUsage


def test_merging_merge_rules():
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


def test_merging_merge_duplicates_within_one_source_and_zero_requests():
    a = record("x", requests={"total_requests": 0, "avg_latency_ms": 0.0})
    both = merge_usages("x", [a, a])
    assert both.requests.avg_latency_ms == 0.0
    assert both.memory.exit_stack_size == 2


def test_merging_ids_of_reads_only_records_that_are_not_the_same_objects():
    a, b, c = usage("a"), usage("b"), usage("c")
    assert ids_of([a, b, c], [], []) == ["a", "b", "c"]
    b2 = usage("x")  # another record in b's place (a source may reorder or replace users)
    assert ids_of([a, b2, c], [a, b, c], ["a", "b", "c"]) == ["a", "x", "c"]
    # The ids given for the unchanged places are trusted, not read again: that is the point.
    assert ids_of([a, b2, c], [a, b2, c], ["kept-a", "x", "kept-c"]) == ["kept-a", "x", "kept-c"]
    assert ids_of([c, a], [a, b, c], ["a", "b", "c"]) == ["c", "a"]  # another length: read

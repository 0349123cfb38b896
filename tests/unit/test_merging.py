"""Merging: one user's records from several sources into one, and the ids of a report read once."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from tests.support.factories import BASE_TIME, merged, record, usage
from usermetrics.merging import ids_of, merge, merge_usages
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


def test_merging_merge_of_many_sources_is_the_rule_whatever_overlaps():
    # Random reports of several sources, users shared between sources and repeated within one, against
    # the rule written plainly: users in order of first appearance, origins the distinct sources in
    # order, and a user reported more than once merged from every entry, in source order.
    rng = random.Random(7)
    for step in range(60):
        reports = []
        for k in range(rng.randint(1, 4)):
            ids = [f"u{rng.randrange(30 if step % 3 else 300)}" for _ in range(rng.randint(0, 25))]
            reports.append((f"s{k}", [usage(uid, requests=rng.randint(0, 9)) for uid in ids]))
        snapshot = merged(*reports)
        entries: dict[str, list[tuple[str, PerUserResourceUsage]]] = {}
        for name, users in reports:
            for u in users:
                entries.setdefault(u.user_id, []).append((name, u))
        assert list(snapshot.by_id) == list(entries) == [u.user_id for u in snapshot.users], step
        for uid, got in entries.items():
            assert snapshot.origins[uid] == tuple(dict.fromkeys(name for name, _ in got)), (step, uid)
            if len(got) == 1:
                assert snapshot.by_id[uid] is got[0][1] and uid not in snapshot.parts
            else:
                assert snapshot.parts[uid] == got
                assert snapshot.by_id[uid] == merge_usages(uid, [u for _, u in got])
        assert set(snapshot.parts) == {uid for uid, got in entries.items() if len(got) > 1}


def test_merging_merge_after_a_snapshot_of_the_same_users_updates_it_and_leaves_it_as_it_was():
    # Refresh after refresh of several sources: records change in place (most refreshes), users come
    # and go, one user turns up in two sources. Each merge given the snapshot before is the merge
    # without it, and the snapshot before is never changed (the recorder may still be reading it).
    rng = random.Random(11)
    reports = [(f"s{k}", [usage(f"s{k}-u{i}", requests=i) for i in range(20)]) for k in range(3)]
    previous = None
    for step in range(50):
        reports = [(name, list(users)) for name, users in reports]
        action = step % 5
        for _, users in reports:
            for i in rng.sample(range(len(users)), 3):  # a few records change
                users[i] = usage(users[i].user_id, requests=rng.randrange(1000))
        if action == 3:  # a user leaves one source and another arrives
            users = reports[rng.randrange(3)][1]
            users.pop(rng.randrange(len(users)))
            users.append(usage(f"new{step}"))
        elif action == 4 and step % 10 == 4:  # a user is reported by two sources for a while
            reports[1][1].append(usage(reports[0][1][0].user_id, requests=5))
        ids = [[u.user_id for u in users] for _, users in reports]
        before = (dict(previous.by_id), dict(previous.origins)) if previous is not None else None
        snapshot = merge(reports, ids=ids, seq=step, timestamp=BASE_TIME, sources=[], previous=previous)
        fresh = merged(*reports)
        assert list(snapshot.by_id.items()) == list(fresh.by_id.items()), step
        assert snapshot.users == fresh.users and snapshot.origins == fresh.origins, step
        assert snapshot.parts == fresh.parts, step
        if previous is not None:
            assert (previous.by_id, previous.origins) == before, step
            if action in (0, 1, 2) and not previous.parts:  # the same users: the snapshot before updated
                assert snapshot.origins is previous.origins, step
        previous = snapshot

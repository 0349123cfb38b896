"""Snapshots: a user's parts and staleness, the totals, what "active" means, and the one eviction rule."""

from __future__ import annotations

import math
import random
from datetime import timedelta

from tests.support.factories import BASE_TIME, health, merged, record
from usermetrics.merging import merge
from usermetrics.packing import BoardCache, board_build
from usermetrics.snapshot import is_active, totals


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


def test_snapshot_evictions_column_is_the_one_rule_for_every_user_of_several_sources():
    # The column worked out for all users at once is evicted_at, user by user: sources with
    # different timeouts and one unknown, users merged across sources or repeated within one, in flight.
    rng = random.Random(3)
    for step in range(40):
        reports = []
        for k in range(rng.randint(1, 4)):
            users = []
            for _ in range(rng.randint(0, 12)):
                busy = rng.random() < 0.2
                users.append(
                    record(
                        f"u{rng.randrange(25)}",
                        session={
                            "last_activity": BASE_TIME + timedelta(seconds=rng.randrange(600)),
                            "ref_count": int(busy),
                            "is_active": busy,
                        },
                    )
                )
            reports.append((f"s{k}", users))
        timeouts = {f"s{k}": rng.choice([None, 600.0, 1800.0]) for k in range(len(reports))}
        snapshot = merged(*reports, timeouts={name: t for name, t in timeouts.items() if t is not None})
        board = board_build(snapshot, producer="p", published_at=BASE_TIME, cache=BoardCache())
        for i, uid in enumerate(board.ids):
            expected = snapshot.evicted_at(uid)
            got = board.columns["evicted_at"][i]
            assert math.isnan(got) if expected is None else got == expected.timestamp(), (step, uid)

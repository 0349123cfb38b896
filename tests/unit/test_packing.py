"""Packing: a board built from a snapshot, each record serialized once and reused while it does not change."""

from __future__ import annotations

import random

import pytest
from usermetrics_nat.histogram import BUCKETS

from tests.support.factories import BASE_TIME, record, sample_users, usage
from usermetrics import packing
from usermetrics.board import EXTRAS_COLUMNS, EXTRAS_DETAIL_COLUMNS, NO_PERCENTILE
from usermetrics.board_wire import board_decode, board_encode
from usermetrics.extras import Extras
from usermetrics.merging import merge
from usermetrics.packing import BoardCache, board_build
from usermetrics.selection import board_order
from usermetrics.snapshot import SourceHealth, totals


def test_packing_fragment_cache_serializes_only_changed_records():
    users = sample_users()
    cache = BoardCache()
    sources = [SourceHealth(name="s", kind="t")]

    def build(records):
        snapshot = merge([("s", records)], seq=1, timestamp=BASE_TIME, sources=sources)
        return board_build(snapshot, producer="p", published_at=BASE_TIME, cache=cache)

    build(users)
    assert (cache.hits, cache.misses) == (0, 12)
    changed = [*users[:11], record("u11", requests={"total_requests": 99})]
    board = build(changed)
    assert (cache.hits, cache.misses) == (11, 13)  # the same objects are reused, one new record serialized
    assert board.user("u11").requests.total_requests == 99


def test_packing_cache_packs_like_a_fresh_board_through_any_changes():
    """Changed records, users coming and going, a new order: every board reads as one packed afresh."""
    rng = random.Random(7)
    users = sample_users()
    cache = BoardCache()
    sources = [SourceHealth(name="s", kind="t", per_user_workflow_timeout=600)]
    for step in range(40):
        action = step % 4
        if action == 0:  # a few records change
            for i in rng.sample(range(len(users)), 3):
                users[i] = usage(users[i].user_id, requests=rng.randrange(1000), active=rng.randrange(2))
        elif action == 1:  # one leaves, one arrives
            users.pop(rng.randrange(len(users)))
            users.append(usage(f"n{step}", requests=step))
        elif action == 2:  # the same users in another order
            rng.shuffle(users)
        snapshot = merge([("s", list(users))], seq=step, timestamp=BASE_TIME, sources=sources)
        board = board_build(snapshot, producer="p", published_at=BASE_TIME, cache=cache)
        fresh = board_build(snapshot, producer="p", published_at=BASE_TIME, cache=BoardCache())
        assert board.body == fresh.body and list(board.offsets) == list(fresh.offsets)
        for name in fresh.columns:
            assert list(board.columns[name]) == pytest.approx(list(fresh.columns[name]), nan_ok=True), name
        assert board.totals == fresh.totals == totals(users)
        assert [board.usage_at(i) for i in range(len(board))] == users
    assert cache.hits > cache.misses  # most records were packed once


def _extras(rng: random.Random, workers: tuple[str, ...]) -> Extras:
    latency = [0] * BUCKETS
    for _ in range(rng.randrange(6)):
        latency[rng.randrange(BUCKETS)] += rng.randrange(1, 50)
    models = rng.sample(["model-a", "model-b", f"model-{rng.randrange(5)}x"], rng.randrange(3))
    return Extras(
        llm=tuple((m, tuple(rng.randrange(2**40) for _ in range(6))) for m in models),
        tool_calls=rng.randrange(9),
        latency=tuple(latency),
        queued=rng.randrange(3),
        max_concurrency=8,
        wait_ms=rng.random() * 100,
        run_ms=rng.random() * 1000,
        workers=workers,
    )


@pytest.mark.parametrize("worker_sets_max", [4096, 3])
def test_packing_extras_pack_like_a_fresh_board_and_read_back_exactly(monkeypatch, worker_sets_max):
    """Extras changing, users with and without them coming and going, a new order, workers coming and going:
    every board's extras columns, histograms and documents read as one packed afresh, also after the wire."""
    monkeypatch.setattr(packing, "WORKER_SETS_MAX", worker_sets_max)
    rng = random.Random(11)
    users = sample_users()
    labels = [("w:1",), ("w:2",), ("w:1", "w:2"), ("w:3",)]
    extras = {u.user_id: _extras(rng, rng.choice(labels)) for u in users[::2]}  # half of them have extras
    cache = BoardCache()
    sources = [SourceHealth(name="s", kind="t")]
    for step in range(40):
        action = step % 4
        if action == 0:  # a few users' extras change (new objects), the others stay the very same
            for user_id in rng.sample(sorted(extras), 2):
                extras[user_id] = _extras(rng, rng.choice(labels))
        elif action == 1:  # one leaves, one arrives with extras
            gone = users.pop(rng.randrange(len(users)))
            extras.pop(gone.user_id, None)
            users.append(usage(f"n{step}", requests=step))
            extras[f"n{step}"] = _extras(rng, (f"w:{step}",))  # a worker set never seen before
        elif action == 2:
            rng.shuffle(users)
        snapshot = merge([("s", list(users))], seq=step, timestamp=BASE_TIME, sources=sources, extras=dict(extras))
        board = board_build(snapshot, producer="p", published_at=BASE_TIME, cache=cache)
        fresh = board_build(snapshot, producer="p", published_at=BASE_TIME, cache=BoardCache())
        for name in (*EXTRAS_COLUMNS, *EXTRAS_DETAIL_COLUMNS):
            if name != "worker_set":  # numbered in the order sets were first seen: compare the sets instead
                assert list(board.columns[name]) == list(fresh.columns[name]), name
        wire = board_decode(board_encode(board))
        for user in users:
            x = extras.get(user.user_id)
            expected = x.as_dict() if x is not None else None
            assert board.extras_of(user.user_id) == expected == wire.extras_of(user.user_id), (step, user.user_id)
        sort = board.columns["p95_ms"]
        for i, user in enumerate(board.ids):
            p95 = extras[user].percentiles[1] if user in extras else None
            assert sort[i] == (NO_PERCENTILE if p95 is None else p95)


def test_packing_extras_of_a_board_without_any():
    users = sample_users()
    snapshot = merge([("s", users)], seq=1, timestamp=BASE_TIME, sources=[SourceHealth(name="s", kind="t")])
    board = board_decode(board_encode(board_build(snapshot, producer="p", published_at=BASE_TIME, cache=BoardCache())))
    assert board.extras_of(users[0].user_id) is None
    assert list(board.columns["queued"]) == [0] * len(users)
    assert set(board.columns["p50_ms"]) == {NO_PERCENTILE}


def test_packing_several_sources_merged_on_the_snapshot_before_pack_like_a_fresh_board():
    # The refresh as the monitor runs it: each merge given the snapshot before (most refreshes the
    # same users: origins carried), users leaving and arriving now and then.
    rng = random.Random(5)
    reports = [(f"s{k}", [usage(f"s{k}-u{i}", requests=i) for i in range(15)]) for k in range(3)]
    sources = [SourceHealth(name=name, kind="t", per_user_workflow_timeout=600) for name, _ in reports]
    cache, previous = BoardCache(), None
    for step in range(30):
        reports = [(name, list(users)) for name, users in reports]
        for _, users in reports:
            i = rng.randrange(len(users))
            users[i] = usage(users[i].user_id, requests=rng.randrange(1000), active=rng.randrange(2))
        if step % 7 == 6:
            reports[rng.randrange(3)][1].pop(0)
            reports[rng.randrange(3)][1].append(usage(f"new{step}"))
        ids = [[u.user_id for u in users] for _, users in reports]
        snapshot = merge(reports, ids=ids, seq=step, timestamp=BASE_TIME, sources=sources, previous=previous)
        board = board_build(snapshot, producer="p", published_at=BASE_TIME, cache=cache)
        fresh = board_build(merge(reports, seq=step, timestamp=BASE_TIME, sources=sources), producer="p",
                            published_at=BASE_TIME, cache=BoardCache())  # fmt: skip
        assert board.body == fresh.body and board.ids == fresh.ids
        for name in fresh.columns:
            assert list(board.columns[name]) == pytest.approx(list(fresh.columns[name]), nan_ok=True), (step, name)
        previous = snapshot


def test_packing_a_build_that_failed_after_packing_carries_nothing_of_other_users_to_the_next(monkeypatch):
    # A build can fail after its users were packed (out of memory at a million users, say): the next
    # board, of the users of that failed one, must not take the index and orders of the board before
    # it, which had other users.
    cache = BoardCache()
    sources = [SourceHealth(name="s", kind="t")]

    def build(users):
        snapshot = merge([("s", users)], seq=1, timestamp=BASE_TIME, sources=sources)
        return board_build(snapshot, producer="p", published_at=BASE_TIME, cache=cache)

    first = build([usage("a"), usage("b")])
    first.index  # noqa: B018 (worked out, as every face's first page does)
    board_order(first, "user_id")
    others = [usage("c"), usage("a"), usage("b")]
    with monkeypatch.context() as patched:
        patched.setattr(BoardCache, "pack_extras", lambda *_: (_ for _ in ()).throw(MemoryError()))
        with pytest.raises(MemoryError):
            build(others)
    board = build(others)
    assert board.index == {"c": 0, "a": 1, "b": 2}
    assert board_order(board, "user_id") == [1, 2, 0]

"""Packing: a board built from a snapshot, each record serialized once and reused while it does not change."""

from __future__ import annotations

import random

import pytest

from tests.support.factories import BASE_TIME, record, sample_users, usage
from usermetrics.merging import merge
from usermetrics.packing import BoardCache, board_build
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

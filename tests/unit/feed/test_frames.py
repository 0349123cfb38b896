"""Feed frames: NAT documents with the feed's keys, never over the byte budget, one user's frame in words."""

from __future__ import annotations

import json

from tests.support.factories import board_of, extras_of, record, sample_users
from usermetrics.feed.frames import list_frame, size, user_frame
from usermetrics.metrics import PerUserMonitorResponse
from usermetrics.selection import ViewSpec


def snap(users, *, timeout: float | None = None):
    return board_of(users, seq=7, timeout=timeout)


def test_feed_frames_list_frame_is_a_monitor_response_with_the_view():
    snapshot = snap(sample_users())
    text, result = list_frame(snapshot, ViewSpec(page_size=5, sort="user_id"), budget=512 * 1024, labels={"u01": "One"})
    doc = json.loads(text)
    assert PerUserMonitorResponse.model_validate_json(text).total_active_users == 12
    assert [u["user_id"] for u in doc["users"]] == ["u00", "u01", "u02", "u03", "u04"]
    assert (doc["type"], doc["seq"], doc["view"]["pages"], doc["view"]["clamped"]) == ("snapshot", 7, 3, False)
    assert doc["labels"] == {"u01": "One"} and doc["summary"]["users"] == 12 and doc["stale"] == []
    assert result.users == [0, 1, 2, 3, 4]  # board positions


def test_feed_frames_shrink_to_the_budget_keeping_the_first_user():
    users = [record(f"user-{i:04d}-" + "x" * 200) for i in range(200)]
    snapshot = snap(users)
    spec = ViewSpec(page=2, page_size=100, sort="user_id")
    text, result = list_frame(snapshot, spec, budget=20_000)
    doc = json.loads(text)
    assert size(text) <= 20_000
    assert doc["view"]["clamped"] and doc["view"]["requested_page_size"] == 100
    # The smaller page still holds the first user of the page asked for, so the client does not jump.
    assert any(u["user_id"].startswith("user-0100") for u in doc["users"])
    assert len(result.users) < 100


def test_feed_frames_metadata_alone_when_not_even_one_user_fits():
    snapshot = snap([record("x" * 5000)])
    text, _ = list_frame(snapshot, ViewSpec(), budget=2_000)
    doc = json.loads(text)
    assert size(text) <= 2_000 and doc["users"] == [] and doc["view"]["clamped"]


def test_feed_frames_user_frame_carries_the_lifecycle_in_words():
    snapshot = snap([record("ada")], timeout=1800)  # idle since the snapshot's own instant
    doc = json.loads(user_frame(snapshot, "ada", budget=512 * 1024, stuck_after=300, label="Ada"))
    assert [u["user_id"] for u in doc["users"]] == ["ada"] and doc["view"]["found"]
    assert doc["label"] == "Ada" and doc["origins"] == ["s"] and doc["parts"] == []
    assert doc["lifecycle"] == "idle for 0 s, evicted in about 30 min"
    assert doc["evicted_at"] == "2026-01-01T12:30:00+00:00"
    gone = json.loads(user_frame(snapshot, "nobody", budget=512 * 1024, stuck_after=300))
    assert gone["users"] == [] and not gone["view"]["found"] and gone["lifecycle"] is None


def test_feed_frames_eviction_under_a_minute_in_the_same_words_as_the_pages():
    snapshot = snap([record("ada")], timeout=45)  # idle now, evicted in 45 s
    doc = json.loads(user_frame(snapshot, "ada", budget=512 * 1024, stuck_after=300))
    # One wording rule (humanize.eviction_words) for pages, flags and frames: never "in 0 min".
    assert doc["lifecycle"] == "idle for 0 s, evicted in under a minute"


def test_feed_frames_list_frame_carries_the_page_users_figures_only_for_companion_users():
    board = board_of(
        [record("ada"), record("bob"), record("cy")],
        extras={"ada": extras_of([20.0] * 10, queued=3, max_concurrency=8), "cy": extras_of([5.0])},
    )
    text, _ = list_frame(board, ViewSpec(page_size=2, sort="user_id"), budget=512 * 1024)
    doc = json.loads(text)
    assert [u["user_id"] for u in doc["users"]] == ["ada", "bob"]
    assert set(doc["figures"]) == {"ada"}  # bob has no companion; cy is not on this page
    assert doc["figures"]["ada"]["queued"] == 3 and 15 < doc["figures"]["ada"]["p95_ms"] <= 20
    PerUserMonitorResponse.model_validate_json(text)  # still NAT's document


def test_feed_frames_figures_count_in_the_byte_budget():
    users = [record(f"user-{i:03d}") for i in range(100)]
    extras = {u.user_id: extras_of([float(i) for i in range(1, 200)], queued=1) for u in users}
    plain, _ = list_frame(board_of(users), ViewSpec(page_size=100), budget=10**7)
    budget = size(plain) + 100  # enough for the page without figures, not with them
    text, result = list_frame(board_of(users, extras=extras), ViewSpec(page_size=100), budget=budget)
    assert size(text) <= budget and len(result.users) < 100
    assert set(json.loads(text)["figures"]) == {board_of(users).ids[i] for i in result.users}


def test_feed_frames_user_frame_carries_the_extras_or_null():
    board = board_of(
        [record("ada"), record("bob")],
        extras={"ada": extras_of([12.0, 12.0], queued=1, max_concurrency=4, wait_ms=1.0, run_ms=3.0, workers=("h:7",))},
    )
    doc = json.loads(user_frame(board, "ada", budget=512 * 1024, stuck_after=300))
    extras = doc["extras"]
    assert extras["latency"]["requests"] == 2
    assert extras["latency"]["buckets"] == [{"gt_ms": 10, "le_ms": 15, "count": 2}]
    assert extras["queue"] == {"queued": 1, "max_concurrency": 4, "wait_ms": 1.0, "run_ms": 3.0, "wait_share": 0.25}
    assert extras["workers"] == ["h:7"]
    assert json.loads(user_frame(board, "bob", budget=512 * 1024, stuck_after=300))["extras"] is None
    assert json.loads(user_frame(board, "gone", budget=512 * 1024, stuck_after=300))["extras"] is None

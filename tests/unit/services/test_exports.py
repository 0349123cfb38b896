"""Export rows, asked of the service directly: the list page's view every page, ended users, one user's samples."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async

from tests.support.history_helpers import recorder, snapshot, usage
from usermetrics.clock import utcnow
from usermetrics.selection import ViewSpec
from usermetrics.services import exports
from usermetrics.services.exports import HISTORY_COLUMNS, USER_COLUMNS, user_history_export, users_export

pytestmark = pytest.mark.django_db(transaction=True)


async def rows_of(export: exports.Export) -> list[dict[str, object]]:
    """Every row an export streams, by column name."""
    return [dict(zip(export.columns, row, strict=True)) async for row in export.rows]


async def test_exports_users_are_the_pages_view_every_page_of_it(recorded_flags):
    export = await users_export(spec=ViewSpec(sort="user_id", page_size=1, page=2))
    assert export.columns == USER_COLUMNS and export.filename == "users"
    rows = await rows_of(export)
    assert [r["user_id"] for r in rows] == ["alice", "bob", "dave"]  # every page, in the view's order
    by_id = {r["user_id"]: r for r in rows}
    assert [by_id[u]["state"] for u in ("alice", "bob", "dave")] == ["idle", "idle", "active"]  # the ref_count rule
    assert {r["sources"] for r in rows} == {"demo"} and all(r["ended_at"] is None for r in rows)
    assert by_id["alice"]["total_requests"] == 60 and by_id["alice"]["window_latency_ms"] == 100.0
    assert by_id["bob"]["error_rate"] == 0.5 and by_id["bob"]["flags"] == "erroring"
    assert by_id["dave"]["flags"] == "stuck" and by_id["dave"]["in_flight"] == 1
    assert {r["window"] for r in rows} == {"1h"} and by_id["dave"]["requests_per_min"] == 0.0


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"sort": "-total_requests"}, ["alice", "bob", "dave"]),
        ({"state": "erroring"}, ["bob"]),
        ({"state": "active"}, ["dave"]),
        ({"q": "A", "sort": "-user_id"}, ["dave", "alice"]),
        ({"q": "zed"}, []),
    ],
)
async def test_exports_users_filter_search_and_sort_as_the_list_does(recorded_flags, spec, expected):
    rows = await rows_of(await users_export(spec=ViewSpec(**spec)))
    assert [r["user_id"] for r in rows] == expected


async def test_exports_users_window_is_the_views_window(recorded_flags):
    rows = await rows_of(await users_export(spec=ViewSpec(sort="user_id", window="5m")))
    assert {r["window"] for r in rows} == {"5m"} and rows[0]["requests_per_min"] > 0


async def test_exports_users_stream_a_chunk_at_a_time(recorded_flags, monkeypatch):
    asked: list[list[str]] = []
    real = exports.window_stats

    def window_stats(**kwargs: object) -> dict:
        asked.append(list(kwargs["user_ids"]))
        return real(**kwargs)

    monkeypatch.setattr(exports, "CHUNK", 2)
    monkeypatch.setattr(exports, "window_stats", window_stats)
    rows = await rows_of(await users_export(spec=ViewSpec(sort="user_id")))
    assert [r["user_id"] for r in rows] == ["alice", "bob", "dave"]
    assert asked == [["alice", "bob"], ["dave"]]  # each chunk's users read when the chunk is streamed, not before


async def test_exports_ended_users_are_the_ended_list_with_their_last_values(recorded_flags):
    export = await users_export(spec=ViewSpec(state="ended"))
    assert export.filename == "users-ended"
    [carol] = await rows_of(export)
    assert (carol["user_id"], carol["state"], carol["sources"]) == ("carol", "ended", "demo")
    assert carol["total_requests"] == 3  # its last values
    assert carol["ended_at"] is not None and carol["window"] == "" and carol["requests_per_min"] is None
    assert carol["flags"] == ""
    assert await rows_of(await users_export(spec=ViewSpec(state="ended", q="zed"))) == []


async def test_exports_without_the_history_have_no_rates_and_no_ended_users(recorded_flags, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "HISTORY": {"ENABLED": False}}
    rows = await rows_of(await users_export(spec=ViewSpec(sort="user_id")))
    assert [r["user_id"] for r in rows] == ["alice", "bob", "dave"]
    assert all(r["window"] == "" and r["requests_per_min"] is None and r["error_rate"] is None for r in rows)
    assert await rows_of(await users_export(spec=ViewSpec(state="ended"))) == []


@pytest.fixture
async def samples():
    """Three samples of "a/b c": two hours, thirty minutes and ten minutes ago (the last without requests)."""
    now = utcnow()
    rec = recorder()
    for ago, user in [
        (timedelta(hours=2), usage("a/b c", total=4, avg=10.0)),
        (timedelta(minutes=30), usage("a/b c", total=6, errors=1, avg=20.0)),
        (timedelta(minutes=10), usage("a/b c", total=6, errors=1, avg=20.0, stack=2)),  # only the stack moved
    ]:
        await sync_to_async(rec.record)(snapshot(now - ago, [user]))


@pytest.mark.parametrize(("window", "count"), [(None, 3), ("24h", 3), ("bogus", 3), ("1h", 2), ("15m", 1)])
async def test_exports_user_history_is_the_windows_raw_samples_oldest_first(samples, window, count):
    export = user_history_export(user_id="a/b c", window=window)
    assert export.columns == HISTORY_COLUMNS and export.filename == "history-a_b_c"
    rows = await rows_of(export)
    assert len(rows) == count  # a window it does not know is the default, 24 hours
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    # The first sample is the baseline the later ones count from.
    expected = [(4, 0, 0), (6, 2, 0), (6, 0, 2)][-count:]
    assert [(r["total_requests"], r["requests"], r["exit_stack"]) for r in rows] == expected


async def test_exports_user_history_latency_is_the_samples_own(samples):
    rows = await rows_of(user_history_export(user_id="a/b c", window="24h"))
    # The baseline has no requests of its own; then (avg x count) moved by 20 x 6 - 10 x 4 = 80 over 2 requests.
    assert [r["window_latency_ms"] for r in rows] == [None, 40.0, None]
    assert [r["errors"] for r in rows] == [0, 1, 0] and {r["life"] for r in rows} == {1}
    assert await rows_of(user_history_export(user_id="nobody", window="24h")) == []


@pytest.mark.parametrize(
    ("user_id", "filename"),
    [
        ("alice@example.com", "history-alice_example.com"),
        ("a/b c", "history-a_b_c"),
        ("../..", "history-.._.."),
        ("", "history-user"),
        ("é", "history-_"),
        ("x" * 200, "history-" + "x" * 80),
    ],
)
def test_exports_user_history_file_names_are_safe(user_id, filename):
    assert user_history_export(user_id=user_id, window=None).filename == filename

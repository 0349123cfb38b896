"""What the pages show, asked of the service directly: the list's page and its windows, one user, "no such user"."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, ProgrammingError

from tests.support.factories import BASE_TIME, health, usage
from usermetrics import services
from usermetrics.board import board_empty
from usermetrics.humanize import HISTORY_UNAVAILABLE
from usermetrics.merging import merge
from usermetrics.packing import BoardCache, board_build
from usermetrics.selection import ViewSpec
from usermetrics.services import pages
from usermetrics.services.pages import history_or_none, list_page_get, rows_window, user_lookup, user_window

pytestmark = pytest.mark.django_db(transaction=True)

GONE = OperationalError('connection failed: FATAL: database "um" is not currently accepting connections')


def ids(page: pages.ListPage) -> list[str]:
    """The user ids of a list page's rows, in order."""
    return [row.usage.user_id for row in page.rows]


def flag_names(flags: list) -> list[str]:
    """The names of a user's flags."""
    return [flag.name for flag in flags]


def history_off(settings) -> None:
    """USERMETRICS["HISTORY"]["ENABLED"] off for the test."""
    settings.USERMETRICS = {**settings.USERMETRICS, "HISTORY": {"ENABLED": False}}


def test_pages_history_or_none_turns_an_outage_and_only_an_outage_into_none(caplog):
    assert history_or_none(lambda a, *, b: a + b, 1, b=2) == 3

    def gone() -> int:
        raise GONE

    def interface() -> int:
        raise InterfaceError("connection already closed")

    with caplog.at_level(logging.WARNING, logger=pages.__name__):
        assert history_or_none(gone) is None
        assert history_or_none(interface) is None
    assert [r.getMessage().startswith(f"gone: {HISTORY_UNAVAILABLE}") for r in caplog.records] == [True, False]

    def bug() -> int:
        raise ProgrammingError('relation "usermetrics_userlife" does not exist')

    with pytest.raises(ProgrammingError):  # not an outage: a bug stays a 500
        history_or_none(bug)
    with pytest.raises(ZeroDivisionError):
        history_or_none(lambda: 1 / 0)


async def test_pages_user_lookup_finds_live_users_and_ended_ones_the_history_keeps(recorded_flags, settings):
    board = services.board_get()
    alice = await sync_to_async(user_lookup)(board, "alice")
    assert alice is not None and alice.ended is None and alice.origins == ("demo",)
    assert alice.usage == board.user("alice") and alice.board is board
    carol = await sync_to_async(user_lookup)(board, "carol")  # ended a minute ago: its last values
    assert carol is not None and carol.ended is not None and carol.ended.user_id == "carol"
    assert carol.usage.requests.total_requests == 3 and carol.usage.requests.error_count == 1
    assert carol.origins == ("demo",)
    assert await sync_to_async(user_lookup)(board, "nobody") is None
    history_off(settings)  # without the history an ended user is not found; a live one still is
    assert await sync_to_async(user_lookup)(board, "carol") is None
    assert (await sync_to_async(user_lookup)(board, "alice")).usage == board.user("alice")


async def test_pages_user_lookup_in_an_outage_is_neither_found_nor_not_found(recorded_flags, monkeypatch):
    board = services.board_get()

    def gone(**kwargs: object) -> None:
        raise GONE

    monkeypatch.setattr(pages, "ended_user_get", gone)
    with pytest.raises(OperationalError):  # the page or the API says the database cannot be reached (503)
        await sync_to_async(user_lookup)(board, "carol")
    assert (await sync_to_async(user_lookup)(board, "alice")).ended is None  # a live user needs no database

    def broken(**kwargs: object) -> None:
        raise ProgrammingError("no such table: usermetrics_userlife")

    monkeypatch.setattr(pages, "ended_user_get", broken)
    assert await sync_to_async(user_lookup)(board, "carol") is None  # a store that cannot say: not ended


async def test_pages_list_page_is_the_views_page_and_each_rows_window(recorded_flags):
    board = services.board_get()
    first = await sync_to_async(list_page_get)(board, spec=ViewSpec(sort="user_id", page_size=2))
    assert ids(first) == ["alice", "bob"] and (first.result.matched, first.result.pages) == (3, 2)
    assert first.history_enabled and not first.history_unavailable and first.empty_reason is None
    assert first.summary.as_dict()["users"] == 3 and first.span is not None and first.span.seconds > 0
    alice, bob = (row.window for row in first.rows)
    assert alice.stats.requests == 60 and alice.stats.latency_ms == 100.0 and len(alice.sparkline) == 30
    assert bob.stats.error_rate == 0.5 and "erroring" in flag_names(bob.flags)
    assert all(row.ended is None for row in first.rows)
    # A page past the end is the last page, and the page says so.
    last = await sync_to_async(list_page_get)(board, spec=ViewSpec(sort="user_id", page_size=2, page=9))
    assert last.spec.page == 2 and last.result.spec.page == 2 and ids(last) == ["dave"]
    assert "stuck" in flag_names(last.rows[0].window.flags)
    # The window the rates are read over is the view's own.
    day = await sync_to_async(list_page_get)(board, spec=ViewSpec(sort="user_id", window="24h"))
    # The history is three minutes old: a day's rates are divided by those minutes, as the hour's are.
    assert day.spec.window == "24h" and day.rows[0].window.stats.requests == 60
    assert day.rows[0].window.stats.seconds == pytest.approx(alice.stats.seconds, abs=30)


async def test_pages_list_page_of_ended_users_comes_from_the_history(recorded_flags):
    board = services.board_get()
    page = await sync_to_async(list_page_get)(board, spec=ViewSpec(state="ended"))
    assert ids(page) == ["carol"] and page.rows[0].ended is not None and page.rows[0].ended.user_id == "carol"
    assert page.rows[0].usage.requests.total_requests == 3  # its last values
    window = page.rows[0].window
    assert window is not None and window.stats.seconds > 0 and window.flags == []  # its rates, no flags
    nobody = await sync_to_async(list_page_get)(board, spec=ViewSpec(state="ended", q="zed"))
    assert nobody.rows == [] and nobody.empty_reason.startswith("No user ended within the retention period")


async def test_pages_list_page_without_the_history_is_the_live_part_only(recorded_flags, settings):
    board = services.board_get()
    history_off(settings)
    page = await sync_to_async(list_page_get)(board, spec=ViewSpec(sort="user_id"))
    assert ids(page) == ["alice", "bob", "dave"] and all(row.window is None for row in page.rows)
    assert not page.history_enabled and not page.history_unavailable and page.span is None
    ended = await sync_to_async(list_page_get)(board, spec=ViewSpec(state="ended"))
    assert ended.rows == [] and ended.empty_reason.startswith("No user ended within the retention period")


async def test_pages_list_page_while_the_history_is_unreachable_shows_the_live_part(recorded_flags, monkeypatch):
    board = services.board_get()

    def gone(**kwargs: object) -> None:
        raise GONE

    monkeypatch.setattr(pages, "window_stats", gone)
    page = await sync_to_async(list_page_get)(board, spec=ViewSpec(sort="user_id"))
    assert ids(page) == ["alice", "bob", "dave"] and all(row.window is None for row in page.rows)
    assert page.history_unavailable and not page.history_enabled and page.span is None
    assert page.empty_reason is None  # rows to show: nothing to explain
    monkeypatch.setattr(pages, "ended_select", gone)
    ended = await sync_to_async(list_page_get)(board, spec=ViewSpec(state="ended"))
    assert ended.rows == [] and ended.history_unavailable and ended.empty_reason == HISTORY_UNAVAILABLE


def _board(users: list, *, states: tuple[str, ...] = ("ok",), seq: int = 1):
    """A board of ``users`` (all from the first source) with sources in ``states``."""
    sources = [health(f"s{i}", state=state) for i, state in enumerate(states)]
    reports = [(source.name, users if i == 0 else []) for i, source in enumerate(sources)]
    snapshot = merge(reports, seq=seq, timestamp=BASE_TIME, sources=sources)
    return board_build(snapshot, producer="p", published_at=BASE_TIME, cache=BoardCache())


@pytest.mark.parametrize(
    ("board", "spec", "publishing", "reason"),
    [
        (lambda: board_empty(BASE_TIME), {}, False, "No producer is publishing yet, so there are no users to show."),
        (lambda: board_empty(BASE_TIME), {}, True, "No sources are configured, so there are no users to show."),
        (lambda: _board([], states=()), {}, True, "No sources are configured, so there are no users to show."),
        (
            lambda: _board([], states=("down", "stale")),
            {},
            True,
            "Every source is down: there is no data to show. See the sources above for their errors.",
        ),
        (lambda: _board([], states=("down", "ok")), {}, True, "No users yet: no source reports a per-user workflow."),
        (lambda: _board([usage("ada")]), {"q": "zed"}, True, "No user matches this search and filter."),
        (lambda: _board([usage("ada")]), {}, True, None),
    ],
)
def test_pages_list_page_says_why_its_table_is_empty(board, spec, publishing, reason):
    page = list_page_get(board(), spec=ViewSpec(**spec), publishing=publishing)
    assert page.empty_reason == reason
    assert bool(page.rows) == (reason is None)


async def test_pages_user_window_reads_the_asked_window_and_flags_only_live_users(recorded_flags):
    board = services.board_get()
    bob = await sync_to_async(user_lookup)(board, "bob")
    hour = await sync_to_async(user_window)(bob, window="1h")
    assert (hour.stats.requests, hour.stats.errors, hour.stats.error_rate) == (10, 5, 0.5)
    assert "erroring" in flag_names(hour.flags)
    five = await sync_to_async(user_window)(bob, window="5m")
    assert 0 < five.stats.seconds <= timedelta(minutes=5).total_seconds()
    carol = await sync_to_async(user_lookup)(board, "carol")
    ended = await sync_to_async(user_window)(carol, window="1h")
    assert ended.flags == [] and ended.stats.seconds > 0  # an ended user has rates, never flags


async def test_pages_rows_window_reads_each_asked_user_once_and_flags_only_live_ones(recorded_flags, monkeypatch):
    board = services.board_get()
    read: list[list[str]] = []
    real = pages.window_stats

    def window_stats(**kwargs: object) -> dict:
        read.append(list(kwargs["user_ids"]))
        return real(**kwargs)

    monkeypatch.setattr(pages, "window_stats", window_stats)
    rows = await sync_to_async(rows_window)(board, user_ids=["bob", "carol", "bob", "nobody"], window="1h")
    assert read == [["bob", "carol", "nobody"]]  # only the asked users, each once, in one read
    assert list(rows) == ["bob", "carol", "nobody"]  # the page's order
    assert "erroring" in flag_names(rows["bob"].flags) and rows["bob"].stats.requests == 10
    assert rows["carol"].flags == [] and rows["carol"].stats.seconds > 0  # not on the board: no flags
    nobody = rows["nobody"]
    assert nobody.flags == [] and nobody.stats.requests == 0 and nobody.stats.seconds > 0
    assert len(nobody.sparkline) == len(rows["bob"].sparkline) and not any(nobody.sparkline)
    assert rows["bob"].as_dict()["stats"]["error_rate"] == 0.5

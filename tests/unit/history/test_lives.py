"""History lives: what is written per refresh, new lives, ended users, gaps, restarts, failed writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import IntegrityError

from tests.support.history_helpers import CREATED, MIN, T0, recorder, snapshot, usage
from usermetrics.history.ended import ended_select, ended_user_get
from usermetrics.history.lives import is_new_life
from usermetrics.history.query import window_stats
from usermetrics.history.samples import Counters, delta
from usermetrics.merging import merge
from usermetrics.models import TotalsSample, UserLife, UserSample
from usermetrics.runtime import SessionManager
from usermetrics.sources import LocalSource

pytestmark = pytest.mark.django_db


def test_history_lives_records_only_changed_users():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=1, avg=10), usage("b", total=2, avg=10)]))
    result = rec.record(snapshot(T0 + MIN, [usage("a", total=1, avg=10), usage("b", total=3, avg=10)]))
    assert result.samples == 1
    assert UserSample.objects.filter(life__user_id="a").count() == 1
    assert UserSample.objects.filter(life__user_id="b").count() == 2
    assert TotalsSample.objects.count() == 2


def test_history_lives_sample_interval_bounds_writes_but_loses_no_traffic():
    rec = recorder(sample_interval=60.0)
    rec.record(snapshot(T0, [usage("a", total=1, avg=10)]))
    for i, total in enumerate((2, 3, 4), start=1):
        rec.record(snapshot(T0 + i * timedelta(seconds=10), [usage("a", total=total, avg=10)]))
    assert UserSample.objects.count() == 1  # changes within the interval wait
    rec.record(snapshot(T0 + MIN, [usage("a", total=5, avg=10)]))
    assert UserSample.objects.count() == 2
    assert window_stats(window=timedelta(minutes=5), now=T0 + MIN)["a"].requests == 4  # 1 -> 5: nothing lost


def test_history_lives_held_change_is_written_when_due_while_the_record_stays_the_same():
    rec = recorder(sample_interval=60.0)
    rec.record(snapshot(T0, [usage("a", total=1, avg=10), usage("b", total=1, avg=10)]))
    moved = usage("a", total=2, avg=10)
    b = usage("b", total=1, avg=10)
    rec.record(snapshot(T0 + timedelta(seconds=10), [moved, b]))  # held back by the interval
    rec.record(snapshot(T0 + timedelta(seconds=30), [moved, b]))  # the same objects: nothing changed since
    assert UserSample.objects.filter(life__user_id="a").count() == 1
    result = rec.record(snapshot(T0 + MIN, [moved, b]))
    assert result.samples == 1  # due now: the held change, and nothing for b
    assert UserSample.objects.filter(life__user_id="a").order_by("ts").last().total_requests == 2
    assert rec.record(snapshot(T0 + 2 * MIN, [moved, b])).samples == 0


def test_history_lives_counter_reset_is_a_new_life_not_negative_traffic():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=10, avg=100.0)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=20, avg=100.0)]))
    # Same created_at, but the counter went backwards: the server restarted the workflow.
    result = rec.record(snapshot(T0 + 2 * MIN, [usage("a", total=5, errors=1, avg=50.0)]))
    assert (result.new_lives, result.ended) == (1, 1)
    lives = list(UserLife.objects.filter(user_id="a").order_by("life"))
    assert [life.life for life in lives] == [1, 2]
    assert lives[0].ended_at == T0 + 2 * MIN and lives[0].total_requests == 20
    assert lives[1].ended_at is None
    stats = window_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)["a"]
    # 10 in the first life, then the new life's 5 counted from zero; never 5 - 20.
    assert (stats.requests, stats.errors) == (15, 1)
    assert stats.latency_ms == round((1000 + 250) / 15, 2)
    assert all(s.d_requests >= 0 for s in UserSample.objects.all())


def test_history_lives_new_created_at_is_a_new_life():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=3)]))
    result = rec.record(snapshot(T0 + MIN, [usage("a", total=7, created=CREATED + MIN)]))
    assert result.new_lives == 1
    assert UserLife.objects.filter(user_id="a").count() == 2


def test_history_lives_rules():
    c = Counters(0, 10, 2, 100.0, 1, 0, 3)
    assert is_new_life(CREATED, c, CREATED + MIN, c)
    assert is_new_life(CREATED, c, CREATED, Counters(0, 9, 2, 100.0, 1, 0, 3))  # requests went backwards
    assert not is_new_life(CREATED, c, CREATED, Counters(1, 12, 2, 90.0, 2, 0, 5))
    # (requests, errors, latency x count, exit stack, functions + groups)
    assert delta(Counters(0, 12, 3, 90.0, 2, 1, 5), c) == (2, 1, 90.0 * 12 - 1000.0, 2, 2)
    assert delta(c, None) == (10, 2, 1000.0, 0, 0)  # a life counted from zero; resources are a baseline


def test_history_lives_evicted_user_stays_as_ended_with_last_values():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=4, errors=1, avg=12.5, stack=3), usage("b", total=1)]))
    last = T0 + MIN
    rec.record(snapshot(last, [usage("a", total=6, errors=1, avg=15.0, stack=3, last=last), usage("b", total=1)]))
    result = rec.record(snapshot(T0 + 2 * MIN, [usage("b", total=1)]))  # the source evicted "a"
    assert result.ended == 1
    ended = ended_user_get(user_id="a", now=T0 + 3 * MIN)
    assert ended is not None and ended.ended_at == T0 + 2 * MIN
    assert ended.usage.requests.total_requests == 6
    assert ended.usage.requests.avg_latency_ms == 15.0
    assert ended.usage.memory.exit_stack_size == 3
    assert ended.usage.session.last_activity == last
    assert ended.sources == ("demo",)
    assert ended.ended_ago(T0 + 12 * MIN) == "ended 10 min ago"
    # It comes back later with a fresh workflow: a new life, and no longer listed as ended.
    rec.record(snapshot(T0 + 3 * MIN, [usage("a", total=1, created=T0 + 3 * MIN), usage("b", total=1)]))
    assert ended_select(now=T0 + 3 * MIN) == []
    assert UserLife.objects.get(user_id="a", ended_at__isnull=True).life == 2


def test_history_lives_one_user_leaving_as_another_joins_ends_the_one_that_left():
    rec = recorder()
    a, b, c = usage("a", total=1), usage("b", total=2), usage("c", total=3)
    rec.record(snapshot(T0, [a, b]))
    result = rec.record(snapshot(T0 + MIN, [a, c]))  # as many users as before, "a" the very same record
    assert (result.ended, result.new_lives) == (1, 1)
    assert UserLife.objects.get(user_id="b").ended_at == T0 + MIN
    result = rec.record(snapshot(T0 + 2 * MIN, [a, usage("c", total=4)]))  # one changed, nobody left
    assert (result.ended, result.samples) == (0, 1)
    assert UserLife.objects.filter(ended_at__isnull=True).count() == 2


def test_history_lives_a_source_gap_reopens_the_same_life():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=4)]))
    rec.record(snapshot(T0 + MIN, []))  # the source failed with nothing to show
    rec.record(snapshot(T0 + 2 * MIN, [usage("a", total=5)]))
    assert list(UserLife.objects.values_list("life", "ended_at")) == [(1, None)]
    assert window_stats(window=timedelta(minutes=5), now=T0 + 2 * MIN)["a"].requests == 1


def test_history_lives_restart_continues_open_lives_without_double_counting():
    first = recorder()
    first.record(snapshot(T0, [usage("a", total=10, avg=10.0), usage("gone", total=1)]))
    first.record(snapshot(T0 + MIN, [usage("a", total=12, avg=10.0), usage("gone", total=1)]))
    # A new process: a new recorder reads the open lives back from the database.
    second = recorder()
    result = second.record(snapshot(T0 + 5 * MIN, [usage("a", total=15, avg=10.0)]))
    assert result.new_lives == 0 and result.ended == 1
    assert UserLife.objects.get(user_id="a").life == 1
    # "gone" vanished while no producer ran: ended when it was last seen, not at the restart.
    assert UserLife.objects.get(user_id="gone").ended_at == T0 + MIN
    assert window_stats(window=timedelta(minutes=10), now=T0 + 5 * MIN)["a"].requests == 5  # 10 -> 12 -> 15


def test_history_lives_failed_write_leaves_no_phantom_lives():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=1)]))
    with pytest.raises(IntegrityError):  # a second totals row at the same instant
        rec.record(snapshot(T0, [usage("a", total=2), usage("b", total=1)]))
    rec.record(snapshot(T0 + MIN, [usage("a", total=3), usage("b", total=1)]))
    assert list(UserLife.objects.order_by("user_id").values_list("user_id", "life")) == [("a", 1), ("b", 1)]
    assert window_stats(window=timedelta(minutes=5), now=T0 + MIN)["a"].requests == 2


@pytest.mark.django_db(transaction=True)
async def test_history_lives_user_evicted_by_a_real_session_manager_is_ended_then_reborn(install_service):
    clock = [T0]
    manager = SessionManager(per_user_workflow_timeout=timedelta(minutes=30), clock=lambda: clock[0])
    try:
        service = await install_service([LocalSource("local", manager)])
        rec = recorder()
        for _ in range(3):
            async with manager.session("ada") as builder:
                builder.add_function("tool", object())
        await sync_to_async(rec.record)(await service.refresh())
        clock[0] = T0 + timedelta(minutes=31)
        assert await manager.cleanup_idle() == 1  # NAT-style eviction: the counters are gone
        await sync_to_async(rec.record)(await service.refresh())
        ended = await sync_to_async(ended_user_get)(user_id="ada")
        assert ended is not None and ended.usage.requests.total_requests == 3
        assert ended.usage.memory.per_user_functions_count == 1
        # The user comes back: a fresh workflow, a new life counted from zero.
        async with manager.session("ada"):
            pass
        await sync_to_async(rec.record)(await service.refresh())
        lives = await sync_to_async(
            lambda: list(UserLife.objects.filter(user_id="ada").values_list("life", "ended_at"))
        )()
        assert [life for life, _ in lives] == [1, 2] and lives[1][1] is None
        assert await sync_to_async(ended_user_get)(user_id="ada") is None
    finally:
        await manager.aclose()


def test_history_lives_takes_the_merges_word_for_who_changed_only_after_the_snapshot_it_saw():
    # A merge that updates the snapshot before says which records changed; the recorder takes that
    # instead of comparing everyone, but only when it wrote that very snapshot before (it may skip
    # some: the newest wins), and records what comparing would have.
    def merged(ts, users, previous):
        return merge([("demo", users)], ids=[[u.user_id for u in users]], seq=1, timestamp=ts, sources=[],
                     previous=previous)  # fmt: skip

    users = [usage(f"u{i}", total=1, avg=10) for i in range(5)]
    rec = recorder()
    first = merged(T0, list(users), None)  # a source hands a new list each time
    rec.record(first)
    users[1] = usage("u1", total=2, avg=10)
    second = merged(T0 + MIN, list(users), first)
    assert second.changed is not None and list(second.changed[0]) == ["u1"] and second.changed[1] is first.by_id
    assert rec.record(second).samples == 1
    users[2] = usage("u2", total=2, avg=10)
    third = merged(T0 + 2 * MIN, list(users), second)
    users[3] = usage("u3", total=2, avg=10)
    fourth = merged(T0 + 3 * MIN, list(users), third)  # the recorder skips the third
    assert list(fourth.changed[0]) == ["u3"]
    assert rec.record(fourth).samples == 2  # u2 and u3: it compared, as it did not see the third
    assert UserSample.objects.filter(life__user_id="u2").count() == 2

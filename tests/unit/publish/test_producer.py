"""The producer: one message per face per refresh, a standby that waits, flag stats read in a thread of its own."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from tests.support.faces import FIRST, ONE, SORTED
from tests.support.factories import ScriptedSource, board_of, record
from tests.support.history_helpers import T0, snapshot, usage
from usermetrics.feed.builder import FRAMES_TYPE
from usermetrics.feed.subscriptions import Subscription
from usermetrics.history.query import WindowStats
from usermetrics.monitor import MonitorService
from usermetrics.publish import producer
from usermetrics.publish.bus import LocalBus, RedisBus
from usermetrics.publish.lease import LocalLease, RedisLease
from usermetrics.publish.producer import FlagTracker, Producer


async def test_publish_producer_flag_tracker_keeps_the_last_stats_while_reads_fail(monkeypatch, caplog):
    stats = {"a": WindowStats()}
    down = RuntimeError("database down")
    answers: list[object] = [stats, down, down]
    threads: list[str] = []

    def read(user_ids, *, now, percentiles):
        threads.append(threading.current_thread().name)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    used: list[object] = []
    monkeypatch.setattr(producer, "flag_stats", read)
    monkeypatch.setattr(producer, "flagged", lambda snap, board, stats, *, now: used.append(stats) or {})
    tracker = FlagTracker(every=0.0)  # every refresh reads the stats
    users = [usage("a")]
    with caplog.at_level(logging.WARNING, logger=producer.__name__):
        for _ in range(3):
            await tracker.flags(snapshot(T0, users), board_of(users))
    await tracker.aclose()
    assert answers == []  # three reads: the refresh waited for each
    assert len(used) == 3 and all(u is stats for u in used)  # the last stats served through the failures
    assert threads and all(name.startswith("usermetrics-flags") for name in threads)
    assert [r.levelno for r in caplog.records if r.name == producer.__name__] == [logging.WARNING]  # logged once


def _producer(faces: dict[str, dict[str, Subscription]], sent: list[tuple[str, dict[str, Any]]]) -> Producer:
    async def by_face() -> dict[str, dict[str, Subscription]]:
        return faces

    async def send(face: str, message: dict[str, Any]) -> None:
        sent.append((face, message))

    async def labels() -> dict[str, str]:
        return {}

    source = ScriptedSource("s", [record("a"), record("b")])
    return Producer(
        MonitorService([source]),
        bus=LocalBus(),
        lease=LocalLease(),
        subscriptions=by_face,
        send=send,
        labels=labels,
        name="p",
    )


async def test_publish_producer_one_message_per_face_per_refresh_each_view_built_once():
    faces = {"face-1": {FIRST.group: FIRST}, "face-2": {FIRST.group: FIRST, SORTED.group: SORTED, ONE.group: ONE}}
    sent: list[tuple[str, dict[str, Any]]] = []
    producer = _producer(faces, sent)
    await producer.tick()
    await producer.tick()
    assert [face for face, _ in sent] == ["face-1", "face-2", "face-1", "face-2"]  # one per face per refresh
    assert producer.frames.frames_built == 6  # three distinct views, twice: a view two faces watch is built once
    _, message = sent[3]
    assert message["type"] == FRAMES_TYPE and (message["seq"], message["producer"]) == (2, "p")
    assert set(message["frames"]) == {FIRST.group, SORTED.group, ONE.group}
    assert sent[2][1]["frames"][FIRST.group] == message["frames"][FIRST.group]  # the same text for both faces
    assert json.loads(message["frames"][ONE.group])["users"][0]["user_id"] == "a"


async def test_publish_producer_no_view_watched_sends_nothing():
    sent: list[tuple[str, dict[str, Any]]] = []
    producer = _producer({"face-1": {}}, sent)
    await producer.tick()
    assert sent == [] and producer.frames.frames_built == 0


@pytest.mark.redis
async def test_publish_producer_standby_publishes_nothing_and_a_taker_continues_the_numbering(redis):
    sent: list[tuple[str, dict[str, object]]] = []

    async def send(group: str, event: dict[str, object]) -> None:
        sent.append((group, event))

    async def no_subscriptions() -> dict[str, Subscription]:
        return {}

    async def no_labels() -> dict[str, str]:
        return {}

    def producer(name: str) -> Producer:
        return Producer(
            MonitorService([ScriptedSource("s", [record("a")])]),
            bus=RedisBus(redis, prefix=redis.test_prefix),
            lease=RedisLease(redis, holder=name, ttl=5, key=f"{redis.test_prefix}:leader"),
            subscriptions=no_subscriptions,
            send=send,
            labels=no_labels,
            name=name,
        )

    leader, standby = producer("leader"), producer("standby")
    assert (await leader.tick()).seq == 1 and (await leader.tick()).seq == 2
    assert await standby.tick() is None and standby.monitor.refresh_count == 0  # never reads a source
    await leader.close()  # releases the lease
    taken = await standby.tick()
    assert taken is not None and taken.seq == 3 and taken.producer == "standby"
    await standby.close()

"""The feed's producer: one frame per subscribed view per refresh, late joiners share it, gone ids, flags once."""

from __future__ import annotations

import json

from channels.layers import InMemoryChannelLayer

from tests.factories import BASE_TIME, sample_users
from usermetrics.feed.producer import FeedProducer
from usermetrics.selection import ViewSpec
from usermetrics.snapshot import SourceHealth, merge


def snap(users, seq: int):
    return merge([("s", users)], seq=seq, timestamp=BASE_TIME, sources=[SourceHealth(name="s", kind="t", state="ok")])


async def test_feed_producer_builds_each_view_once_per_refresh():
    layer = InMemoryChannelLayer()
    producer = FeedProducer(layer=layer)
    channels = [await layer.new_channel() for _ in range(4)]
    groups = [
        producer.subscribe(channels[0], spec=ViewSpec()),
        producer.subscribe(channels[1], spec=ViewSpec()),
        producer.subscribe(channels[2], spec=ViewSpec(sort="user_id")),
        producer.subscribe(channels[3], user_id="u01"),
    ]
    for channel, group in zip(channels, groups, strict=True):
        await layer.group_add(group, channel)
    assert groups[0] == groups[1] and len(set(groups)) == 3
    snapshot = snap(sample_users(), seq=1)
    late = await producer.frame_for(groups[0], snapshot)  # a subscriber's first frame this tick
    await producer.publish(snapshot)
    assert producer.frames_built == 3  # one per distinct view, the late joiner's one reused
    texts = []
    for channel in channels:
        event = await layer.receive(channel)
        assert event["type"] == "metrics.update" and json.loads(event["text"])["seq"] == 1
        texts.append(event["text"])
    assert texts[0] == texts[1] == late  # the same text for everyone on the view


async def test_feed_producer_names_users_that_left_the_page():
    layer = InMemoryChannelLayer()
    producer = FeedProducer(layer=layer)
    channel = await layer.new_channel()
    group = producer.subscribe(channel, spec=ViewSpec(sort="user_id", page_size=3))
    await layer.group_add(group, channel)
    users = sample_users()
    await producer.publish(snap(users, seq=1))
    await producer.publish(snap(users[1:], seq=2))  # u00 is gone from every source
    first, second = [json.loads((await layer.receive(channel))["text"]) for _ in range(2)]
    assert first["gone"] == [] and second["gone"] == ["u00"]


async def test_feed_producer_reads_flags_only_for_flag_views_and_once_per_interval():
    reads: list[int] = []

    async def flags(snapshot):
        reads.append(snapshot.seq)
        return {"u02": ["stuck"]}

    layer = InMemoryChannelLayer()
    producer = FeedProducer(layer=layer, flags=flags)
    plain = await layer.new_channel()
    producer.subscribe(plain, spec=ViewSpec())
    await producer.publish(snap(sample_users(), seq=1))
    assert reads == []  # nobody filters by a flag: nothing read
    stuck = await layer.new_channel()
    group = producer.subscribe(stuck, spec=ViewSpec(state="stuck"))
    await layer.group_add(group, stuck)
    await producer.publish(snap(sample_users(), seq=2))
    await producer.publish(snap(sample_users(), seq=3))
    assert reads == [2]  # within FLAGS_REFRESH the producer reuses what it read
    doc = json.loads((await layer.receive(stuck))["text"])
    assert [u["user_id"] for u in doc["users"]] == ["u02"]


async def test_feed_producer_sends_frames_without_names_when_they_cannot_be_read():
    async def broken():
        raise RuntimeError("database is down")

    layer = InMemoryChannelLayer()
    producer = FeedProducer(layer=layer, labels=broken)
    channel = await layer.new_channel()
    await layer.group_add(producer.subscribe(channel, spec=ViewSpec()), channel)
    await producer.publish(snap(sample_users(), seq=1))
    assert json.loads((await layer.receive(channel))["text"])["labels"] == {}

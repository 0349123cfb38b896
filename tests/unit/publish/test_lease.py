"""The lease on the Redis of REDIS_URL: one producer leads, a standby takes over, a release frees only its own."""

from __future__ import annotations

import asyncio

import pytest

from usermetrics.publish.lease import RedisLease

pytestmark = pytest.mark.redis


async def test_publish_lease_one_leads_and_a_standby_takes_over_when_it_expires(redis):
    key = f"{redis.test_prefix}:leader"
    first = RedisLease(redis, holder="first", ttl=0.4, key=key)
    second = RedisLease(redis, holder="second", ttl=0.4, key=key)
    assert await first.hold() and not await second.hold()
    assert await first.hold()  # the holder renews
    assert await first.leader() == "first"
    # The leader dies without a word: its lease runs out and the standby takes it.
    first.leading = False  # (a killed process renews nothing)
    await asyncio.sleep(0.5)
    assert await second.hold() and await second.leader() == "second"
    assert not await first.hold()  # the old leader, back, does not take it over
    await second.release()
    assert await second.leader() is None  # a clean stop frees it at once


async def test_publish_lease_release_never_deletes_another_holders_lease(redis):
    key = f"{redis.test_prefix}:leader"
    mine = RedisLease(redis, holder="mine", ttl=5, key=key)
    assert await mine.hold()
    await redis.set(key, "someone-else")  # the lease moved on meanwhile
    await mine.release()
    assert await redis.get(key) == b"someone-else"
    assert not await mine.hold()  # renewing compares the holder first


async def test_publish_lease_is_kept_through_a_long_refresh_and_no_longer_than_it_may(redis):
    # A refresh longer than the lease's time to live (a million users on a busy machine) keeps it:
    # the lease is renewed while the refresh runs, so a standby does not take over a live leader. A
    # refresh stuck past ``longest`` stops renewing, and the lease runs out as a dead leader's does.
    key = f"{redis.test_prefix}:leader"
    leader = RedisLease(redis, holder="leader", ttl=60, key=key)
    standby = RedisLease(redis, holder="standby", ttl=60, key=key)
    assert await leader.hold()
    naps: list[float] = []
    clock = [0.0]

    async def nap(seconds: float) -> None:  # time passes only when the keeper sleeps
        naps.append(seconds)
        clock[0] += seconds
        await redis.pexpire(key, 2000)  # as if nearly all of the time to live had gone by
        assert not await standby.hold()  # nor can it be taken meanwhile

    await leader.keep(longest=200, sleep=nap, clock=lambda: clock[0])
    assert naps == [20.0] * 10  # every third of the time to live, until the next would pass 200 s
    assert await redis.pttl(key) > 50_000  # renewed to the whole time to live after the last nap
    assert leader.leading and await leader.leader() == "leader"

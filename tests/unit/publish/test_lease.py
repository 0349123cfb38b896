"""The lease on the Redis of REDIS_URL: one producer leads, a standby takes over, a release frees only its own."""

from __future__ import annotations

import asyncio
from typing import Any

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


class _AnswerLate:
    """A Redis whose SET is done at once but answered only when ``answer`` is set (a reply on its way)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.sent = asyncio.Event()
        self.answer = asyncio.Event()
        self.answer.set()

    async def eval(self, *args: Any) -> Any:
        return await self.redis.eval(*args)

    async def get(self, key: str) -> Any:
        return await self.redis.get(key)

    async def set(self, *args: Any, **kwargs: Any) -> Any:
        done = await self.redis.set(*args, **kwargs)
        self.sent.set()
        await self.answer.wait()
        return done


async def test_publish_lease_keeper_stopped_mid_renewal_knows_whether_it_leads(redis):
    # The refresh ends while the keeper takes back a lease that ran out (the loop was busy past its
    # time to live): Redis has given it the lease, its answer is on the way. Stopping the keeper
    # then must not leave it believing it does not lead, unable to take its own lease back until
    # it expires (no producer at all meanwhile).
    key = f"{redis.test_prefix}:leader"
    late = _AnswerLate(redis)
    leader = RedisLease(late, holder="leader", ttl=60, key=key)  # type: ignore[arg-type]
    assert await leader.hold()
    await redis.delete(key)  # ran out
    late.sent.clear()
    late.answer.clear()

    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    keeper = asyncio.create_task(leader.keep(longest=200, sleep=no_wait, clock=lambda: 0.0))
    await late.sent.wait()
    keeper.cancel()
    late.answer.set()
    await asyncio.gather(keeper, return_exceptions=True)
    assert await leader.hold() and await leader.leader() == "leader"

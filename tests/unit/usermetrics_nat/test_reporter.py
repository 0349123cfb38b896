"""The companion's reporter against a real Redis: what changed, who left, everyone now and then, Redis away."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from usermetrics_nat.histogram import dense
from usermetrics_nat.report import FIELD, Line, WorkerIdentity, decode
from usermetrics_nat.reporter import Reporter
from usermetrics_nat.settings import CompanionSettings

from usermetrics.runtime import SessionManager

pytestmark = pytest.mark.redis

WORKER = WorkerIdentity(
    host="nat-1", pid=7, started_at=datetime(2026, 12, 7, 9, tzinfo=UTC), nat_version="1.9.0", config="probe"
)


def settings_for(stream: str, **changes: object) -> CompanionSettings:
    """The companion's settings for a stream of the test's own."""
    base = CompanionSettings.from_env({"USERMETRICS_NAT_REDIS_URL": os.environ.get("REDIS_URL", "")})
    fields = {**base.__dict__, "stream": stream, "full_every": 3, **changes}
    return CompanionSettings(**fields)


async def reports(redis: Redis, stream: str) -> list[tuple[object, dict[str, Line]]]:
    """Every report in the stream: its header and its users by id."""
    out = []
    for _, fields in await redis.xrange(stream):
        header, lines = decode(fields[FIELD])
        out.append((header, {line.u.user_id: line for line in map(Line.model_validate_json, lines)}))
    return out


async def request(manager: SessionManager, user_id: str) -> None:
    """One request of ``user_id`` through the session registry (timed, metered)."""
    async with manager.session(user_id):
        pass


async def test_reporter_sends_what_changed_and_everyone_every_full_every(redis, manager):
    stream = f"{redis.test_prefix}:stream"
    reporter = Reporter([manager], settings=settings_for(stream), identity=WORKER, redis=redis)
    for user in ("alice", "bob"):
        await request(manager, user)
    assert await reporter.tick()  # 1: the first is full
    assert await reporter.tick()  # 2: nothing changed
    await request(manager, "alice")
    assert await reporter.tick()  # 3: alice only
    assert await reporter.tick()  # 4: full again (every 3rd from the first)
    got = await reports(redis, stream)
    assert [(h.seq, h.full, sorted(users)) for h, users in got] == [
        (1, True, ["alice", "bob"]),
        (2, False, []),
        (3, False, ["alice"]),
        (4, True, ["alice", "bob"]),
    ]
    alice = got[2][1]["alice"]
    assert alice.u.requests.total_requests == 2 and sum(dense(alice.x.latency)) == 2
    assert alice.x.max_concurrency == 8 and alice.x.queued == 0
    assert alice.u.session.created_at.tzinfo is not None  # sent in UTC


async def test_reporter_names_the_users_that_left(redis):
    clock = [datetime(2026, 12, 7, 9, tzinfo=UTC)]
    manager = SessionManager(per_user_workflow_timeout=timedelta(minutes=1), clock=lambda: clock[0])
    try:
        stream = f"{redis.test_prefix}:stream"
        reporter = Reporter([manager], settings=settings_for(stream), identity=WORKER, redis=redis)
        await request(manager, "alice")
        await request(manager, "bob")
        await reporter.tick()
        clock[0] += timedelta(minutes=5)
        await request(manager, "bob")  # bob stays; alice is evicted as NAT's clean-up would
        assert await manager.cleanup_idle() == 1
        await reporter.tick()
        header, users = (await reports(redis, stream))[1]
        assert header.gone == [(0, "alice")] and list(users) == ["bob"]
    finally:
        await manager.aclose()


async def test_reporter_keeps_reports_while_redis_is_away_then_sends_everyone(redis, manager):
    stream = f"{redis.test_prefix}:stream"
    away = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    reporter = Reporter([manager], settings=settings_for(stream, buffer=2), identity=WORKER, redis=away)
    await request(manager, "alice")
    for _ in range(4):
        assert not await reporter.tick()  # NAT keeps serving; the reports wait, at most 2 of them
    assert reporter.dropped == 2
    await away.aclose()
    reporter.redis = redis  # Redis is back
    await request(manager, "bob")
    assert await reporter.tick()
    got = await reports(redis, stream)
    # The two kept: 3 and 4, each built after a lost one, so full, saying how many were lost; then 5.
    assert [(h.seq, h.full, h.dropped) for h, _ in got] == [(3, True, 1), (4, True, 2), (5, False, 2)]
    assert list(got[0][1]) == ["alice"] and list(got[-1][1]) == ["bob"]


async def test_reporter_says_goodbye_when_stopped(redis, manager):
    stream = f"{redis.test_prefix}:stream"
    own = Redis.from_url(os.environ["REDIS_URL"])  # the reporter closes its client when it stops
    reporter = Reporter([manager], settings=settings_for(stream), identity=WORKER, redis=own)
    await request(manager, "alice")
    await reporter.tick()
    await reporter.stop()
    header, _ = (await reports(redis, stream))[-1]
    assert header.bye and header.seq == 2

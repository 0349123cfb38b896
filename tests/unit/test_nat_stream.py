"""A NAT deployment's companion stream as a source, against a real Redis: merged, applied once, taken over."""

from __future__ import annotations

import json
import os
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, RedisError
from usermetrics_nat.report import FIELD, VERSION, Header, UserExtras, WorkerIdentity, encode, line_of
from usermetrics_nat.reporter import Reporter
from usermetrics_nat.settings import ACL_COMMANDS as COMPANION_ACL
from usermetrics_nat.settings import CompanionSettings

from tests.support.factories import usage
from tests.support.fake_nat import FakeNat
from usermetrics.monitor import MonitorService
from usermetrics.nat import NatHttpSource
from usermetrics.nat_stream import ACL_COMMANDS as READER_ACL
from usermetrics.nat_stream import GROUP, NatStreamSource, without_credentials
from usermetrics.packing import BoardCache, board_build
from usermetrics.runtime import SessionManager

pytestmark = pytest.mark.redis


def identity(pid: int) -> WorkerIdentity:
    """A NAT worker process."""
    return WorkerIdentity(
        host="nat-1", pid=pid, started_at=datetime(2026, 12, 7, 9, tzinfo=UTC), nat_version="1.9.0", config="probe"
    )


class Deployment:
    """Two NAT workers' session registries, each with a companion reporter on the test's stream."""

    def __init__(self, redis: Redis, stream: str) -> None:
        """Report to ``stream``."""
        self.redis, self.stream = redis, stream
        settings = CompanionSettings.from_env({"USERMETRICS_NAT_STREAM": stream, "USERMETRICS_NAT_FULL_EVERY": "100"})
        self.managers = [SessionManager(), SessionManager()]
        self.reporters = [
            Reporter([m], settings=settings, identity=identity(100 + n), redis=redis)
            for n, m in enumerate(self.managers)
        ]

    async def requests(self, worker: int, user_id: str, count: int = 1) -> None:
        """``count`` requests of ``user_id`` served by ``worker``."""
        for _ in range(count):
            async with self.managers[worker].session(user_id):
                pass

    async def report(self) -> None:
        """Each worker reports once."""
        for reporter in self.reporters:
            assert await reporter.tick()

    async def aclose(self) -> None:
        """Close the registries."""
        for manager in self.managers:
            await manager.aclose()


@pytest.fixture
async def deployment(redis):
    """Two workers reporting to a stream of this test's own."""
    made = Deployment(redis, f"{redis.test_prefix}:nat")
    yield made
    await made.aclose()


def source(stream: str, **kwargs: object) -> NatStreamSource:
    """A reader of ``stream`` in the test Redis."""
    return NatStreamSource("nat", os.environ["REDIS_URL"], stream=stream, **kwargs)


def totals(users: list) -> dict[str, int]:
    """Requests by user."""
    return {u.user_id: u.requests.total_requests for u in users}


async def test_nat_stream_merges_a_deployments_workers_per_user(deployment):
    await deployment.requests(0, "alice", 3)
    await deployment.requests(1, "alice", 2)
    await deployment.requests(1, "bob")
    await deployment.report()
    reader = source(deployment.stream)
    try:
        response = await reader.fetch()
        assert totals(response.users) == {"alice": 5, "bob": 1} and response.total_active_users == 2
        alice = reader.extras()["alice"]
        assert alice.workers == ("nat-1:100", "nat-1:101") and sum(alice.latency) == 5
        await deployment.requests(0, "bob", 4)
        await deployment.report()
        assert totals((await reader.fetch()).users) == {"alice": 5, "bob": 5}
        assert await deployment.redis.xpending(deployment.stream, GROUP) == {
            "pending": 0, "min": None, "max": None, "consumers": []
        }  # fmt: skip
        assert [w["label"] for w in reader.workers_summary()] == ["nat-1:100", "nat-1:101"]
    finally:
        await reader.aclose()


async def test_nat_stream_a_standby_takes_over_what_a_killed_reader_left_pending(deployment):
    await deployment.requests(0, "alice", 2)
    await deployment.report()
    first = source(deployment.stream, consumer="leader")
    try:
        await first.fetch()
    finally:
        await first.aclose()
    await deployment.requests(0, "alice", 3)
    await deployment.requests(1, "bob", 1)
    await deployment.report()
    # The leader reads the new reports and is SIGKILLed before it acknowledges them.
    redis = deployment.redis
    read = await redis.xreadgroup(GROUP, "leader", {deployment.stream: ">"})
    assert len(read[0][1]) == 2
    standby = source(deployment.stream, consumer="standby", interval=0.0001)  # claims at once
    try:
        response = await standby.fetch()
        assert totals(response.users) == {"alice": 5, "bob": 1}  # each report counted once
        assert (await redis.xpending(deployment.stream, GROUP))["pending"] == 0  # claimed and acknowledged
        assert standby.state.duplicates >= 2  # the replay had them already: applied once
        await deployment.requests(1, "alice")
        await deployment.report()
        assert totals((await standby.fetch()).users) == {"alice": 6, "bob": 1}
    finally:
        await standby.aclose()


async def test_nat_stream_skips_what_is_not_a_report_and_goes_on(deployment):
    redis, stream = deployment.redis, deployment.stream
    await redis.xadd(stream, {FIELD: b"garbage"})
    await redis.xadd(stream, {b"other": b"field"})
    await redis.xadd(stream, {FIELD: zlib.compress(b"x" * 100_000)})  # no header: too long for a header, not one
    stranger = Header(
        v=VERSION, deployment="elsewhere", worker=identity(9), seq=1, full=True, interval=2.0,
        sent_at=datetime.now(UTC),
    )  # fmt: skip
    await redis.xadd(stream, {FIELD: encode(stranger, [])})
    # A line whose histogram names a bucket that does not exist: that line is skipped, never the refresh.
    poisoned = Header(v=VERSION, deployment="nat", worker=identity(8), seq=1, full=True, interval=2.0,
                      sent_at=datetime.now(UTC))  # fmt: skip
    bad = b'{"e":0,"u":' + usage("mallory").model_dump_json().encode() + b',"x":{"latency":[[99,1]]}}'
    await redis.xadd(stream, {FIELD: encode(poisoned, [bad])})
    await deployment.requests(0, "alice")
    await deployment.report()
    reader = source(stream, max_report_bytes=50_000)
    try:
        assert totals((await reader.fetch()).users) == {"alice": 1}
        assert reader.skipped_by_kind() == {
            "an entry that is not a report": 2, "an entry without a report": 1, "another deployment": 1,
            "a user line that does not validate": 1,
        }  # fmt: skip
        assert totals((await reader.fetch()).users) == {"alice": 1}  # and the next refresh too
    finally:
        await reader.aclose()


async def test_nat_stream_a_fetch_cut_short_leaves_nothing_applied_out_of_order(deployment):
    """Reports delivered to this reader but never applied (its fetch timed out) come first next time: a
    worker's later report read before them would make them duplicates, and their changes would be lost."""
    await deployment.requests(0, "alice")
    await deployment.report()
    reader = source(deployment.stream, consumer="leader")
    try:
        assert totals((await reader.fetch()).users) == {"alice": 1}
        await deployment.requests(0, "alice", 4)
        await deployment.report()
        await deployment.redis.xreadgroup(GROUP, "leader", {deployment.stream: ">"})  # delivered, then cut short
        await deployment.requests(0, "bob")
        await deployment.report()
        assert totals((await reader.fetch()).users) == {"alice": 5, "bob": 1}
        assert reader.state.duplicates == 0
        assert (await deployment.redis.xpending(deployment.stream, GROUP))["pending"] == 0
    finally:
        await reader.aclose()


async def test_nat_stream_a_rebuild_ends_the_workers_that_were_silent_as_the_live_reader_did(deployment):
    """A worker that died, then its user's next requests on another worker: read again from the stream's
    start, the dead worker's share ends where it ended live, and the user is the new life it is live."""
    redis, stream = deployment.redis, deployment.stream
    start = datetime.now(UTC) - timedelta(seconds=60)

    def report(worker: int, seq: int, at: float, user_line: bytes) -> bytes:
        sent = start + timedelta(seconds=at)
        head = Header(v=VERSION, deployment="nat", worker=identity(worker), seq=seq, full=True, interval=2.0,
                      sent_at=sent)  # fmt: skip
        return encode(head, [user_line])

    def alice(requests: int, created: datetime) -> bytes:
        u = usage("alice", requests=requests)
        u = u.model_copy(update={"session": u.session.model_copy(update={"created_at": created})})
        return line_of(0, u, UserExtras())

    await redis.xadd(stream, {FIELD: report(1, 1, 0, alice(100, start))})  # worker 1, then nothing more
    later = start + timedelta(seconds=59)
    await redis.xadd(stream, {FIELD: report(2, 1, 59, alice(3, later))})  # a minute on: alice anew on worker 2
    reader = source(stream)
    try:
        users = (await reader.fetch()).users
        assert totals(users) == {"alice": 3} and users[0].session.created_at == later
    finally:
        await reader.aclose()


async def test_nat_stream_a_reader_that_lost_its_place_reads_everything_again(deployment):
    await deployment.requests(0, "alice", 2)
    await deployment.report()
    now = [0.0]
    reader = source(deployment.stream, interval=1.0, clock=lambda: now[0])
    try:
        await reader.fetch()
        state = reader.state
        now[0] = 10.0  # more than three intervals since it last read (it stood by, then led again)
        await deployment.requests(0, "alice")
        await deployment.report()
        assert totals((await reader.fetch()).users) == {"alice": 3}
        assert state.applied == 2 + 4  # the 2 reports; then, after the reset, every report there is again
    finally:
        await reader.aclose()


async def test_nat_stream_redis_away_is_a_failed_fetch_and_urls_hide_passwords():
    reader = NatStreamSource("nat", "redis://user:secret@127.0.0.1:1/0", timeout=0.5)
    assert reader.url == "redis://127.0.0.1:1/0" and "secret" not in repr(reader)
    assert without_credentials("rediss://:pw@host:6380/2") == "rediss://host:6380/2"
    with pytest.raises(RedisError):  # the monitor marks the source stale, then down
        await reader.fetch()
    await reader.aclose()


@pytest.fixture
async def acl_users(redis):
    """Two Redis ACL users limited to the test's stream: a companion's and a reader's (deleted after)."""
    stream = f"{redis.test_prefix}:acl"
    names = {"companion": f"{redis.test_prefix}-companion", "reader": f"{redis.test_prefix}-reader"}
    for role, commands in (("companion", COMPANION_ACL), ("reader", READER_ACL)):
        await redis.execute_command(
            "ACL", "SETUSER", names[role], "on", f">pw-{role}", "resetkeys", f"~{stream}", "resetchannels",
            *commands.split(),
        )  # fmt: skip
    base = os.environ["REDIS_URL"].split("://", 1)[1].rpartition("@")[2]
    urls = {role: f"redis://{name}:pw-{role}@{base}" for role, name in names.items()}
    yield stream, urls
    await redis.execute_command("ACL", "DELUSER", *names.values())


async def test_nat_stream_works_with_redis_users_that_may_do_nothing_else(acl_users, manager):
    stream, urls = acl_users
    companion = Redis.from_url(urls["companion"])
    settings = CompanionSettings.from_env({"USERMETRICS_NAT_STREAM": stream})
    reporter = Reporter([manager], settings=settings, identity=identity(1), redis=companion)
    async with manager.session("alice"):
        pass
    assert await reporter.tick()
    with pytest.raises(NoPermissionError):
        await companion.xrange(stream)  # the companion may only add to its stream
    with pytest.raises(NoPermissionError):
        await companion.xadd(f"{stream}-other", {FIELD: b"x"})
    await companion.aclose()
    reader = NatStreamSource("nat", urls["reader"], stream=stream)
    try:
        assert totals((await reader.fetch()).users) == {"alice": 1}
        assert totals((await reader.fetch()).users) == {"alice": 1}
    finally:
        await reader.aclose()
    denied = Redis.from_url(urls["reader"])
    with pytest.raises(NoPermissionError):
        await denied.xadd(stream, {FIELD: b"x"})  # the reader may not write
    await denied.aclose()


async def test_nat_stream_mixes_with_a_plain_nat_server_in_one_deployment(deployment):
    """A plain NAT polled as before and a companion stream, side by side: every user once, a user both
    report merged, the companions' figures only where a companion reports the user."""
    await deployment.requests(0, "alice", 3)
    await deployment.requests(1, "carol", 2)
    await deployment.report()
    plain = FakeNat(2, moving=0.0, prefix="plain").start()
    plain.users[1]["user_id"] = "carol"  # carol also runs on the plain NAT, with its own requests
    plain.docs[1] = json.dumps(plain.users[1]).encode()
    reader = source(deployment.stream)
    monitor = MonitorService([NatHttpSource("old", plain.url), reader])
    try:
        snapshot = await monitor.refresh()
        assert {s.name: s.state for s in snapshot.sources} == {"old": "ok", "nat": "ok"}
        board = board_build(snapshot, producer="p", published_at=snapshot.timestamp, cache=BoardCache())
        expected = {
            "plain-000000@example.com": 0,
            "alice": 3,
            "carol": 2 + plain.users[1]["requests"]["total_requests"],
        }
        assert {uid: board.user(uid).requests.total_requests for uid in board.ids} == expected
        assert board.origins("carol") == ("old", "nat")
        assert board.extras_of("alice")["latency"]["requests"] == 3
        assert board.extras_of("carol")["workers"] == ["nat-1:101"]  # the companion's share of carol
        assert board.extras_of("plain-000000@example.com") is None  # no companion reports it
    finally:
        await monitor.aclose()
        plain.stop()


async def test_nat_stream_a_long_rebuild_is_not_taken_for_a_lost_place(deployment):
    """A rebuild that takes longer than three intervals (a long stream) is followed by plain reads, not by
    another rebuild at every fetch."""
    await deployment.requests(0, "alice")
    await deployment.report()
    now = [1000.0]
    reader = source(deployment.stream, interval=2.0, clock=lambda: now[0])
    rebuilds = 0
    rebuild = reader._rebuild

    async def slow_rebuild(redis: Redis) -> None:
        nonlocal rebuilds
        rebuilds += 1
        await rebuild(redis)
        now[0] += 60.0  # the replay took a minute, while the workers went on reporting
        await deployment.report()

    reader._rebuild = slow_rebuild  # type: ignore[method-assign]
    try:
        for _ in range(3):
            assert totals((await reader.fetch()).users) == {"alice": 1}
            now[0] += 2.0
            await deployment.report()
        assert rebuilds == 1
    finally:
        await reader.aclose()


async def test_nat_stream_a_stream_deleted_under_the_reader_is_read_again_after_three_intervals(deployment):
    """Redis restarted without persistence (the stream and its group gone): the fetches fail, then the
    reader counts its place lost and starts over on the new stream, as after a takeover."""
    await deployment.requests(0, "alice")
    await deployment.report()
    now = [1000.0]
    reader = source(deployment.stream, interval=2.0, clock=lambda: now[0])
    try:
        assert totals((await reader.fetch()).users) == {"alice": 1}
        await deployment.redis.delete(deployment.stream)
        await deployment.requests(1, "bob")
        await deployment.report()  # the workers report to a new stream, without the group
        for _ in range(3):  # a refresh every interval, each failing
            now[0] += 2.0
            with pytest.raises(RedisError, match="NOGROUP"):
                await reader.fetch()
        now[0] += 2.0  # more than three intervals since the last good read
        # Read again from the new stream: what it holds (alice, unchanged, comes with the next full report).
        assert totals((await reader.fetch()).users) == {"bob": 1}
    finally:
        await reader.aclose()


async def test_nat_stream_a_rebuild_that_fails_keeps_the_extras_of_the_users_it_keeps(deployment, monkeypatch):
    # A reader that lost its place reads the stream again and fails on the way (Redis went away, or
    # the fetch timed out): the monitor keeps its last users, stale, and their extras with them.
    await deployment.requests(0, "alice", 2)
    await deployment.report()
    now = [0.0]
    reader = source(deployment.stream, interval=1.0, clock=lambda: now[0])
    monitor = MonitorService([reader])
    try:
        assert set((await monitor.refresh()).extras) == {"alice"}
        now[0] = 10.0  # more than three intervals since it last read: the next fetch starts over

        async def away(*_: object, **__: object) -> None:
            raise ConnectionError("Redis went away")

        monkeypatch.setattr(reader._client(), "xrange", away)
        snapshot = await monitor.refresh()
        assert snapshot.sources[0].state == "stale" and [u.user_id for u in snapshot.users] == ["alice"]
        assert set(snapshot.extras) == {"alice"}
    finally:
        await reader.aclose()

"""Commands to the companions, against a real Redis: answered once per worker, idempotent, expiring; holds kept."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError
from usermetrics_nat.commands import COMMAND_FIELD, Command, CommandReader, Holds, Outcome, command_new
from usermetrics_nat.settings import ACL_COMMANDS_TAKING, acl_keys_taking

pytestmark = pytest.mark.redis


class Evictions:
    """A worker's evictions as a test scripts them: refused while ``busy``, counted when done."""

    def __init__(self) -> None:
        """Nothing busy, nothing evicted."""
        self.busy: dict[str, int] = {}
        self.done: list[str] = []

    async def __call__(self, user_id: str) -> tuple[str, str, int]:
        """Evict ``user_id`` unless busy."""
        if self.busy.get(user_id):
            return "refused", "busy", self.busy[user_id]
        self.done.append(user_id)
        return "done", "evicted", 0


def reader(redis: Redis, stream: str, evict: Evictions, holds: Holds | None = None) -> CommandReader:
    """Worker ``w:1``'s reader of ``stream``'s commands (reads do not wait)."""
    return CommandReader(redis, stream=stream, worker="w:1", holds=holds or Holds(), evict=evict, block=0.01)


async def send(redis: Redis, stream: str, command: Command) -> None:
    """Add ``command`` as usermetrics does."""
    await redis.xadd(f"{stream}:commands", {COMMAND_FIELD: command.model_dump_json()})


async def answers(redis: Redis, stream: str, command: Command) -> dict[str, Outcome]:
    """The answers to ``command`` so far, by worker."""
    raw = await redis.hgetall(f"{stream}:results:{command.id}")
    return {worker.decode(): Outcome.model_validate_json(doc) for worker, doc in raw.items()}


async def test_commands_are_carried_out_once_answered_and_expire(redis):
    stream, evict = f"{redis.test_prefix}:nat", Evictions()
    worker = reader(redis, stream, evict)
    await worker.catch_up()
    evict.busy["bob"] = 2
    now = datetime.now(UTC)
    sent = [
        command_new("evict", "alice", expires_in=timedelta(seconds=30)),
        command_new("evict", "bob", expires_in=timedelta(seconds=30)),
        command_new("hold", "carol", expires_in=timedelta(seconds=30), until=now + timedelta(minutes=5), by="ops"),
        Command(action="evict", user_id="dave", expires_at=now - timedelta(seconds=1)),
        command_new("release", "erin", expires_in=timedelta(seconds=30)),
    ]
    for command in sent:
        await send(redis, stream, command)
    await send(redis, stream, sent[0])  # the same command again: answered the same, not done twice
    await redis.xadd(f"{stream}:commands", {COMMAND_FIELD: b"{not a command"})  # skipped
    assert await worker.read_once() == 6
    got = [(await answers(redis, stream, c))["w:1"] for c in sent]
    assert [(o.status, o.in_flight) for o in got] == [
        ("done", 0), ("refused", 2), ("done", 0), ("expired", 0), ("absent", 0)
    ]  # fmt: skip
    assert evict.done == ["alice"] and "dave" not in evict.done
    hold = worker.holds.get("carol")
    assert hold is not None and hold.by == "ops" and 290 < hold.seconds_left(datetime.now(UTC)) <= 300
    assert 0 < await redis.ttl(f"{stream}:results:{sent[0].id}") <= 3600


async def test_commands_a_worker_that_starts_late_answers_the_live_commands_and_takes_up_running_holds(redis):
    """A worker gunicorn starts after commands were sent: those still within their delivery deadline are
    carried out and answered as if new; of the older ones, the holds still running are taken up and the
    evictions are not done again."""
    stream, evict = f"{redis.test_prefix}:nat", Evictions()
    now = datetime.now(UTC)
    long_ago = now - timedelta(minutes=10)  # delivered ten minutes before this worker started
    live = [
        command_new("hold", "bob", expires_in=timedelta(seconds=30), until=now + timedelta(minutes=5)),
        command_new("release", "bob", expires_in=timedelta(seconds=30)),
        command_new("evict", "carol", expires_in=timedelta(seconds=30)),
    ]
    for command in (
        Command(action="hold", user_id="alice", until=now + timedelta(minutes=50), expires_at=long_ago),
        Command(action="evict", user_id="dave", expires_at=long_ago),
        *live,
    ):
        await send(redis, stream, command)
    late = reader(redis, stream, evict)
    await late.catch_up()
    assert late.holds.get("alice") is not None and late.holds.get("bob") is None
    assert evict.done == ["carol"]  # not dave: that eviction was done (or not) when it was new
    assert [(await answers(redis, stream, c))["w:1"].status for c in live] == ["done", "done", "done"]
    assert await late.read_once() == 0  # nothing new
    await send(redis, stream, command_new("evict", "erin", expires_in=timedelta(seconds=30)))
    assert await late.read_once() == 1 and evict.done == ["carol", "erin"]


async def test_commands_work_for_a_redis_user_that_may_do_nothing_else(redis):
    stream = f"{redis.test_prefix}:acl"
    name = f"{redis.test_prefix}-taker"
    await redis.execute_command(
        "ACL", "SETUSER", name, "on", ">pw", "resetkeys", *acl_keys_taking(stream).split(), "resetchannels",
        *ACL_COMMANDS_TAKING.split(),
    )  # fmt: skip
    base = os.environ["REDIS_URL"].split("://", 1)[1].rpartition("@")[2]
    taker = Redis.from_url(f"redis://{name}:pw@{base}")
    try:
        evict = Evictions()
        worker = reader(taker, stream, evict)
        await worker.catch_up()
        command = command_new("evict", "alice", expires_in=timedelta(seconds=30))
        await send(redis, stream, command)
        assert await worker.read_once() == 1 and (await answers(redis, stream, command))["w:1"].status == "done"
        await taker.xadd(stream, {b"r": b"x"})  # it still reports
        with pytest.raises(NoPermissionError):
            await taker.xrange(stream)  # ... and still cannot read the reports
        with pytest.raises(NoPermissionError):
            await taker.xadd(f"{stream}:commands", {COMMAND_FIELD: b"{}"})  # nor give itself commands
    finally:
        await taker.aclose()
        await redis.execute_command("ACL", "DELUSER", name)

"""Commands to the companions (async, no NAT import): evict a user, hold or release its requests; the answers.

usermetrics adds a ``Command`` to the deployment's command stream (``<stream>:commands``); every
worker of the deployment reads every command (``XREAD``, no consumer group: each must act), carries
it out on its own session managers and writes its ``Outcome`` into the command's results hash
(``<stream>:results:<id>``, one field per worker, expiring), where usermetrics waits for them.

A command is idempotent (a worker answers a command id it has seen with the answer it gave) and
expires (``expires_at``): one that arrives late is answered "expired" and not carried out. A hold
is state more than an event: a worker that starts reads the stream from its start and takes up
every hold still running, so that a worker gunicorn starts later refuses the held user too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .report import utc_now

logger = logging.getLogger("usermetrics_nat")

COMMAND_FIELD = b"c"  # the command stream entry's one field
RESULTS_TTL = 3600  # seconds a command's results stay readable
SEEN_MAX = 1000  # command ids a worker remembers the answers of
READ_COUNT = 100


class Command(BaseModel):
    """One action on one user, for every worker of a deployment."""

    v: Literal[1] = 1
    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    action: Literal["evict", "hold", "release"]
    user_id: str = Field(max_length=1024)
    until: AwareDatetime | None = Field(default=None, description="hold: when the hold ends")
    expires_at: AwareDatetime = Field(description="A worker that reads it later does not carry it out")
    by: str = Field(default="", max_length=255, description="Who asked (shown with a hold)")
    reason: str = Field(default="", max_length=1000)
    deployment: str | None = Field(
        default=None, max_length=255, description="Whose workers carry it out (a stream may be shared); None: all"
    )


class Outcome(BaseModel):
    """One worker's answer to a command."""

    worker: str = Field(description="The worker's label (host:pid)")
    status: Literal["done", "refused", "absent", "expired", "failed"]
    message: str = ""
    in_flight: int = Field(default=0, ge=0, description="evict refused: the user's requests running or waiting")
    at: AwareDatetime


@dataclass(frozen=True)
class Hold:
    """Refuse the user's new requests until ``until``."""

    until: datetime
    by: str
    reason: str

    def seconds_left(self, now: datetime) -> float:
        """How long the hold still runs (0: over)."""
        return max(0.0, (self.until - now).total_seconds())


class Holds:
    """The holds a worker enforces, by user id; over ones are forgotten when next read."""

    def __init__(self) -> None:
        """None yet."""
        self._by_user: dict[str, Hold] = {}

    def get(self, user_id: str, now: datetime | None = None) -> Hold | None:
        """The user's running hold, if any."""
        hold = self._by_user.get(user_id)
        if hold is not None and hold.seconds_left(now or utc_now()) <= 0:
            del self._by_user[user_id]
            return None
        return hold

    def set(self, user_id: str, hold: Hold) -> None:
        """Hold the user (a new hold replaces the old)."""
        self._by_user[user_id] = hold

    def release(self, user_id: str) -> bool:
        """End the user's hold; False when it had none running."""
        return self._by_user.pop(user_id, None) is not None


# An eviction over a worker's session managers: (status, message, requests in flight).
Evict = Callable[[str], Awaitable[tuple[str, str, int]]]


class CommandReader:
    """Reads a deployment's commands in one worker and answers each."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str,
        worker: str,
        holds: Holds,
        evict: Evict,
        block: float,
        deployment: str | None = None,
    ) -> None:
        """Read ``<stream>:commands`` as worker ``worker`` of ``deployment`` (it leaves another deployment's commands
        alone: a stream may be shared, as reports are); ``block``: seconds one read waits for a command."""
        self.redis = redis
        self.deployment = deployment
        self.commands = f"{stream}:commands"
        self.results = f"{stream}:results:"
        self.worker = worker
        self.holds = holds
        self.evict = evict
        self.block = block
        self._seen: OrderedDict[str, Outcome] = OrderedDict()
        self._last_id = "0-0"
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._last_error: str | None = None

    async def catch_up(self) -> None:
        """Read the stream from its start: carry out and answer every command still within its delivery
        deadline (this worker started after it was sent), take up the holds still running of the older
        ones; then read new commands from its end."""
        entries = await self.redis.xrange(self.commands, min="-", max="+")
        now = utc_now()
        for entry_id, fields in entries:
            self._last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            command = self._parse(fields)
            if command is None:
                continue
            if command.expires_at > now:
                await self._apply(command, now, answer=True)  # still wanted: as if it had just arrived
            elif command.action != "evict":  # an old eviction acted once, when it was new
                await self._apply(command, now, answer=False, replay=True)

    async def read_once(self) -> int:
        """Answer every command added since the last read (waiting up to ``block`` for one); how many."""
        reply = await self.redis.xread({self.commands: self._last_id}, count=READ_COUNT, block=int(self.block * 1000))
        done = 0
        for _, entries in reply or []:
            for entry_id, fields in entries:
                self._last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                command = self._parse(fields)
                if command is not None:
                    await self._apply(command, utc_now(), answer=True)
                    done += 1
        return done

    def _parse(self, fields: dict[bytes, bytes]) -> Command | None:
        """The entry's command, when it validates and is for this worker's deployment (else None: left alone)."""
        try:
            command = Command.model_validate_json(fields.get(COMMAND_FIELD, b""))
        except ValidationError as exc:
            logger.warning("usermetrics companion: a command that does not validate was skipped (%s)", exc.errors()[:1])
            return None
        if None not in (command.deployment, self.deployment) and command.deployment != self.deployment:
            return None  # another deployment's, on a shared stream: neither carried out nor answered here
        return command

    async def _apply(self, command: Command, now: datetime, *, answer: bool, replay: bool = False) -> None:
        outcome = self._seen.get(command.id)
        if outcome is None:
            outcome = await self._carry_out(command, now, replay=replay)
            self._seen[command.id] = outcome
            while len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
        if answer:
            key = self.results + command.id
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, self.worker, outcome.model_dump_json())
                pipe.expire(key, RESULTS_TTL)
                await pipe.execute()

    async def _carry_out(self, command: Command, now: datetime, *, replay: bool = False) -> Outcome:
        """Carry ``command`` out; ``replay``: read again at start-up, where a hold counts until its end
        (its delivery deadline long past) and a release ends it."""

        def outcome(status: str, message: str = "", in_flight: int = 0) -> Outcome:
            return Outcome(worker=self.worker, status=status, message=message, in_flight=in_flight, at=utc_now())

        if command.expires_at <= now and not replay:
            return outcome("expired", f"expired at {command.expires_at.isoformat()} before this worker read it")
        try:
            if command.action == "evict":
                return outcome(*await self.evict(command.user_id))
            if command.action == "hold":
                until = command.until or now
                if until <= now:
                    return outcome("refused", "the hold's end is already past")
                self.holds.set(command.user_id, Hold(until=until, by=command.by, reason=command.reason))
                return outcome("done", f"held until {until.isoformat()}")
            released = self.holds.release(command.user_id)
            return outcome("done" if released else "absent", "released" if released else "no hold was running")
        except Exception as exc:  # one command that fails never ends the reading, nor NAT
            logger.exception("usermetrics companion: command %s %s failed", command.action, command.id)
            return outcome("failed", f"{type(exc).__name__}: {exc}")

    async def run(self) -> None:
        """Catch up, then answer commands until stopped; Redis away: try again each ``block``."""
        caught_up = False
        while not self._stop.is_set():
            try:
                if not caught_up:
                    await self.catch_up()
                    caught_up = True
                await self.read_once()
                self._last_error = None
            except (RedisError, OSError) as exc:
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    logger.warning("usermetrics companion: cannot read commands (%s); trying again", message)
                self._last_error = message
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.block)
                except TimeoutError:
                    pass

    def start(self) -> None:
        """Read in a task of the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="usermetrics-commands")

    async def stop(self) -> None:
        """Stop reading (a read in progress is cancelled: it only waits)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def command_new(
    action: Literal["evict", "hold", "release"],
    user_id: str,
    *,
    expires_in: timedelta,
    until: datetime | None = None,
    by: str = "",
    reason: str = "",
    deployment: str | None = None,
) -> Command:
    """A new command (its own id), valid for ``expires_in`` from now, for ``deployment``'s workers (None: all)."""
    return Command(
        action=action,
        user_id=user_id,
        until=until,
        expires_at=utc_now() + expires_in,
        by=by,
        reason=reason,
        deployment=deployment,
    )

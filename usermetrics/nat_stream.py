"""NAT companions' Redis stream as a source (async, no Django): every worker of a NAT deployment, merged.

Configured as a source whose URL is Redis (``NAT_SOURCES="nat=redis://host:6379/0"``): the
companion in each NAT worker adds its reports to a stream there (``usermetrics_nat``), and this
source reads them as a member of a consumer group (``XREADGROUP``), acknowledging each report once
applied. Only the leading producer reads. A producer that takes over (the leader was SIGKILLed
with reports read but not acknowledged) first reads the whole bounded stream to rebuild every
worker's state, then claims what the dead one left pending (``XAUTOCLAIM``): reports are numbered
per worker and applied once (``workers.Workers``), so nothing is counted twice. An entry that is
garbage, too large, of another version or of another deployment is skipped, counted and logged
once; it never stops a refresh. Redis unreachable: ``fetch`` raises, and the monitor says the
source is stale, then down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from usermetrics_nat.report import FIELD, BadReport, decode

from usermetrics.extras import Extras
from usermetrics.metrics import PerUserMonitorResponse
from usermetrics.workers import Workers

logger = logging.getLogger(__name__)

GROUP = "usermetrics"
# What the producer needs of Redis to read a companion stream (an ACL user may have only these, on
# only the stream's key): read it whole when it takes over, read and acknowledge as a group member,
# claim what a dead reader left, and make the group.
ACL_COMMANDS = "-@all +select +xrange +xreadgroup +xack +xautoclaim +xgroup|create +xgroup|setid"
READ_COUNT = 500  # entries per XREADGROUP / XRANGE call
DEFAULT_MAX_REPORT_BYTES = 64 * 1024 * 1024


def stream_key(name: str, *, stream: str | None = None, deployment: str | None = None) -> str:
    """Source ``name``'s companion stream key: ``stream``, else ``usermetrics:nat:<deployment or name>``."""
    return stream or f"usermetrics:nat:{deployment or name}"


def without_credentials(url: str) -> str:
    """``url`` without a user name or password (what pages, logs and the API may show)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class NatStreamSource:
    """A NAT deployment's companion stream in Redis: its workers' reports, each user merged into one row."""

    kind = "nat-stream"
    times_utc = True  # the companions send aware UTC times
    timezone = None

    def __init__(
        self,
        name: str,
        url: str,
        *,
        stream: str | None = None,
        deployment: str | None = None,
        timeout: float = 5.0,
        interval: float = 2.0,
        per_user_workflow_timeout: timedelta | None = None,
        max_report_bytes: int = DEFAULT_MAX_REPORT_BYTES,
        consumer: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read the stream ``stream`` (default ``usermetrics:nat:<deployment>``) of Redis ``url``.

        ``deployment`` (default: the source's name) is the only one whose reports count;
        ``interval`` is the producer's: a reader idle for three of them has lost its place.
        """
        self.name = name
        self.url = without_credentials(url)  # shown with the source's health
        self._connect_to = url
        self.deployment = deployment or name
        self.stream = stream_key(name, stream=stream, deployment=deployment)
        self.timeout = timeout
        self.interval = interval
        self.per_user_workflow_timeout = per_user_workflow_timeout
        self.max_report_bytes = max_report_bytes
        # Named after this process: what it leaves pending when it dies is plainly whose.
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.state = Workers(self.deployment)
        self.last_body_bytes: int | None = None
        self._redis: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_at: float | None = None

    def __repr__(self) -> str:
        """Name and stream; never the URL, which may hold a password."""
        return f"NatStreamSource({self.name!r}, stream={self.stream!r})"

    def _client(self) -> Redis:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            self._redis = Redis.from_url(
                self._connect_to, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            self._loop = loop
        return self._redis

    async def fetch(self) -> PerUserMonitorResponse:
        """Apply every report not read yet (rebuilding first after a takeover); every user, merged."""
        redis = self._client()
        if self._read_at is None or self.clock() - self._read_at > 3 * self.interval:
            await self._rebuild(redis)  # first read, or this reader lost its place: start over
        # Its own unacknowledged reports first (a fetch cut short), then a dead reader's, then new ones:
        # a worker's reports are applied in their order, so none is taken for a duplicate.
        size = await self._read_group(redis, "0") + await self._claim(redis) + await self._read_group(redis, ">")
        self.state.end_silent(self.clock())
        users = self.state.rows()
        self.last_body_bytes = size or self.last_body_bytes
        # Read through to here: a long fetch (a rebuild) does not count as having lost the place.
        self._read_at = self.clock()
        return PerUserMonitorResponse.model_construct(
            timestamp=datetime.now(UTC), total_active_users=len(users), users=users
        )

    def extras(self) -> Mapping[str, Extras]:
        """Each user's merged extras as of the last fetch."""
        return self.state.extras()

    def workers_summary(self) -> list[dict[str, Any]]:
        """The deployment's workers, running and recently ended (the sources page's table)."""
        return self.state.summary(self.clock())

    def skipped_by_kind(self) -> dict[str, int]:
        """Stream entries and lines skipped so far, by kind (garbage, too large, another deployment...)."""
        return dict(self.state.skipped.by_kind)

    # -- reading -------------------------------------------------------------------------------

    def _apply(self, fields: Mapping[bytes, bytes], *, replay: bool = False) -> int:
        """Apply one stream entry; its size (0: skipped). ``replay``: read again from the stream's start,
        so its worker was last heard of when the report was sent, not now, and workers silent by then end."""
        payload = fields.get(FIELD)
        if not isinstance(payload, bytes):
            self.state.skipped.add("an entry without a report", repr(sorted(fields))[:100])
            return 0
        try:
            header, lines = decode(payload, max_bytes=self.max_report_bytes)
        except BadReport as exc:
            self.state.skipped.add("an entry that is not a report", str(exc))
            return 0
        now = self.clock()
        if replay:
            now -= max(0.0, (datetime.now(UTC) - header.sent_at).total_seconds())
            self.state.end_silent(now)  # as the live reader would have, before this report arrived
        try:
            self.state.apply(header, lines, now)
        except Exception as exc:  # a report that validates but cannot be applied never stops a refresh
            logger.exception("Companion stream %s: a report could not be applied", self.stream)
            self.state.skipped.add("a report that could not be applied", f"{type(exc).__name__}: {exc}")
            return 0
        return len(payload)

    async def _rebuild(self, redis: Redis) -> None:
        """Every worker's state from the whole (bounded) stream; then read as a member of the group."""
        self.state.reset()
        try:
            await redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        start, last = "-", None
        while True:
            entries = await redis.xrange(self.stream, min=start, max="+", count=READ_COUNT)
            for entry_id, fields in entries:
                self._apply(fields, replay=True)
                last = entry_id
            if len(entries) < READ_COUNT:
                break
            start = "(" + entries[-1][0].decode()
            await asyncio.sleep(0)  # a long stream: let the producer's other work run between batches
        if last is not None:
            # Read as delivered to the group: what a dead reader left pending stays claimable.
            await redis.xgroup_setid(self.stream, GROUP, id=last)

    async def _claim(self, redis: Redis) -> int:
        """Take over the reports another reader of the group read and never acknowledged (it died)."""
        size = 0
        start = "0-0"
        while True:
            reply = await redis.xautoclaim(
                self.stream,
                GROUP,
                self.consumer,
                min_idle_time=int(self.interval * 1000),
                start_id=start,
                count=READ_COUNT,
            )
            start, entries = reply[0], reply[1]
            ids = [entry_id for entry_id, fields in entries if fields is not None]
            for _, fields in entries:
                if fields is not None:  # None: trimmed from the stream meanwhile
                    size += self._apply(fields)
            if ids:
                await redis.xack(self.stream, GROUP, *ids)
            if start in (b"0-0", "0-0"):
                return size

    async def _read_group(self, redis: Redis, start: str) -> int:
        """Read as this member of the group, applying and acknowledging each report in order: from ``"0"``,
        what was delivered to this reader and never acknowledged (a fetch cut short); from ``">"``,
        every report no reader of the group has had yet."""
        size = 0
        while True:
            reply = await redis.xreadgroup(GROUP, self.consumer, {self.stream: start}, count=READ_COUNT)
            entries = reply[0][1] if reply else []
            for _, fields in entries:
                if fields:  # empty: trimmed from the stream meanwhile, only acknowledged
                    size += self._apply(fields)
            if entries:
                await redis.xack(self.stream, GROUP, *(entry_id for entry_id, _ in entries))
            if len(entries) < READ_COUNT:
                return size

    async def aclose(self) -> None:
        """Close the connection."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

"""Data sources (async, no Django): things with a name that fetch a PerUserMonitorResponse.

A source may be slow, fail or hang; the monitor calls ``fetch()`` with a timeout and keeps the
last good answer, so a source only has to answer truthfully or raise. ``LocalSource`` is the
collector over an in-process session manager; NAT servers over HTTP are ``nat.NatHttpSource``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta, tzinfo
from typing import Any, Protocol, runtime_checkable

from usermetrics.extras import Extras, extras_from_meters
from usermetrics.metrics import PerUserMetricsCollector, PerUserMonitorResponse, SessionManagerLike

logger = logging.getLogger(__name__)


@runtime_checkable
class Source(Protocol):
    """A named producer of NAT-shaped per-user metrics."""

    name: str
    kind: str
    # Zone of the source's naive timestamps (NAT reports naive local time); None: the dashboard's.
    timezone: tzinfo | None
    # The source's per_user_workflow_timeout when known (to say when an idle user is evicted).
    per_user_workflow_timeout: timedelta | None
    # Optional ``times_utc = True``: every record's times are aware UTC already, so the monitor
    # does not look at each one again (NatHttpSource converts as it parses).

    async def fetch(self) -> PerUserMonitorResponse:
        """Return every user the source knows of now, or raise."""
        ...


class LocalSource:
    """The collector over an in-process session manager (ours, or NAT's own)."""

    kind = "local"

    def __init__(
        self,
        name: str,
        session_manager: SessionManagerLike,
        *,
        workload: object | None = None,
        timezone: tzinfo | None = None,
    ) -> None:
        """Collect from ``session_manager``; ``workload`` (a DemoWorkload) is run by ``start()``."""
        self.name = name
        self.session_manager = session_manager
        self.collector = PerUserMetricsCollector(session_manager)
        self.workload = workload
        self.timezone = timezone
        timeout = getattr(session_manager, "per_user_workflow_timeout", None)
        self.per_user_workflow_timeout: timedelta | None = timeout if isinstance(timeout, timedelta) else None
        self._workload_task: asyncio.Task[None] | None = None
        self._extras: dict[str, tuple[tuple[Any, ...], Extras]] = {}

    async def fetch(self) -> PerUserMonitorResponse:
        """Collect every user's metrics under the session manager's lock."""
        return await self.collector.collect_all_metrics()

    def extras(self) -> Mapping[str, Extras] | None:
        """Each user's latency histogram and queue, when the session manager meters them (``stats_of``).

        Ours does (``runtime``), and so does the NAT companion's; a user whose meters did not move
        keeps the very same ``Extras`` (the board reuses what it packed of it).
        """
        stats_of = getattr(self.session_manager, "stats_of", None)
        if stats_of is None:
            return None
        before, now = self._extras, {}
        for user_id in list(self.session_manager._per_user_builders):
            stats = stats_of(user_id)
            if stats is None:
                continue
            key = stats.fingerprint()
            hit = before.get(user_id)
            now[user_id] = hit if hit is not None and hit[0] == key else (key, extras_from_meters(stats))
        self._extras = now
        return {user_id: extras for user_id, (_, extras) in now.items()}

    async def start(self) -> None:
        """Start the session manager's cleanup and the workload, if any, on the running loop."""
        start = getattr(self.session_manager, "start", None)
        if callable(start):
            start()
        run = getattr(self.workload, "run", None)
        if callable(run) and (self._workload_task is None or self._workload_task.done()):
            self._workload_task = asyncio.get_running_loop().create_task(run(), name=f"workload-{self.name}")

    async def aclose(self) -> None:
        """Stop the workload and close the session manager."""
        if self._workload_task is not None:
            self._workload_task.cancel()
            await asyncio.gather(self._workload_task, return_exceptions=True)
            self._workload_task = None
        cancel = getattr(self.workload, "cancel", None)
        if callable(cancel):
            await cancel()
        aclose = getattr(self.session_manager, "aclose", None)
        if callable(aclose):
            await aclose()

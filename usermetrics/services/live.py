"""Live data (async): the process's monitor service, its snapshots, names and the feed, for the faces.

One ``MonitorService`` per process, built from the settings on first use (``set_service`` swaps it
in tests). Faces never reach behind these functions.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, TextIO

from asgiref.sync import sync_to_async

from usermetrics import identities
from usermetrics.feed.producer import FeedProducer
from usermetrics.history.flags import users_flags
from usermetrics.history.recorder import Recorder
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.monitor import MonitorService
from usermetrics.selection import ViewSpec
from usermetrics.snapshot import Snapshot, iso

from .assembly import service_build

VERSION = "0.1.0"

_service: MonitorService | None = None
_recorder: Recorder | None = None


def get_service() -> MonitorService:
    """The process's service, built from the settings on first use (with the history recorder)."""
    global _service, _recorder
    if _service is None:
        _service, _recorder = service_build()
    return _service


def set_service(service: MonitorService | None) -> MonitorService | None:
    """Install ``service`` as the process's service (None: rebuild from settings); return the old one."""
    global _service, _recorder
    previous, _service, _recorder = _service, service, None
    return previous


def recorder_get() -> Recorder | None:
    """The process's history recorder (None: the history is off, or the service was installed by hand)."""
    return _recorder


async def service_start() -> None:
    """Start the process's service: the sources' own work and the periodic refresh."""
    await get_service().start()


async def snapshot_get(*, max_age: float | None = None) -> Snapshot:
    """The current snapshot, refreshed when older than the refresh interval."""
    return await get_service().snapshot(max_age=max_age)


async def snapshot_latest() -> Snapshot:
    """The latest snapshot as it is (the feed's); a refresh only before the very first one."""
    service = get_service()
    return service.last_snapshot or await service.snapshot()


async def user_metrics_list(*, user_id: str | None = None) -> PerUserMonitorResponse:
    """Every user as a NAT-shaped response; with ``user_id``, that user only (empty when unknown)."""
    snapshot = await snapshot_get()
    if user_id is None:
        return snapshot.response()
    usage = snapshot.by_id.get(user_id)
    return snapshot.response([usage] if usage is not None else [])


async def user_metrics_get(*, user_id: str) -> PerUserResourceUsage | None:
    """One user's merged metrics, or None when no source reports it."""
    return (await snapshot_get()).by_id.get(user_id)


async def source_status() -> dict[str, Any]:
    """Health of every source, the last refresh time, the refresh interval and the version."""
    service = get_service()
    snapshot = await service.snapshot()
    return {
        "version": VERSION,
        "refresh_interval": service.interval,
        "source_timeout": service.timeout,
        "source_down_after": service.down_after,
        "last_refresh": iso(snapshot.timestamp),
        "seq": snapshot.seq,
        "total_users": len(snapshot.users),
        "sources": [h.as_dict() for h in snapshot.sources],
    }


def labels_get() -> dict[str, str]:
    """Registered names, ``user_id -> label`` (sync; cached, read at most every 30 s)."""
    return identities.identity_labels()


async def labels_aget() -> Mapping[str, str]:
    """Registered names (async)."""
    return await identities.identity_labels_aget()


def identities_import(*, rows: TextIO) -> identities.ImportResult:
    """Register every ``label,kind,value`` line of a CSV; all lines or none (``importidentities``)."""
    return identities.identities_import(rows=rows)


# --- the feed --------------------------------------------------------------------------------------


async def flag_names(snapshot: Snapshot) -> dict[str, list[str]]:
    """Every user's flag names (the feed's flag-filtered views)."""
    flags = await sync_to_async(users_flags)(snapshot)
    return {uid: [f.name for f in fl] for uid, fl in flags.items()}


_producers: weakref.WeakKeyDictionary[MonitorService, FeedProducer] = weakref.WeakKeyDictionary()


def feed_producer() -> FeedProducer:
    """The feed's producer of the process's service (listening to its refreshes from the first call)."""
    service = get_service()
    producer = _producers.get(service)
    if producer is None:
        # The producer holds no reference to the service, so a replaced service can be collected.
        producer = _producers[service] = FeedProducer(labels=labels_aget, flags=flag_names)
        service.add_listener(producer.publish)
    return producer


def feed_subscribe(channel: str, *, spec: ViewSpec | None = None, user_id: str | None = None) -> str:
    """Move ``channel`` to a list view or one user's view; returns that view's group."""
    return feed_producer().subscribe(channel, spec=spec, user_id=user_id)


def feed_unsubscribe(channel: str) -> None:
    """Forget ``channel`` (it closed)."""
    feed_producer().unsubscribe(channel)


async def feed_frame(group: str) -> str:
    """The full frame of ``group``'s view for the latest snapshot (a new subscriber's first frame)."""
    return await feed_producer().frame_for(group, await snapshot_latest())

"""Assembly (sync and async): the monitor and the producer that the settings describe, and running one."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Mapping

from channels.layers import BaseChannelLayer, channel_layers
from redis.asyncio import Redis

from usermetrics import identities
from usermetrics.alerts.engine import AlertEngine
from usermetrics.conf import Config, get_config
from usermetrics.demo import demo_session_manager
from usermetrics.feed.subscriptions import Subscription, SubscriptionDirectory, SubscriptionRegistry, face_channel
from usermetrics.history.recorder import Recorder
from usermetrics.monitor import MonitorService
from usermetrics.nat import nat_sources_build
from usermetrics.pricing import aprice_table_get
from usermetrics.sources import LocalSource, Source

from .bus import LocalBus, RedisBus
from .child import ParentLink, stop_with_stdin
from .flag_tracker import FlagTracker
from .lease import LocalLease, RedisLease
from .producer import Producer, Sender

ONE_FACE = "local"  # the name of the one face of a process that has its producer in itself or its child


def monitor_build(*, config: Config | None = None) -> MonitorService:
    """The configured sources (NAT servers, and the demo when it is on) behind one monitor."""
    cfg = config or get_config()
    sources: list[Source] = list(
        nat_sources_build(cfg.sources, default_timeout=cfg.source_timeout, interval=cfg.refresh_interval)
    )
    if cfg.demo.enabled:
        demo = cfg.demo
        manager, workload = demo_session_manager(
            users=demo.users,
            seed=demo.seed,
            timeout_seconds=demo.timeout,
            cleanup_seconds=demo.cleanup_interval,
            extra_users=demo.extra_users,
        )
        sources.append(LocalSource("demo", manager, workload=workload))
    return MonitorService(
        sources, interval=cfg.refresh_interval, timeout=cfg.source_timeout, down_after=cfg.source_down_after
    )


def redis_client(config: Config | None = None) -> Redis:
    """A Redis client for the running loop (each loop needs its own)."""
    cfg = config or get_config()
    return Redis.from_url(cfg.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)


def process_name(kind: str) -> str:
    """A name for this process's producer or face, unique across restarts."""
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def producer_build(
    *,
    monitor: MonitorService,
    bus: LocalBus | RedisBus | ParentLink,
    lease: LocalLease | RedisLease,
    subscriptions: SubscriptionRegistry | SubscriptionDirectory | ParentLink,
    send: Sender,
    record: bool = True,
    alert: bool = True,
    name: str | None = None,
    config: Config | None = None,
) -> Producer:
    """A producer around ``monitor``: history recorded when it is on (and ``record``), flags tracked,
    alerts evaluated when they are on (and ``alert``)."""
    cfg = config or get_config()

    async def held() -> Mapping[str, Mapping[str, Subscription]]:
        # By face: through Redis every face's own; in one process (or a child) the one face's.
        if isinstance(subscriptions, SubscriptionRegistry):
            return {ONE_FACE: subscriptions.subscriptions()}
        if isinstance(subscriptions, ParentLink):
            return {ONE_FACE: await subscriptions.subscriptions()}
        return await subscriptions.collect_faces()

    recorder = Recorder(cfg.history) if record and cfg.history.enabled else None
    return Producer(
        monitor,
        bus=bus,
        lease=lease,
        subscriptions=held,
        send=send,
        labels=identities.identity_labels_aget,  # the producer's frames carry the page's names
        prices=aprice_table_get,  # and a user's cost
        recorder=recorder,
        flag_tracker=FlagTracker(),
        alerts=AlertEngine(cfg.alerts) if alert and cfg.alerts.enabled else None,
        name=name or process_name("producer"),
    )


def layer_sender(layer: BaseChannelLayer) -> Sender:
    """Each face's frames messages sent on ``layer`` to the face's own channel, from the running loop."""

    async def send(face: str, message: dict[str, object]) -> None:
        await layer.send(face_channel(face), message)

    return send


async def redis_producer(*, monitor: MonitorService | None = None, record: bool = True) -> Producer:
    """A producer publishing through Redis, leading on a Redis lease (``runmonitor``, or embedded with Redis)."""
    cfg = get_config()
    redis = redis_client(cfg)
    name = process_name("producer")
    return producer_build(
        monitor=monitor or monitor_build(config=cfg),
        bus=RedisBus(redis, prefix=cfg.redis_prefix),
        lease=RedisLease(redis, holder=name, ttl=2 * cfg.refresh_interval, key=f"{cfg.redis_prefix}:leader"),
        subscriptions=SubscriptionDirectory(redis, prefix=cfg.redis_prefix),
        # The producer's own layer instance: the process's one belongs to the serving side.
        send=layer_sender(channel_layers.make_backend("default")),
        record=record,
        name=name,
        config=cfg,
    )


async def producer_run(producer: Producer, *, embedded: bool = False, parent: ParentLink | None = None) -> None:
    """Run ``producer`` in the foreground until SIGINT or SIGTERM (it then stops cleanly).

    ``embedded``: also stop when stdin closes (the Daphne that started this process is gone);
    ``parent``: also stop when the link to that Daphne closes.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watchers = [loop.create_task(stop_with_stdin(stop))] if embedded else []
    if parent is not None:
        gone = loop.create_task(parent.closed.wait())
        gone.add_done_callback(lambda _: stop.set())
        watchers.append(gone)
    try:
        await producer.run(stop)
    finally:
        for watcher in watchers:
            watcher.cancel()


async def child_producer(path: str) -> tuple[Producer, ParentLink]:
    """The embedded default's producer without Redis, in the child its Daphne started (``runmonitor --parent``).

    Boards and frames go to the parent over ``path``; it says what its sockets subscribe to.
    """
    link = await ParentLink.connect(path)
    producer = producer_build(
        monitor=monitor_build(),
        bus=link,
        lease=LocalLease(),
        subscriptions=link,
        send=link.send,
        name=process_name("producer"),
    )
    return producer, link

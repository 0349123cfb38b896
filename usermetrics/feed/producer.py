"""The live feed's producer (async): per refresh, one frame per subscribed view, sent to its group.

Consumers register their channel for a view; after each refresh the producer builds each
subscribed view's frame once, serializes it once and ``group_send``s the text, whatever the
number of clients on that view. Names and lifecycle flags come from providers the service layer
passes in, so the feed reads no database itself.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from channels.layers import BaseChannelLayer, get_channel_layer

from usermetrics.conf import get_config
from usermetrics.selection import FLAG_STATES, Summary, ViewSpec, summary_get
from usermetrics.snapshot import Snapshot

from .frames import list_frame, user_frame

logger = logging.getLogger(__name__)

EVENT_TYPE = "metrics.update"
# Seconds between two reads of every user's lifecycle flags by the producer (flag-filtered views).
FLAGS_REFRESH = 30.0

LabelsProvider = Callable[[], Awaitable[Mapping[str, str]]]
FlagsProvider = Callable[[Snapshot], Awaitable[dict[str, list[str]]]]


async def _no_labels() -> Mapping[str, str]:
    return {}


async def _no_flags(snapshot: Snapshot) -> dict[str, list[str]]:
    return {}


@dataclass
class _View:
    """A view somebody subscribed to, with the channels subscribed to it."""

    group: str
    spec: ViewSpec | None  # None: the per-user view
    user_id: str | None
    channels: set[str] = field(default_factory=set)
    # (seq, text) of the last frame built, so late joiners within a tick reuse it.
    frame: tuple[int, str] | None = None
    # User ids of the last page sent, to tell which of them vanished from every source.
    last_ids: list[str] = field(default_factory=list)


def group_name(kind: str, key: str) -> str:
    """A valid Channels group name for a view (ASCII, under 100 characters)."""
    return f"usermetrics.{kind}.{hashlib.sha256(key.encode()).hexdigest()[:40]}"


class FeedProducer:
    """Per refresh: one frame per subscribed view, serialized once, sent to the view's group."""

    def __init__(
        self,
        *,
        layer: BaseChannelLayer | None = None,
        labels: LabelsProvider = _no_labels,
        flags: FlagsProvider = _no_flags,
    ) -> None:
        """Publish on ``layer`` (default: the configured channel layer), naming users with ``labels()``
        and reading every user's flag names with ``flags(snapshot)`` for flag-filtered views."""
        self._layer = layer
        self._labels = labels
        self._flags_provider = flags
        self._views: dict[str, _View] = {}
        self._channel_group: dict[str, str] = {}
        # How many frames were serialized; tests count it to prove one per view per tick.
        self.frames_built = 0
        # (monotonic time, user id -> flag names), read at most every FLAGS_REFRESH seconds and only
        # while a view filters by a flag.
        self._flags: tuple[float, dict[str, list[str]]] | None = None

    @property
    def layer(self) -> BaseChannelLayer:
        """The channel layer frames go out on."""
        if self._layer is None:
            self._layer = get_channel_layer()
        return self._layer

    def views(self) -> dict[str, int]:
        """Subscribed groups and how many channels each has."""
        return {g: len(v.channels) for g, v in self._views.items()}

    def subscribe(self, channel: str, *, spec: ViewSpec | None = None, user_id: str | None = None) -> str:
        """Register ``channel`` for a list view (``spec``) or a user; returns the view's group name.

        A channel has one view at a time: subscribing again moves it.
        """
        if (spec is None) == (user_id is None):
            raise ValueError("subscribe to exactly one of spec or user_id")
        self.unsubscribe(channel)
        group = group_name("view", spec.key) if spec is not None else group_name("user", user_id or "")
        view = self._views.get(group)
        if view is None:
            view = self._views[group] = _View(group=group, spec=spec, user_id=user_id)
        view.channels.add(channel)
        self._channel_group[channel] = group
        return group

    def unsubscribe(self, channel: str) -> str | None:
        """Forget ``channel``; a view nobody watches is dropped. Returns the group it left."""
        group = self._channel_group.pop(channel, None)
        if group is None:
            return None
        view = self._views.get(group)
        if view is not None:
            view.channels.discard(channel)
            if not view.channels:
                del self._views[group]
        return group

    async def labels(self) -> Mapping[str, str]:
        """Registered names; none while they cannot be read (names are a nicety, numbers are not)."""
        try:
            return await self._labels()
        except Exception:
            logger.warning("Identity labels unavailable; sending frames without names", exc_info=True)
            return {}

    async def flags_refresh(self, snapshot: Snapshot) -> None:
        """Read every user's flags again when a view filters by one and the last read is old.

        One read per FLAGS_REFRESH seconds for the whole process, whatever the number of clients;
        flag membership may lag that long behind the numbers on the rows.
        """
        if not any(v.spec is not None and v.spec.state in FLAG_STATES for v in self._views.values()):
            return
        if self._flags is not None and time.monotonic() - self._flags[0] < FLAGS_REFRESH:
            return
        try:
            names = await self._flags_provider(snapshot)
        except Exception:
            logger.warning("Lifecycle flags unavailable; flag views show their last known flags", exc_info=True)
            names = self._flags[1] if self._flags is not None else {}
        self._flags = (time.monotonic(), names)

    async def frame_for(self, group: str, snapshot: Snapshot) -> str:
        """A full frame of the view for ``snapshot``: the one built this tick if any, else built now."""
        view = self._views[group]
        if view.frame is not None and view.frame[0] == snapshot.seq:
            return view.frame[1]
        await self.flags_refresh(snapshot)
        return self._build(view, snapshot, gone=[], labels=await self.labels())

    def _build(
        self,
        view: _View,
        snapshot: Snapshot,
        *,
        gone: list[str],
        labels: Mapping[str, str],
        summary: Summary | None = None,
    ) -> str:
        self.frames_built += 1
        config = get_config()
        if view.spec is not None:
            flags = self._flags[1] if self._flags is not None else None
            text, result = list_frame(
                snapshot,
                view.spec,
                budget=config.feed_max_frame_bytes,
                summary=summary,
                gone=gone,
                labels=labels,
                flags=flags,
            )
            view.last_ids = [u.user_id for u in result.users]
        else:
            user_id = view.user_id or ""
            text = user_frame(
                snapshot,
                user_id,
                budget=config.feed_max_frame_bytes,
                stuck_after=config.flags.stuck_after,
                label=labels.get(user_id),
            )
        view.frame = (snapshot.seq, text)
        return text

    async def publish(self, snapshot: Snapshot) -> None:
        """The monitor's listener: build every subscribed view once and send it to its group."""
        if not self._views:
            return
        summary = summary_get(snapshot)  # once per tick, shared by every list view
        labels = await self.labels()
        await self.flags_refresh(snapshot)
        for view in list(self._views.values()):
            if view.frame is not None and view.frame[0] == snapshot.seq:
                text = view.frame[1]  # a late joiner already built this tick's frame
            else:
                gone = [uid for uid in view.last_ids if uid not in snapshot.by_id]
                text = self._build(view, snapshot, gone=gone, labels=labels, summary=summary)
            # The text, not a dict: the in-memory layer deep-copies each event per channel.
            await self.layer.group_send(view.group, {"type": EVENT_TYPE, "text": text})

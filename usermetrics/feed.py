"""Views of a snapshot and the live feed's producer (sync selection, async publishing).

One place decides what "page 2 of the active users sorted by errors" means: ``ViewSpec`` parses
and normalizes the parameters (query string or websocket subscription alike) and
``view_select`` applies them to a ``Snapshot``. The HTML list view and the websocket producer
both call it, so a page and its live updates always agree.

Frames are ``PerUserMonitorResponse`` documents with the feed's metadata as extra top-level keys
(``type``, ``seq``, ``view``, ``summary``, ``sources``, ``stale``, ``gone``, ``labels``; for one
user ``origins``, ``label`` and ``evicted_at``).
``FeedProducer`` listens to the service: after each refresh it builds each subscribed view's
frame once, serializes it once and ``group_send``s the text to that view's group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer

from usermetrics.identities import identity_labels_aget
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.services import MonitorService, Snapshot, SourceHealth

logger = logging.getLogger(__name__)

PAGE_SIZES = (25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = PAGE_SIZES[-1]
DEFAULT_SORT = "-last_activity"
MAX_QUERY_LENGTH = 200
EVENT_TYPE = "metrics.update"
# Seconds between two reads of every user's lifecycle flags by the producer (flag-filtered views).
FLAGS_REFRESH = 30.0

# Sort keys are the seed's field names; each reads one value off a PerUserResourceUsage.
SORT_KEYS: dict[str, Callable[[PerUserResourceUsage], Any]] = {
    "user_id": lambda u: u.user_id,
    "created_at": lambda u: u.session.created_at,
    "last_activity": lambda u: u.session.last_activity,
    "ref_count": lambda u: u.session.ref_count,
    "is_active": lambda u: u.session.is_active,
    "total_requests": lambda u: u.requests.total_requests,
    "active_requests": lambda u: u.requests.active_requests,
    "avg_latency_ms": lambda u: u.requests.avg_latency_ms,
    "error_count": lambda u: u.requests.error_count,
    "per_user_functions_count": lambda u: u.memory.per_user_functions_count,
    "per_user_function_groups_count": lambda u: u.memory.per_user_function_groups_count,
    "exit_stack_size": lambda u: u.memory.exit_stack_size,
}

STATES: dict[str, Callable[[PerUserResourceUsage], bool]] = {
    "active": lambda u: u.session.is_active,
    "idle": lambda u: not u.session.is_active,
    "errors": lambda u: u.requests.error_count > 0,
}
# States that are lifecycle flags (usermetrics.history.user_flags): the caller passes the flags.
FLAG_STATES = ("stuck", "rising", "erroring")
# Users that left: not in any snapshot, read from the history store by the caller.
ENDED = "ended"
ALL_STATES = (*STATES, *FLAG_STATES, ENDED)
# Windows of the list's rates (usermetrics.history.RATE_WINDOWS); part of the view so links keep it.
RATE_WINDOWS = ("5m", "1h", "24h")
DEFAULT_WINDOW = "1h"


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class ViewSpec:
    """What a client looks at: a page of the users, sorted, searched and filtered."""

    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    sort: str = DEFAULT_SORT
    q: str = ""
    state: str = ""
    window: str = DEFAULT_WINDOW

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ViewSpec:
        """Normalize untrusted parameters; anything invalid falls back to its default, never an error."""
        sort = str(params.get("sort") or DEFAULT_SORT)
        if sort.lstrip("-") not in SORT_KEYS:
            sort = DEFAULT_SORT
        state = str(params.get("state") or "")
        if state not in ALL_STATES:
            state = ""
        window = str(params.get("window") or DEFAULT_WINDOW)
        if window not in RATE_WINDOWS:
            window = DEFAULT_WINDOW
        return cls(
            page=max(1, _int(params.get("page"), 1)),
            page_size=min(MAX_PAGE_SIZE, max(1, _int(params.get("page_size"), DEFAULT_PAGE_SIZE))),
            sort=sort,
            q=str(params.get("q") or "").strip()[:MAX_QUERY_LENGTH],
            state=state,
            window=window,
        )

    def as_params(self, **changes: Any) -> dict[str, str]:
        """Query parameters for this view with ``changes``, leaving out the defaults (for links)."""
        values = {**asdict(self), **changes}
        defaults = asdict(ViewSpec())
        return {k: str(v) for k, v in values.items() if v != defaults[k]}

    @property
    def key(self) -> str:
        """A stable identity of the view."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ViewResult:
    """One page of a view: its users and where it sits among the matching users."""

    spec: ViewSpec
    users: list[PerUserResourceUsage]
    matched: int
    pages: int
    # The page size asked for, when the frame budget forced a smaller one (None: not clamped).
    requested_page_size: int | None = None

    def meta(self) -> dict[str, Any]:
        """The ``view`` metadata of a frame."""
        return {
            "kind": "list",
            **asdict(self.spec),
            "pages": self.pages,
            "matched": self.matched,
            "clamped": self.requested_page_size is not None,
            "requested_page_size": self.requested_page_size or self.spec.page_size,
        }


# Per-snapshot results shared by every view and request of that instant (orderings, totals);
# they go away with the snapshot. Views run in worker threads, the producer on the event loop.
_memo: weakref.WeakKeyDictionary[Snapshot, dict[Any, Any]] = weakref.WeakKeyDictionary()
_memo_lock = threading.Lock()


def _memoized(snapshot: Snapshot, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per snapshot and key (two threads may both compute it; one result wins)."""
    with _memo_lock:
        entry = _memo.setdefault(snapshot, {})
        if key in entry:
            return entry[key]
    value = compute()
    with _memo_lock:
        return entry.setdefault(key, value)


def _ordered(users: list[PerUserResourceUsage], sort: str) -> list[PerUserResourceUsage]:
    descending = sort.startswith("-")
    field_name = sort.lstrip("-")
    # Two stable sorts: ties keep user-id order whichever way the main key goes.
    ordered = sorted(users, key=SORT_KEYS["user_id"])
    if field_name != "user_id" or descending:
        ordered.sort(key=SORT_KEYS[field_name], reverse=descending)
    return ordered


def view_filter(
    snapshot: Snapshot,
    spec: ViewSpec,
    *,
    labels: Mapping[str, str] | None = None,
    flags: Mapping[str, Iterable[str]] | None = None,
) -> list[PerUserResourceUsage]:
    """Every user of the snapshot that ``spec`` matches, in its order (no paging: exports stream them all).

    The search matches the user id or its registered label (``labels``: user id -> label). A flag
    state keeps the users whose ``flags`` (user id -> flag names) include it; ``ended`` users are
    not in a snapshot, so that state matches nobody here (callers read them from the history).
    """
    users = _memoized(snapshot, ("sorted", spec.sort), lambda: _ordered(snapshot.users, spec.sort))
    if spec.state in STATES:
        keep = STATES[spec.state]
        users = [u for u in users if keep(u)]
    elif spec.state in FLAG_STATES:
        named = flags or {}
        users = [u for u in users if spec.state in named.get(u.user_id, ())]
    elif spec.state == ENDED:
        users = []
    if spec.q:
        needle = spec.q.casefold()
        names = labels or {}
        users = [u for u in users if needle in u.user_id.casefold() or needle in names.get(u.user_id, "").casefold()]
    return users


def view_select(
    snapshot: Snapshot,
    spec: ViewSpec,
    *,
    labels: Mapping[str, str] | None = None,
    flags: Mapping[str, Iterable[str]] | None = None,
) -> ViewResult:
    """Filter, search, sort and page the snapshot's users as ``spec`` says; the page is clamped to the last.

    Each ordering is computed once per snapshot, so views that differ only in page, search or
    filter cost one pass over the users each. See ``view_filter`` for ``labels`` and ``flags``.
    """
    users = view_filter(snapshot, spec, labels=labels, flags=flags)
    return page_of(users, spec)


def page_of(users: list[Any], spec: ViewSpec) -> ViewResult:
    """The page of ``users`` (already filtered and ordered) that ``spec`` asks for, clamped to the last."""
    matched = len(users)
    pages = max(1, -(-matched // spec.page_size))
    page = min(spec.page, pages)
    if page != spec.page:
        spec = replace(spec, page=page)
    start = (page - 1) * spec.page_size
    return ViewResult(spec=spec, users=users[start : start + spec.page_size], matched=matched, pages=pages)


@dataclass(frozen=True)
class Summary:
    """The summary cards: totals over every user, and the sources' health."""

    users: int
    active: int
    in_flight: int
    requests: int
    errors: int
    avg_latency_ms: float
    sources: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready totals (the sources travel as the frame's own ``sources`` key)."""
        return {k: v for k, v in asdict(self).items() if k != "sources"}


def summary_get(snapshot: Snapshot) -> Summary:
    """Totals for the summary cards (once per snapshot); average latency is weighted by requests, as in merging."""
    return _memoized(snapshot, "summary", lambda: _summary(snapshot))


def _summary(snapshot: Snapshot) -> Summary:
    requests = sum(u.requests.total_requests for u in snapshot.users)
    weighted = sum(u.requests.avg_latency_ms * u.requests.total_requests for u in snapshot.users)
    return Summary(
        users=len(snapshot.users),
        active=sum(1 for u in snapshot.users if u.session.is_active),
        in_flight=sum(u.requests.active_requests for u in snapshot.users),
        requests=requests,
        errors=sum(u.requests.error_count for u in snapshot.users),
        avg_latency_ms=round(weighted / requests, 2) if requests else 0.0,
        sources=[_source_meta(h) for h in snapshot.sources],
    )


def _source_meta(health: SourceHealth) -> dict[str, Any]:
    data = health.as_dict()
    return {k: data[k] for k in ("name", "kind", "state", "users", "last_success", "last_error")}


# --- frames -------------------------------------------------------------------------------------


def frame_text(snapshot: Snapshot, users: list[PerUserResourceUsage], extra: Mapping[str, Any]) -> str:
    """A PerUserMonitorResponse of ``users`` (``total_active_users`` = every user) plus ``extra`` keys.

    The model is dumped once and the metadata spliced in after its last key, so a frame costs
    one ``model_dump_json`` and one small ``json.dumps``.
    """
    response = PerUserMonitorResponse.model_construct(
        timestamp=snapshot.timestamp, total_active_users=len(snapshot.users), users=users
    )
    body = response.model_dump_json()
    if not extra:
        return body
    return body[:-1] + "," + json.dumps(extra, separators=(",", ":"))[1:]


def _size(text: str) -> int:
    # Daphne's limit counts bytes of the UTF-8 payload, not characters.
    return len(text.encode())


def list_frame(
    snapshot: Snapshot,
    spec: ViewSpec,
    *,
    budget: int,
    summary: Summary | None = None,
    gone: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
    flags: Mapping[str, Iterable[str]] | None = None,
) -> tuple[str, ViewResult]:
    """The frame of a list view, with the page shrunk until the frame fits in ``budget`` bytes.

    ``flags`` (user id -> flag names) serve the flag states (see ``view_filter``).
    """
    summary = summary or summary_get(snapshot)
    names = labels or {}
    result = view_select(snapshot, spec, labels=names, flags=flags)

    def build(res: ViewResult, gone_ids: list[str]) -> str:
        extra = {
            "type": "snapshot",
            "seq": snapshot.seq,
            "view": res.meta(),
            "summary": summary.as_dict(),
            "sources": summary.sources,
            "stale": snapshot.stale_sources,
            "gone": gone_ids,
            # Registered names of this page's users (usermetrics.identities), by user id.
            "labels": {u.user_id: names[u.user_id] for u in res.users if u.user_id in names},
        }
        return frame_text(snapshot, res.users, extra)

    gone = gone or []
    text = build(result, gone)
    size = _size(text)
    while size > budget and result.spec.page_size > 1 and result.users:
        # Shrink in proportion to the overshoot (with a margin), keeping the first user of the
        # requested page on the new page so the client does not jump elsewhere in the list.
        per_user = max(1, size // max(1, len(result.users)))
        target = max(1, min(result.spec.page_size - 1, int(budget * 0.9) // per_user))
        offset = (result.spec.page - 1) * result.spec.page_size
        smaller = replace(result.spec, page_size=target, page=offset // target + 1)
        requested = result.requested_page_size or spec.page_size
        result = replace(view_select(snapshot, smaller, labels=names, flags=flags), requested_page_size=requested)
        text = build(result, gone)
        size = _size(text)
    if size > budget:
        # Not even one user fits (a gigantic id, or a tiny budget): send the metadata alone.
        empty = replace(result, users=[], requested_page_size=result.requested_page_size or spec.page_size)
        text = build(empty, [])
        result = empty
    return text, result


def user_frame(snapshot: Snapshot, user_id: str, *, budget: int, label: str | None = None) -> str:
    """The frame of the per-user view: that user as a one-element list, or an empty one when gone."""
    usage = snapshot.by_id.get(user_id)
    evicted_at = snapshot.evicted_at(user_id) if usage is not None else None
    users = [usage] if usage is not None else []
    origins = list(snapshot.origins.get(user_id, ()))
    parts = snapshot.parts.get(user_id, [])

    def build(chosen: list[PerUserResourceUsage]) -> str:
        extra = {
            "type": "snapshot",
            "seq": snapshot.seq,
            "view": {
                "kind": "user",
                "user_id": user_id,
                "found": usage is not None,
                "clamped": len(chosen) < len(users),
            },
            "origins": origins,
            # Each source's own record, when several were merged into the one in ``users``.
            "parts": [{"source": name, "record": part.model_dump(mode="json")} for name, part in parts],
            "label": label,
            "evicted_at": evicted_at.isoformat() if evicted_at is not None else None,
            "sources": [_source_meta(h) for h in snapshot.sources],
            "stale": snapshot.stale_sources,
        }
        return frame_text(snapshot, chosen, extra)

    text = build(users)
    if _size(text) > budget:
        text = build([])
    return text


# --- the producer -------------------------------------------------------------------------------


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

    def __init__(self, *, layer: BaseChannelLayer | None = None) -> None:
        """Publish snapshots on ``layer`` (default: the configured channel layer)."""
        self._layer = layer
        self._views: dict[str, _View] = {}
        self._channel_group: dict[str, str] = {}
        # How many frames were serialized; tests count it to prove one per view per tick.
        self.frames_built = 0
        # (monotonic time, user id -> flag names): the lifecycle flags of every user, read from the
        # history at most every FLAGS_REFRESH seconds and only while a view filters by a flag.
        self._flags: tuple[float, dict[str, list[str]]] | None = None

    @property
    def layer(self) -> BaseChannelLayer:
        """The channel layer frames go out on."""
        if self._layer is None:
            self._layer = get_channel_layer()
        return self._layer

    @property
    def budget(self) -> int:
        """The frame size limit in bytes."""
        from usermetrics.conf import get_config

        return int(get_config()["FEED_MAX_FRAME_BYTES"])

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

    async def flags_refresh(self, snapshot: Snapshot) -> None:
        """Read every user's flags again when a view filters by one and the last read is old.

        One aggregate query per FLAGS_REFRESH seconds for the whole process, whatever the number
        of clients; flag membership may lag that long behind the numbers on the rows.
        """
        if not any(v.spec is not None and v.spec.state in FLAG_STATES for v in self._views.values()):
            return
        if self._flags is not None and time.monotonic() - self._flags[0] < FLAGS_REFRESH:
            return
        try:
            names = await sync_to_async(flag_names_get)(snapshot)
        except Exception:
            logger.warning("Lifecycle flags unavailable; flag views show their last known flags", exc_info=True)
            names = self._flags[1] if self._flags is not None else {}
        self._flags = (time.monotonic(), names)

    def frame_for(self, group: str, snapshot: Snapshot, *, labels: Mapping[str, str]) -> str:
        """A full frame of the view for ``snapshot``: the one built this tick if any, else built now."""
        view = self._views[group]
        if view.frame is not None and view.frame[0] == snapshot.seq:
            return view.frame[1]
        return self._build(view, snapshot, gone=[], labels=labels)

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
        if view.spec is not None:
            flags = self._flags[1] if self._flags is not None else None
            text, result = list_frame(
                snapshot, view.spec, budget=self.budget, summary=summary, gone=gone, labels=labels, flags=flags
            )
            view.last_ids = [u.user_id for u in result.users]
        else:
            user_id = view.user_id or ""
            text = user_frame(snapshot, user_id, budget=self.budget, label=labels.get(user_id))
        view.frame = (snapshot.seq, text)
        return text

    async def publish(self, snapshot: Snapshot) -> None:
        """The service listener: build every subscribed view once and send it to its group."""
        if not self._views:
            return
        summary = summary_get(snapshot)  # once per tick, shared by every list view
        labels = await labels_get()
        await self.flags_refresh(snapshot)
        for view in list(self._views.values()):
            if view.frame is not None and view.frame[0] == snapshot.seq:
                text = view.frame[1]  # a late joiner already built this tick's frame
            else:
                gone = [uid for uid in view.last_ids if uid not in snapshot.by_id]
                text = self._build(view, snapshot, gone=gone, labels=labels, summary=summary)
            # The text, not a dict: the in-memory layer deep-copies each event per channel.
            await self.layer.group_send(view.group, {"type": EVENT_TYPE, "text": text})


def flag_names_get(snapshot: Snapshot) -> dict[str, list[str]]:
    """Every user's flag names (sync: reads the history's window stats unless the store is off)."""
    from usermetrics import history, services

    timeouts = history.source_timeouts(services.get_service())
    stats = None if history.history_enabled() else {}
    return {
        uid: [f.name for f in flags]
        for uid, flags in history.users_flags(snapshot, timeouts=timeouts, stats=stats).items()
    }


async def labels_get() -> Mapping[str, str]:
    """Registered names (cached, the database is read at most every 30 s); none while it is unreachable.

    The feed must keep flowing when the database is down: names are a nicety, numbers are not.
    """
    try:
        return await identity_labels_aget()
    except Exception:
        logger.warning("Identity labels unavailable; sending frames without names", exc_info=True)
        return {}


_producers: weakref.WeakKeyDictionary[MonitorService, FeedProducer] = weakref.WeakKeyDictionary()


def producer_for(service: MonitorService) -> FeedProducer:
    """The producer of ``service`` (one per service, listening to its refreshes from the first call)."""
    producer = _producers.get(service)
    if producer is None:
        # The producer holds no reference to the service, so a replaced service can be collected.
        producer = _producers[service] = FeedProducer()
        service.add_listener(producer.publish)
    return producer

"""Lifecycle flags (sync): idle, stuck, rising, erroring, each a small rule object.

A rule looks at one user now (its record, its window stats, when its sources evict it) and
either raises its flag, with a short label for the list and a sentence for the detail page, or
not. Every caller (pages, feed, exports, alerts) goes through ``user_flags``, so a flag means the
same everywhere. The stats come from ``query.window_stats`` over ``FLAGS["WINDOW"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, compress, count
from typing import Protocol

from usermetrics.board import Board
from usermetrics.clock import utcnow
from usermetrics.conf import FlagsConfig, get_config
from usermetrics.humanize import duration_words, eviction_words
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.selection import FLAG_STATES
from usermetrics.snapshot import Snapshot, in_flight

from .query import WindowStats, window_stats


@dataclass(frozen=True)
class Flag:
    """One raised lifecycle flag: a short name for filters, a label for the list, and why."""

    name: str  # idle | stuck | rising | erroring
    label: str
    detail: str


@dataclass(frozen=True)
class FlagInput:
    """What a rule may look at: one user, now."""

    usage: PerUserResourceUsage
    now: datetime
    stats: WindowStats | None  # over FLAGS["WINDOW"]; None without history
    evicted_at: datetime | None  # Snapshot.evicted_at: when its sources evict it, if known

    @property
    def quiet(self) -> float:
        """Seconds since the user's last activity."""
        return (self.now - self.usage.session.last_activity).total_seconds()


class FlagRule(Protocol):
    """A lifecycle flag's rule."""

    name: str

    def check(self, user: FlagInput, cfg: FlagsConfig) -> Flag | None:
        """The flag when ``user`` raises it, else None."""
        ...


class Idle:
    """Nothing in flight and no activity for ``IDLE_AFTER``; says when the sources evict it."""

    name = "idle"

    def check(self, user: FlagInput, cfg: FlagsConfig) -> Flag | None:
        """Raise when idle long enough."""
        if in_flight(user.usage) or user.quiet < cfg.idle_after:
            return None
        quiet = duration_words(user.quiet)
        label, detail = f"idle {quiet}", f"No request in flight and no activity for {quiet}."
        if user.evicted_at is not None:
            words = eviction_words((user.evicted_at - user.now).total_seconds())
            label += f", {words}"
            detail += f" Its sources evict idle workflows with their counters: {words}."
        return Flag(self.name, label, detail)


class Stuck:
    """Requests in flight but no activity for ``STUCK_AFTER``."""

    name = "stuck"

    def check(self, user: FlagInput, cfg: FlagsConfig) -> Flag | None:
        """Raise when in flight and quiet past the threshold."""
        count = in_flight(user.usage)
        if not count or user.quiet < cfg.stuck_after:
            return None
        quiet = duration_words(user.quiet)
        return Flag(
            self.name,
            f"stuck {quiet}",
            f"{count} request(s) in flight but no activity for {quiet} (threshold {duration_words(cfg.stuck_after)}).",
        )


class Rising:
    """Exit stack, or functions + groups, grew by ``RISING_MIN`` over the window: resources not released."""

    name = "rising"

    def check(self, user: FlagInput, cfg: FlagsConfig) -> Flag | None:
        """Raise on growth over the flag window (needs the history)."""
        s = user.stats
        if s is None or (s.exit_stack_growth < cfg.rising_min and s.functions_growth < cfg.rising_min):
            return None
        return Flag(
            self.name,
            "resources rising",
            f"Over the last {cfg.window} the exit stack grew by {s.exit_stack_growth} and functions"
            f" + groups by {s.functions_growth} (threshold {cfg.rising_min}): resources are not released.",
        )


class Erroring:
    """At least ``ERROR_RATE`` of at least ``ERROR_MIN_REQUESTS`` requests failed.

    Over the flag window; over the lifetime without history.
    """

    name = "erroring"

    def check(self, user: FlagInput, cfg: FlagsConfig) -> Flag | None:
        """Raise on a high failed share."""
        if user.stats is not None:
            requests, errors, scope = user.stats.requests, user.stats.errors, f"the last {cfg.window}"
        else:
            requests, errors = user.usage.requests.total_requests, user.usage.requests.error_count
            scope = "its lifetime"
        if requests < cfg.error_min_requests or errors / requests < cfg.error_rate:
            return None
        return Flag(
            self.name,
            f"erroring {errors / requests:.0%}",
            f"{errors} of {requests} requests failed over {scope}"
            f" (threshold {cfg.error_rate:.0%} of at least {cfg.error_min_requests}).",
        )


RULES: tuple[FlagRule, ...] = (Idle(), Stuck(), Rising(), Erroring())
FLAG_NAMES = tuple(rule.name for rule in RULES)


def user_flags(
    usage: PerUserResourceUsage,
    *,
    stats: WindowStats | None = None,
    evicted_at: datetime | None = None,
    now: datetime | None = None,
    config: FlagsConfig | None = None,
) -> list[Flag]:
    """The lifecycle flags of one user now, in rule order.

    ``stats`` are the user's window stats over ``FLAGS["WINDOW"]`` (rising and erroring need them;
    without history the lifetime error share is used); ``evicted_at`` is ``Snapshot.evicted_at``.
    """
    cfg = config or get_config().flags
    user = FlagInput(usage=usage, now=now or utcnow(), stats=stats, evicted_at=evicted_at)
    return [flag for rule in RULES if (flag := rule.check(user, cfg)) is not None]


def flag_stats(
    user_ids: Sequence[str] | None,
    *,
    now: datetime,
    have: tuple[str, Mapping[str, WindowStats]] | None = None,
    percentiles: bool = True,
) -> Mapping[str, WindowStats] | None:
    """Window stats over the flag window for ``user_ids`` (None: everyone); None when the history is off.

    ``have``: a window name and stats already read for it; used as they are when that is the flag
    window (the list's and the detail page's default), so they are not read twice.
    """
    cfg = get_config()
    if not cfg.history.enabled:
        return None
    if have is not None and have[0] == cfg.flags.window:
        return have[1]
    return window_stats(window=cfg.flags.window_length, user_ids=user_ids, now=now, percentiles=percentiles)


class UsersView(Protocol):
    """What the flags read of a snapshot or a board."""

    @property
    def ids(self) -> list[str]:
        """Every user id."""
        ...

    def user(self, user_id: str) -> PerUserResourceUsage | None:
        """One user's record."""
        ...

    def evicted_at(self, user_id: str) -> datetime | None:
        """When its sources evict the user, if known."""
        ...


def users_flags(
    view: UsersView,
    user_ids: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
    stats: Mapping[str, WindowStats] | None = None,
) -> dict[str, list[Flag]]:
    """Flags of ``user_ids`` (default: everyone) of a snapshot or board, with window stats read unless given.

    Users it does not hold (ended users) have no flags.
    """
    now = now or utcnow()
    records = {uid: usage for uid in (view.ids if user_ids is None else user_ids) if (usage := view.user(uid))}
    if stats is None:
        stats = flag_stats(None if user_ids is None else list(records), now=now)
    empty = WindowStats(seconds=get_config().flags.window_length.total_seconds())
    return {
        uid: user_flags(
            usage,
            stats=stats.get(uid, empty) if stats is not None else None,
            evicted_at=view.evicted_at(uid),
            now=now,
        )
        for uid, usage in records.items()
    }


def flagged(
    snapshot: Snapshot, board: Board, stats: Mapping[str, WindowStats] | None, *, now: datetime
) -> dict[str, list[str]]:
    """The flags the list filters by (``selection.FLAG_STATES``) each user raises now, for those that raise one.

    Only users that could raise one are checked, through the same rules: a request in flight
    (stuck), or traffic with errors or growth in the window (rising, erroring; with no history,
    lifetime errors). At 100,000 users that is the few busy or failing ones, not everyone, found
    from ``board``'s columns (the board of ``snapshot``) in C.
    """
    cfg = get_config().flags
    users = snapshot.users
    busy = compress(count(), board.columns["ref_count"])  # in flight
    if stats is None:
        others = (users[i] for i in compress(count(), board.columns["error_count"]))
    else:
        moving = (uid for uid, s in stats.items() if s.errors or s.exit_stack_growth or s.functions_growth)
        others = (snapshot.by_id[uid] for uid in moving if uid in snapshot.by_id)
    candidates = {u.user_id: u for u in chain((users[i] for i in busy), others)}.values()
    empty = WindowStats(seconds=cfg.window_length.total_seconds())
    out: dict[str, list[str]] = {}
    for usage in candidates:
        own = stats.get(usage.user_id, empty) if stats is not None else None
        raised = user_flags(usage, stats=own, evicted_at=snapshot.evicted_at(usage.user_id), now=now, config=cfg)
        names = [f.name for f in raised if f.name in FLAG_STATES]
        if names:
            out[usage.user_id] = names
    return out

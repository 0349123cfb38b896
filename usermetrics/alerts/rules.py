"""Alert rule kinds (sync): how each kind reads one refresh, and when its condition holds.

One rule, one home: user rules read the lifecycle flags the producer already worked out for the
refresh (``history.flags`` through ``publish.flag_tracker.FlagTracker``), or what NAT companions say of the user
(``Snapshot.extras``; its p95 over the flag window from the same window stats the flags read),
source rules read ``SourceHealth``, count rules read ``Snapshot.totals``, budgets read the
history's tokens and cost (``history.spend``, which the engine reads for them). Nothing here re-derives
any of them. A kind says, per subject (a user id, a source name, or ``""`` for a count), the value
it reads; a subject it does not list reads 0 (clear). Counts and the p95 have hysteresis in value
(``clear_threshold``), every kind in time (``clear_seconds``, in ``incidents``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from usermetrics_nat.histogram import quantile

from usermetrics.extras import Extras
from usermetrics.history.flags import Erroring, Rising, Stuck
from usermetrics.history.tokens import NANO
from usermetrics.snapshot import Snapshot, SourceHealth, Totals

SubjectKind = Literal["user", "source", "total"]
SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}
CLEAR_SHARE = 0.9  # a count resolves at 90% of its threshold unless the rule says otherwise


@dataclass(frozen=True)
class Reading:
    """What one refresh offers the rules: the same data the pages show."""

    now: datetime
    sources: Sequence[SourceHealth]
    totals: Totals
    flags: Mapping[str, Sequence[str]]  # user id -> raised flag names (FlagTracker.flags), flagged users only
    origins: Mapping[str, tuple[str, ...]]  # user id -> its sources (Snapshot.origins)
    # What NAT companions say of each user they report (Snapshot.extras): its histogram and queue now.
    extras: Mapping[str, Extras] = field(default_factory=dict)
    # Each user's p95 latency over the flag window, from the history (FlagTracker.latency_p95), for
    # the users with requests in it; None with the history off: then the live figure of the current life.
    window_p95: Mapping[str, float] | None = None
    # Budgets (the engine reads them from the history for the enabled budget rules): each user's
    # (tokens, cost in nano-units) by window name, and everyone's cost over the last hour.
    spend: Mapping[str, Mapping[str, tuple[int, int]]] = field(default_factory=dict)
    fleet_hour_cost: float | None = None

    @classmethod
    def of(
        cls,
        snapshot: Snapshot,
        flags: Mapping[str, Sequence[str]],
        *,
        window_p95: Mapping[str, float] | None = None,
    ) -> Reading:
        """What ``snapshot``, its users' flags and their windowed p95 offer (no copy: a snapshot never changes)."""
        return cls(
            now=snapshot.timestamp,
            sources=snapshot.sources,
            totals=snapshot.totals,
            flags=flags,
            origins=snapshot.origins,
            extras=snapshot.extras,
            window_p95=window_p95,
        )


@dataclass(frozen=True)
class RuleSpec:
    """One enabled rule as the engine evaluates it (read from the database each evaluation)."""

    id: int
    name: str
    kind: str
    severity: str
    threshold: float | None = None
    clear_threshold: float | None = None
    for_seconds: float = 0.0
    clear_seconds: float = 0.0
    remind_seconds: float = 0.0
    window: str = "1h"  # user budgets: the window their cost or tokens are summed over
    routes: tuple[str, ...] = ()  # Apprise URLs; empty: the default routes
    description: str = ""  # the admin's words, added to its notifications

    @property
    def clear_at(self) -> float | None:
        """The value at or below which a firing count clears."""
        if self.clear_threshold is not None:
            return self.clear_threshold
        return None if self.threshold is None else self.threshold * CLEAR_SHARE


class Kind(Protocol):
    """A rule kind: what it reads of a refresh and when it holds."""

    subject: SubjectKind
    noun: str  # what its subjects are called in words ("user", "source", "")
    phrase: str  # what a firing subject is ("stuck", "down", ...)
    reads_percentiles: bool  # it reads ``Reading.window_p95`` (the producer sums histograms for it)

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """Each subject's value now; subjects left out read 0."""
        ...

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Whether the condition holds at ``value`` (``firing``: the subject fires already: hysteresis)."""
        ...


class AboveThreshold:
    """A kind that fires above ``threshold`` and stays firing above the clear level (no flapping on the edge)."""

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Above the threshold to fire; above the clear level to stay firing."""
        limit = rule.clear_at if firing else rule.threshold
        return limit is not None and value > limit


class SourceDown:
    """A source is ``down`` (``SourceHealth.state``: never answered, failing past SOURCE_DOWN_AFTER, or refused)."""

    subject: SubjectKind = "source"
    noun, phrase = "source", "down"
    reads_percentiles = False

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """1 for each source that is down."""
        return {s.name: 1.0 for s in reading.sources if s.state == "down"}

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Down is down."""
        return value >= 1


class SourceStale:
    """A source's data is older than ``threshold`` seconds: seconds since ``SourceHealth.last_success``."""

    subject: SubjectKind = "source"
    noun, phrase = "source", "stale"
    reads_percentiles = False

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """The age of each failing source's last good answer."""
        return {
            s.name: (reading.now - s.last_success).total_seconds()
            for s in reading.sources
            if s.state != "ok" and s.last_success is not None
        }

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Older than the threshold (an answer resets the age: it clears)."""
        return rule.threshold is not None and value >= rule.threshold


class UserFlag:
    """A user raises one lifecycle flag (its thresholds are ``FLAGS``, the same as the pages')."""

    subject: SubjectKind = "user"
    noun = "user"
    reads_percentiles = False

    def __init__(self, flag: str, phrase: str) -> None:
        """Watch the flag named ``flag``."""
        self.flag, self.phrase = flag, phrase

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """1 for each user that raises the flag."""
        flag = self.flag
        return {uid: 1.0 for uid, names in reading.flags.items() if flag in names}

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Raised is raised."""
        return value >= 1


class UserLatencyP95(AboveThreshold):
    """A user's p95 latency (ms) above ``threshold``; clears at or below ``clear_at``.

    Over the flag window (``FLAGS["WINDOW"]``, the history's windowed histogram: what the user's
    page shows for that window) when the history is on; with it off, over every request of the
    user's current life (the live figure of its row). Users no companion reports never fire.
    """

    subject: SubjectKind = "user"
    noun, phrase = "user", "slow (p95 latency above the threshold)"
    reads_percentiles = True

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """Each user's p95 (users without requests counted read 0: clear)."""
        if reading.window_p95 is not None:
            return dict(reading.window_p95)
        # Only the quantile asked for, and only of users with requests: this runs over every user.
        return {uid: p95 for uid, x in reading.extras.items() if any(x.latency) and (p95 := quantile(x.latency, 0.95))}


class UserSaturated:
    """A user has requests queued on its semaphore (``Extras.saturated``); the rule's **for** makes it "for a while"."""

    subject: SubjectKind = "user"
    noun, phrase = "user", "saturated (requests queued)"
    reads_percentiles = False

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """The requests queued of each saturated user."""
        return {uid: float(x.queued) for uid, x in reading.extras.items() if x.saturated}

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Queued is saturated; a refresh with nothing queued clears it (and restarts a pending **for**)."""
        return value >= 1


class UserBudget(AboveThreshold):
    """A user's cost (in the currency) or tokens over the rule's ``window`` above ``threshold``; clears at ``clear_at``.

    From what the history recorded (costs at the prices in force when the tokens were used);
    users no companion reports never fire.
    """

    subject: SubjectKind = "user"
    noun = "user"
    reads_percentiles = False

    def __init__(self, index: int, phrase: str) -> None:
        """Watch the window's tokens (``index`` 0) or cost (1)."""
        self.index, self.phrase = index, phrase

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """Each spending user's tokens or cost over the window."""
        totals = reading.spend.get(rule.window, {})
        if self.index == 0:
            return {uid: float(pair[0]) for uid, pair in totals.items() if pair[0]}
        return {uid: pair[1] / NANO for uid, pair in totals.items() if pair[1]}


class FleetCostPerHour(AboveThreshold):
    """Everyone's cost over the last hour (the history's totals) above ``threshold``; clears at ``clear_at``."""

    subject: SubjectKind = "total"
    noun, phrase = "", "cost in the last hour"
    reads_percentiles = False

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """The one cost (none without the history)."""
        return {"": reading.fleet_hour_cost} if reading.fleet_hour_cost else {}


class TotalAbove(AboveThreshold):
    """A total over all users (``Snapshot.totals``) above ``threshold``; clears at or below ``clear_at``."""

    subject: SubjectKind = "total"
    noun = ""
    reads_percentiles = False

    def __init__(self, field: str, phrase: str) -> None:
        """Watch ``Totals.<field>``."""
        self.field, self.phrase = field, phrase

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """The one total."""
        return {"": float(getattr(reading.totals, self.field))}


KINDS: dict[str, Kind] = {
    "source_down": SourceDown(),
    "source_stale": SourceStale(),
    "user_stuck": UserFlag(Stuck.name, "stuck"),
    "user_erroring": UserFlag(Erroring.name, "erroring"),
    "user_rising": UserFlag(Rising.name, "with resources rising"),
    "user_latency_p95": UserLatencyP95(),
    "user_saturated": UserSaturated(),
    "users_total": TotalAbove("users", "users"),
    "users_in_flight": TotalAbove("in_flight", "requests in flight"),
    "user_tokens": UserBudget(0, "over the token budget"),
    "user_cost": UserBudget(1, "over the cost budget"),
    "fleet_cost_per_hour": FleetCostPerHour(),
}
# Kinds that need a threshold to mean anything (the admin form asks for one).
THRESHOLD_KINDS = frozenset(
    {"source_stale", "user_latency_p95", "users_total", "users_in_flight", "user_cost", "user_tokens",
     "fleet_cost_per_hour"}
)  # fmt: skip
# Kinds that read the history's spending (``Reading.spend``, ``Reading.fleet_hour_cost``).
USER_BUDGET_KINDS = frozenset({"user_cost", "user_tokens"})
FLEET_BUDGET_KINDS = frozenset({"fleet_cost_per_hour"})
# Kinds whose values and thresholds are money (in the price table's currency; notifications say it).
MONEY_KINDS = frozenset({"user_cost", "fleet_cost_per_hour"})

"""Alert rule kinds (sync): how each kind reads one refresh, and when its condition holds.

One rule, one home: user rules read the lifecycle flags the producer already worked out for the
refresh (``history.flags`` through ``FlagTracker``), source rules read ``SourceHealth``, count
rules read ``Snapshot.totals``. Nothing here re-derives any of them. A kind says, per subject (a
user id, a source name, or ``""`` for a count), the value it reads; a subject it does not list
reads 0 (clear). Counts have hysteresis in value (``clear_threshold``), every kind in time
(``clear_seconds``, in ``incidents``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from usermetrics.history.flags import Erroring, Rising, Stuck
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

    @classmethod
    def of(cls, snapshot: Snapshot, flags: Mapping[str, Sequence[str]]) -> Reading:
        """What ``snapshot`` and its users' flags offer (no copy: a snapshot never changes)."""
        return cls(
            now=snapshot.timestamp,
            sources=snapshot.sources,
            totals=snapshot.totals,
            flags=flags,
            origins=snapshot.origins,
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

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """Each subject's value now; subjects left out read 0."""
        ...

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Whether the condition holds at ``value`` (``firing``: the subject fires already: hysteresis)."""
        ...


class SourceDown:
    """A source is ``down`` (``SourceHealth.state``: never answered, failing past SOURCE_DOWN_AFTER, or refused)."""

    subject: SubjectKind = "source"
    noun, phrase = "source", "down"

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


class TotalAbove:
    """A total over all users (``Snapshot.totals``) above ``threshold``; clears at or below ``clear_at``."""

    subject: SubjectKind = "total"
    noun = ""

    def __init__(self, field: str, phrase: str) -> None:
        """Watch ``Totals.<field>``."""
        self.field, self.phrase = field, phrase

    def values(self, rule: RuleSpec, reading: Reading) -> dict[str, float]:
        """The one total."""
        return {"": float(getattr(reading.totals, self.field))}

    def holds(self, rule: RuleSpec, value: float, *, firing: bool) -> bool:
        """Above the threshold to fire; above the clear level to stay firing."""
        limit = rule.clear_at if firing else rule.threshold
        return limit is not None and value > limit


KINDS: dict[str, Kind] = {
    "source_down": SourceDown(),
    "source_stale": SourceStale(),
    "user_stuck": UserFlag(Stuck.name, "stuck"),
    "user_erroring": UserFlag(Erroring.name, "erroring"),
    "user_rising": UserFlag(Rising.name, "with resources rising"),
    "users_total": TotalAbove("users", "users"),
    "users_in_flight": TotalAbove("in_flight", "requests in flight"),
}
# Kinds that need a threshold to mean anything (the admin form asks for one).
THRESHOLD_KINDS = frozenset({"source_stale", "users_total", "users_in_flight"})

"""Incidents (sync, no database): the alert state machine, pending -> firing -> resolved, per rule and subject.

A subject (a user, a source, a count) whose condition holds is *pending*; once it has held for the
rule's ``for_seconds`` it *fires* and joins the rule's open incident (users of a rule share one
incident; each source has its own). A firing subject resolves only after its condition has been
clear for ``clear_seconds`` (counts also clear below ``clear_at``): a value on the edge does not
flap. An incident notifies once when it opens (every subject firing then, in one notification),
reminds every ``remind_seconds`` while open, and says "resolved" once when its last subject
clears. Silenced subjects fire and show, but are named in no notification; an incident whose
subjects are all silenced sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from .rules import KINDS, SEVERITY_RANK, Reading, RuleSpec

NoticeKind = Literal["firing", "reminder", "resolved"]


@dataclass
class Tracked:
    """One subject of one rule whose condition holds (pending) or that fires."""

    subject: str
    since: datetime  # when its condition began to hold
    value: float
    state: Literal["pending", "firing"] = "pending"
    fired_at: datetime | None = None
    clear_since: datetime | None = None  # firing, but clear since then
    member_id: int | None = None  # its IncidentMember row (the store fills it)


@dataclass
class OpenIncident:
    """An open incident of one rule (and one source, for source rules)."""

    rule_id: int
    group: str
    opened_at: datetime
    notified: bool = False
    reminded_at: datetime | None = None
    members_total: int = 0
    id: int | None = None  # its Incident row (the store fills it)
    changed: bool = True  # to be written


@dataclass(frozen=True)
class SilenceSpec:
    """An active silence: a rule, a user, a source (empty: any), from ``starts_at`` until ``ends_at``."""

    rule_id: int | None
    user_id: str
    source: str
    starts_at: datetime
    ends_at: datetime

    def mutes(self, rule: RuleSpec, subject: str, origins: Iterable[str], now: datetime) -> bool:
        """Whether this silence mutes ``subject`` of ``rule`` at ``now`` (a source silence mutes its users)."""
        if not (self.starts_at <= now < self.ends_at) or self.rule_id not in (None, rule.id):
            return False
        kind = KINDS[rule.kind].subject
        if self.user_id and (kind != "user" or subject != self.user_id):
            return False
        if self.source:
            if kind == "source":
                return subject == self.source
            return kind == "user" and self.source in origins
        return True


@dataclass(frozen=True)
class Notice:
    """One notification to send: an incident's firing, reminder or resolution, naming its subjects."""

    kind: NoticeKind
    rule: RuleSpec
    incident: OpenIncident
    subjects: Sequence[tuple[str, float]]  # the subjects it names (not silenced), all of them
    at: datetime


@dataclass
class Step:
    """What one evaluation changed, for the store to write and the deliveries to send."""

    fired: list[tuple[OpenIncident, Tracked]] = field(default_factory=list)
    resolved: list[Tracked] = field(default_factory=list)
    closed: list[OpenIncident] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


@dataclass(frozen=True)
class Counts:
    """What fires now: per rule, its firing subjects; incidents with a subject not silenced; the worst severity."""

    by_rule: dict[str, int]
    firing: int
    silenced: int
    severity: int  # SEVERITY_RANK of the worst incident firing (0: none)


class Book:
    """Every tracked subject and open incident, stepped once per refresh."""

    def __init__(self) -> None:
        """Nothing tracked."""
        self.tracked: dict[int, dict[str, Tracked]] = {}
        self.incidents: dict[tuple[int, str], OpenIncident] = {}
        self.counts = Counts({}, 0, 0, 0)

    def restore(self, incident: OpenIncident, members: Iterable[Tracked]) -> None:
        """Take back an open incident and its firing subjects from the database (a restart, a takeover)."""
        incident.changed = False
        self.incidents[(incident.rule_id, incident.group)] = incident
        own = self.tracked.setdefault(incident.rule_id, {})
        for t in members:
            own[t.subject] = t

    def step(self, rules: Sequence[RuleSpec], reading: Reading, silences: Sequence[SilenceSpec]) -> Step:
        """Advance every rule by one refresh."""
        now, step = reading.now, Step()
        live = {r.id for r in rules}
        for rule_id in [rid for rid in self.tracked if rid not in live]:
            del self.tracked[rule_id]  # disabled or deleted: its incidents close without a word
        for key in [k for k in self.incidents if k[0] not in live]:
            step.closed.append(self.incidents.pop(key))

        def muted(rule: RuleSpec, subject: str) -> bool:
            origins = reading.origins.get(subject, ())
            return any(s.mutes(rule, subject, origins, now) for s in silences)

        by_rule: dict[str, int] = {}
        firing = silenced = worst = 0
        for rule in rules:
            before = len(step.resolved)
            self._advance(rule, reading, step)
            resolved = step.resolved[before:]  # this rule's: another rule's resolved subjects are not its
            own = self.tracked.get(rule.id, {})
            by_rule[rule.name] = sum(1 for t in own.values() if t.state == "firing")
            for key in [k for k in self.incidents if k[0] == rule.id]:
                incident = self.incidents[key]
                members = [t for t in own.values() if t.state == "firing" and self._group(rule, t.subject) == key[1]]
                if not members:
                    del self.incidents[key]
                    step.closed.append(incident)
                    if incident.notified:
                        gone = [(t.subject, t.value) for t in resolved if self._group(rule, t.subject) == key[1]]
                        step.notices.append(Notice("resolved", rule, incident, gone, now))
                    continue
                active = [(t.subject, t.value) for t in members if not muted(rule, t.subject)]
                if not active:
                    silenced += 1
                    continue
                firing += 1
                worst = max(worst, SEVERITY_RANK.get(rule.severity, 0))
                due = rule.remind_seconds > 0 and (
                    incident.reminded_at is None or (now - incident.reminded_at).total_seconds() >= rule.remind_seconds
                )
                if not incident.notified or due:
                    step.notices.append(
                        Notice("reminder" if incident.notified else "firing", rule, incident, active, now)
                    )
                    incident.notified, incident.reminded_at, incident.changed = True, now, True
        self.counts = Counts(by_rule, firing, silenced, worst)
        return step

    @staticmethod
    def _group(rule: RuleSpec, subject: str) -> str:
        """The incident a subject belongs to: its own for a source, the rule's one otherwise."""
        return subject if KINDS[rule.kind].subject == "source" else ""

    def _advance(self, rule: RuleSpec, reading: Reading, step: Step) -> None:
        """Move each subject of ``rule`` along: new ones pending, pending ones firing, clear ones resolved."""
        kind, now = KINDS[rule.kind], reading.now
        values = kind.values(rule, reading)
        own = self.tracked.setdefault(rule.id, {})
        for subject, value in values.items():
            if subject not in own and kind.holds(rule, value, firing=False):
                own[subject] = Tracked(subject, since=now, value=value)
        for subject in list(own):
            t = own[subject]
            value = values.get(subject, 0.0)
            t.value = value if value else t.value  # a cleared subject keeps the value it fired with
            if t.state == "pending":
                if not kind.holds(rule, value, firing=False):
                    del own[subject]
                elif (now - t.since).total_seconds() >= rule.for_seconds:
                    t.state, t.fired_at = "firing", now
                    key = (rule.id, self._group(rule, subject))
                    incident = self.incidents.get(key)
                    if incident is None:
                        incident = self.incidents[key] = OpenIncident(rule.id, key[1], opened_at=now)
                    incident.members_total += 1
                    incident.changed = True
                    step.fired.append((incident, t))
            elif kind.holds(rule, value, firing=True):
                t.clear_since = None
            else:
                t.clear_since = t.clear_since or now
                if (now - t.clear_since).total_seconds() >= rule.clear_seconds:
                    del own[subject]
                    step.resolved.append(t)

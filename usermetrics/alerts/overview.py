"""What the alerts page shows (sync, ORM): incidents firing and recent, their subjects and deliveries, rules, silences.

Reads only: a few queries whatever the number of users (each incident names its first few
subjects and counts the rest). Routes appear in Apprise's privacy form, never as configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber

from usermetrics.conf import AlertsConfig
from usermetrics.humanize import user_display
from usermetrics.models import AlertRule, Delivery, Incident, IncidentMember, Silence

from .delivery import route_label, routes_parse
from .rules import KINDS

RECENT = 50  # closed incidents and deliveries listed
NAMED = 10  # subjects named per incident


@dataclass
class IncidentView:
    """One incident as the page lists it."""

    id: int
    rule: str
    severity: str
    group: str
    opened_at: datetime
    closed_at: datetime | None
    notified: bool
    firing: int  # its subjects firing now
    total: int  # its subjects, ever
    names: list[str]
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def more(self) -> int:
        """Subjects not named."""
        return max(0, (self.firing if self.closed_at is None else self.total) - len(self.names))


@dataclass
class RuleView:
    """One rule in the rules table."""

    rule: AlertRule
    routes: list[str]  # privacy labels; empty: the defaults


@dataclass
class AlertsOverview:
    """Everything the alerts page shows."""

    firing: list[IncidentView]
    recent: list[IncidentView]
    deliveries: list[Delivery]
    failed: int  # deliveries given up
    retrying: int  # deliveries failed at least once, still being retried
    rules: list[RuleView]
    silences: list[Silence]
    default_routes: list[str]


def _named(incidents: list[Incident], *, firing_only: bool) -> dict[int, list[str]]:
    """The first ``NAMED`` subjects of each incident, in firing order (one query, however many subjects)."""
    rows = IncidentMember.objects.filter(incident_id__in=[i.pk for i in incidents])
    if firing_only:
        rows = rows.filter(resolved_at__isnull=True)
    rank = Window(RowNumber(), partition_by=F("incident_id"), order_by=[F("fired_at").asc(), F("id").asc()])
    named: dict[int, list[str]] = {}
    for incident_id, subject in rows.annotate(rank=rank).filter(rank__lte=NAMED).values_list("incident_id", "subject"):
        named.setdefault(incident_id, []).append(subject)
    return named


def _views(incidents: list[Incident], labels: Mapping[str, str], *, open_: bool) -> list[IncidentView]:
    named = _named(incidents, firing_only=open_)
    deliveries: dict[int, list[Delivery]] = {}
    for d in Delivery.objects.filter(incident_id__in=[i.pk for i in incidents]).order_by("created_at", "id"):
        deliveries.setdefault(d.incident_id or 0, []).append(d)
    out: list[IncidentView] = []
    for inc in incidents:
        subject = KINDS[inc.rule.kind].subject
        names = [] if subject == "total" else named.get(inc.pk, [])
        out.append(
            IncidentView(
                id=inc.pk,
                rule=inc.rule.name,
                severity=inc.rule.severity,
                group=inc.group,
                opened_at=inc.opened_at,
                closed_at=inc.closed_at,
                notified=inc.notified,
                firing=getattr(inc, "firing_now", 0),
                total=inc.members_total,
                names=[user_display(n, labels) if subject == "user" else n for n in names],
                deliveries=deliveries.get(inc.pk, []),
            )
        )
    return out


def alerts_overview(*, config: AlertsConfig, labels: Mapping[str, str], now: datetime) -> AlertsOverview:
    """The alerts page's content now."""
    base = Incident.objects.select_related("rule").annotate(
        firing_now=Count("members", filter=Q(members__resolved_at__isnull=True))
    )
    firing = list(base.filter(closed_at__isnull=True).order_by("-opened_at"))
    recent = list(base.filter(closed_at__isnull=False).order_by("-closed_at")[:RECENT])
    return AlertsOverview(
        firing=_views(firing, labels, open_=True),
        recent=_views(recent, labels, open_=False),
        deliveries=list(Delivery.objects.order_by("-created_at", "-id")[:RECENT]),
        failed=Delivery.objects.filter(state="failed").exclude(kind="test").count(),
        retrying=Delivery.objects.filter(state="pending", attempts__gt=0).exclude(last_error="").count(),
        rules=[
            RuleView(r, [route_label(u) for u in routes_parse(r.routes)]) for r in AlertRule.objects.order_by("name")
        ],
        silences=list(Silence.objects.filter(ends_at__gt=now).select_related("rule").order_by("ends_at")),
        default_routes=[route_label(u) for u in config.urls],
    )

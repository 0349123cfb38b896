"""The alerts' database side (sync, ORM): rules and silences read, incidents written, notifications queued.

Runs in the engine's worker thread (and in the faces for the alerts page). Only changes are
written: a subject is stored when it fires and when it resolves, an incident when it opens,
notifies or closes. Open incidents and their firing subjects are read back at start, so a restart
or a standby taking over neither fires again nor forgets to resolve.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db import transaction

from usermetrics.conf import AlertsConfig
from usermetrics.models import AlertRule, Delivery, Incident, IncidentMember, Silence

from .delivery import deliveries_new, routes_parse
from .incidents import Book, OpenIncident, SilenceSpec, Step, Tracked
from .messages import notice_message
from .rules import RuleSpec


def rule_spec(row: AlertRule) -> RuleSpec:
    """The engine's view of one rule row."""
    return RuleSpec(
        id=row.pk,
        name=row.name,
        kind=row.kind,
        severity=row.severity,
        threshold=row.threshold,
        clear_threshold=row.clear_threshold,
        for_seconds=row.for_seconds,
        clear_seconds=row.clear_seconds,
        remind_seconds=row.remind_seconds,
        window=row.window,
        routes=tuple(routes_parse(row.routes)),
        description=row.description,
    )


def rules_load() -> list[RuleSpec]:
    """The enabled rules."""
    return [rule_spec(r) for r in AlertRule.objects.filter(enabled=True).order_by("name")]


def silences_load(now: datetime) -> list[SilenceSpec]:
    """The silences in force at ``now``."""
    rows = Silence.objects.filter(starts_at__lte=now, ends_at__gt=now)
    return [SilenceSpec(s.rule_id, s.user_id, s.source, s.starts_at, s.ends_at) for s in rows]


def book_load() -> Book:
    """A book of every open incident and its firing subjects, as the database has them."""
    book = Book()
    members: dict[int, list[Tracked]] = {}
    for m in IncidentMember.objects.filter(resolved_at__isnull=True, incident__closed_at__isnull=True):
        members.setdefault(m.incident_id, []).append(
            Tracked(m.subject, since=m.fired_at, value=m.value, state="firing", fired_at=m.fired_at, member_id=m.pk)
        )
    for row in Incident.objects.filter(closed_at__isnull=True):
        incident = OpenIncident(
            row.rule_id,
            row.group,
            opened_at=row.opened_at,
            notified=row.notified,
            reminded_at=row.reminded_at,
            members_total=row.members_total,
            id=row.pk,
        )
        book.restore(incident, members.get(row.pk, []))
    return book


def step_write(
    step: Step,
    *,
    now: datetime,
    queued_at: datetime,
    config: AlertsConfig,
    labels: Mapping[str, str],
) -> list[Delivery]:
    """Write what ``step`` changed and queue its notifications, all in one transaction; the new deliveries.

    ``now`` is the refresh's time (incidents); ``queued_at`` the courier's clock (the outbox's retries).
    """
    closing = {id(i) for i in step.closed}
    with transaction.atomic():
        incidents = {id(i): i for i, _ in step.fired} | {id(n.incident): n.incident for n in step.notices}
        incidents |= {id(i): i for i in step.closed}
        for key, incident in incidents.items():
            _incident_save(incident, closed=now if key in closing else None)
        if step.fired:
            rows = IncidentMember.objects.bulk_create(
                [
                    IncidentMember(incident_id=i.id, subject=t.subject, fired_at=now, value=t.value)
                    for i, t in step.fired
                ]
            )
            for (_, t), row in zip(step.fired, rows, strict=True):
                t.member_id = row.pk
        resolved = [t.member_id for t in step.resolved if t.member_id is not None]
        if resolved:
            IncidentMember.objects.filter(pk__in=resolved).update(resolved_at=now)
        closed = [i.id for i in step.closed if i.id is not None]
        if closed:  # a rule switched off closes its incidents: their subjects end with them
            IncidentMember.objects.filter(incident_id__in=closed, resolved_at__isnull=True).update(resolved_at=now)
        queued: list[Delivery] = []
        for notice in step.notices:
            message = notice_message(
                notice,
                labels=labels,
                first=config.group_names,
                dashboard_url=config.dashboard_url,
                description=notice.rule.description,
            )
            urls = notice.rule.routes or config.urls
            queued += deliveries_new(message, urls, kind=notice.kind, now=queued_at, incident_id=notice.incident.id)
        if queued:
            Delivery.objects.bulk_create(queued)
    return queued


def _incident_save(incident: OpenIncident, *, closed: datetime | None) -> None:
    fields = {
        "notified": incident.notified,
        "reminded_at": incident.reminded_at,
        "members_total": incident.members_total,
        "closed_at": closed,
    }
    if incident.id is None:
        incident.id = Incident.objects.create(
            rule_id=incident.rule_id, group=incident.group, opened_at=incident.opened_at, **fields
        ).pk
    elif incident.changed or closed is not None:
        Incident.objects.filter(pk=incident.id).update(**fields)
    incident.changed = False

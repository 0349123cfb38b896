"""Notification words (sync): the title and body of an incident's firing, reminder or resolution, and a test.

A grouped notification names the first ``GROUP_NAMES`` subjects and says how many more; users are
shown as the pages show them (``humanize.user_display``). Apprise's notification type follows
the severity (critical: failure, warning: warning, info: info; resolved: success).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from usermetrics.conf import get_config
from usermetrics.humanize import duration_words, money_words, number, user_display

from .incidents import Notice
from .rules import KINDS, MONEY_KINDS, USER_BUDGET_KINDS, RuleSpec

NOTIFY_TYPES = {"critical": "failure", "warning": "warning", "info": "info"}


@dataclass(frozen=True)
class Message:
    """One notification: what Apprise sends."""

    title: str
    body: str
    notify_type: str  # info | success | warning | failure


def clock(when: datetime) -> str:
    """'2026-01-01 12:00:00 UTC'."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def subject_words(rule: RuleSpec, subject: str, labels: Mapping[str, str]) -> str:
    """How a notification names one subject."""
    kind = KINDS[rule.kind]
    return user_display(subject, labels) if kind.subject == "user" else subject


def amount_words(rule: RuleSpec, value: float) -> str:
    """A value or threshold of ``rule``: money in the deployment's currency for cost budgets, else a count."""
    if rule.kind in MONEY_KINDS:
        return money_words(value, get_config().prices.currency)  # the one currency every price is in
    return f"{value:,.0f}"


def headline(rule: RuleSpec, subjects: Sequence[tuple[str, float]], labels: Mapping[str, str]) -> str:
    """'nat-b is down', '1,000 users stuck', 'users: 12,345 (threshold 10,000)', 'cost in the last hour: $62.50
    (threshold $50.00)', 'ada is over the cost budget: $6.00 in 24h (budget $5.00)'."""
    kind = KINDS[rule.kind]
    if kind.subject == "total":
        value = subjects[0][1] if subjects else 0.0
        limit = amount_words(rule, rule.threshold or 0) if rule.kind in MONEY_KINDS else number(rule.threshold or 0)
        return f"{kind.phrase}: {amount_words(rule, value)} (threshold {limit})"
    budget = f"budget {amount_words(rule, rule.threshold or 0)}"
    if len(subjects) == 1:
        words = f"{subject_words(rule, subjects[0][0], labels)} is {kind.phrase}"
        if rule.kind in USER_BUDGET_KINDS:
            words += f": {amount_words(rule, subjects[0][1])} in {rule.window} ({budget})"
        return words
    scope = f" ({budget} in {rule.window})" if rule.kind in USER_BUDGET_KINDS else ""
    return f"{len(subjects):,} {kind.noun}s {kind.phrase}{scope}"


def names_line(rule: RuleSpec, subjects: Sequence[tuple[str, float]], labels: Mapping[str, str], *, first: int) -> str:
    """'ada (u1), bob, carl, dan, eve and 995 more.' (empty for a count)."""
    if KINDS[rule.kind].subject == "total" or not subjects:
        return ""
    named = [subject_words(rule, s, labels) for s, _ in subjects[:first]]
    more = len(subjects) - len(named)
    return ", ".join(named) + (f" and {more:,} more." if more else ".")


def notice_message(
    notice: Notice, *, labels: Mapping[str, str], first: int, dashboard_url: str = "", description: str = ""
) -> Message:
    """The notification of ``notice``."""
    rule, incident, subjects = notice.rule, notice.incident, notice.subjects
    tag = rule.severity.upper()
    link = f"\n{dashboard_url}/alerts/" if dashboard_url else ""
    names = names_line(rule, subjects, labels, first=first)
    why = f"\n{description}" if description else ""
    if notice.kind == "resolved":
        lasted = duration_words((notice.at - incident.opened_at).total_seconds())
        total = incident.members_total
        scope = f" {total:,} {KINDS[rule.kind].noun}s fired in it." if total > 1 else ""
        return Message(
            title=f"[RESOLVED] {rule.name}: {headline(rule, subjects, labels) if subjects else 'cleared'}",
            body=f"Cleared at {clock(notice.at)} after {lasted}.{scope}" + (f"\nLast: {names}" if names else "") + link,
            notify_type="success",
        )
    prefix = "[REMINDER] " if notice.kind == "reminder" else ""
    since = f"Firing since {clock(incident.opened_at)}" + (
        f" ({duration_words((notice.at - incident.opened_at).total_seconds())})." if notice.kind == "reminder" else "."
    )
    return Message(
        title=f"{prefix}[{tag}] {rule.name}: {headline(rule, subjects, labels)}",
        body=since + (f"\n{names}" if names else "") + why + link,
        notify_type=NOTIFY_TYPES.get(rule.severity, "warning"),
    )


def probe_message(now: datetime) -> Message:
    """The notification ``sendtestalert`` and the alerts page's button send."""
    return Message(
        title="[TEST] usermetrics alert route",
        body=f"A test notification from usermetrics at {clock(now)}. This route works.",
        notify_type="info",
    )

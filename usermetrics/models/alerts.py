"""ORM (sync): alert rules, silences, incidents and their members, and the notification outbox (usermetrics.alerts)."""

from __future__ import annotations

from django.db import models

from usermetrics.models.fields import UserIdField
from usermetrics.windows import WINDOWS


class AlertKind(models.TextChoices):
    """What a rule watches; ``usermetrics.alerts.rules`` reads each from the refresh."""

    SOURCE_DOWN = "source_down", "a source is down"
    SOURCE_STALE = "source_stale", "a source's data is older than the threshold (seconds)"
    USER_STUCK = "user_stuck", "a user is stuck (the lifecycle flag)"
    USER_ERRORING = "user_erroring", "a user is erroring (the lifecycle flag)"
    USER_RISING = "user_rising", "a user's resources are rising (the lifecycle flag)"
    USER_LATENCY_P95 = "user_latency_p95", "a user's p95 latency over the flag window is above the threshold (ms)"
    USER_SATURATED = "user_saturated", "a user has requests queued on its semaphore (NAT companions)"
    USERS_TOTAL = "users_total", "the number of users is above the threshold"
    USERS_IN_FLIGHT = "users_in_flight", "the requests in flight over all users are above the threshold"
    USER_COST = "user_cost", "a user's cost over the rule's window is above the threshold (a budget, in the currency)"
    USER_TOKENS = "user_tokens", "a user's tokens over the rule's window are above the threshold (a budget)"
    FLEET_COST_PER_HOUR = "fleet_cost_per_hour", "everyone's cost in the last hour is above the threshold (a budget)"


class Severity(models.TextChoices):
    """How bad a firing rule is (Apprise's notification type follows it)."""

    INFO = "info", "info"
    WARNING = "warning", "warning"
    CRITICAL = "critical", "critical"


class AlertRule(models.Model):
    """One alert rule, edited in the admin; the database starts with ``USERMETRICS["ALERTS"]["RULES"]``."""

    name = models.SlugField(max_length=64, unique=True, help_text="Shown in notifications and as the rule label.")
    kind = models.CharField(max_length=32, choices=AlertKind.choices)
    enabled = models.BooleanField(default=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="Counts: users. Source stale: seconds since its last good answer. User p95 latency: ms."
        " Budgets: the currency, or tokens.",
    )
    clear_threshold = models.FloatField(
        null=True, blank=True, help_text="Counts: resolve at or below this (empty: 90% of the threshold)."
    )
    window = models.CharField(
        max_length=8,
        choices=[(name, name) for name in WINDOWS],
        default="1h",
        help_text="User budgets (cost, tokens): the window a user's spending is summed over.",
    )
    for_seconds = models.FloatField("for (s)", default=0.0, help_text="The condition must hold this long to fire.")
    clear_seconds = models.FloatField(
        "clear for (s)", default=30.0, help_text="It must stay clear this long to resolve (no flapping)."
    )
    remind_seconds = models.FloatField(
        "remind every (s)", default=3600.0, help_text="Repeat a firing notification this often (0: never)."
    )
    # Apprise URLs, one per line; empty: the default routes (USERMETRICS_ALERT_URLS). May hold secrets:
    # the admin never shows them, pages show Apprise's privacy form.
    routes = models.TextField(blank=True, default="")
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Silence(models.Model):
    """Mutes notifications of a rule, a user or a source (any of them; all empty: everything) until ``ends_at``."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    user_id = UserIdField("user id", blank=True, default="")
    source = models.CharField(max_length=200, blank=True, default="", help_text="A source name: its users too.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=500, blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-ends_at"]

    def __str__(self) -> str:
        what = ", ".join(x for x in (self.rule and self.rule.name, self.user_id, self.source) if x) or "everything"
        return f"silence of {what} until {self.ends_at:%Y-%m-%d %H:%M}"


class Incident(models.Model):
    """One firing episode of a rule: opened when it fires, closed once when it clears.

    User rules group every user that trips them into one incident; source rules have one per
    source; count rules one. ``members`` are the users or sources that fired in it.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    group = models.CharField(max_length=1024, blank=True, default="", help_text="The source; empty when grouped.")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    notified = models.BooleanField(default=False, help_text="A firing notification went out.")
    reminded_at = models.DateTimeField(null=True, blank=True)
    members_total = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["closed_at", "opened_at"], name="usermetrics_incident_open")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.group} from {self.opened_at:%Y-%m-%d %H:%M}"


class IncidentMember(models.Model):
    """One user, source or count that fired within an incident, until it resolved."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="members")
    subject = UserIdField(blank=True, default="")
    fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"{self.subject} in incident {self.incident_id}"


class DeliveryState(models.TextChoices):
    """Where one notification to one route stands."""

    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"


class Delivery(models.Model):
    """One notification to one route: the outbox. Retried with backoff until sent or given up."""

    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=16)  # firing | reminder | resolved | test
    title = models.CharField(max_length=500)
    body = models.TextField()
    notify_type = models.CharField(max_length=16)
    url = models.TextField()  # the Apprise URL with its secrets: never shown, never logged
    route = models.CharField(max_length=500)  # the URL as pages show it (Apprise's privacy form)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="usermetrics_delivery_due")]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.kind} to {self.route}: {self.state}"

"""ORM (sync): known identities that name NAT's user UUIDs, and the history store.

History: user lives, per-user samples, totals, and hourly roll-ups. Samples are small on purpose
(see ``bench/history_size.py``): a per-user row is written only when that user's counters changed,
refers to its life by an integer key instead of repeating the user id, and carries the *delta*
since the previous row of the same life so that every windowed rate is one ``SUM`` over the
window, correct across evictions and counter resets.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django import forms
from django.db import models

# PostgreSQL's text cannot hold NUL, which a source may put in a user id: it is stored as this
# escape (two Unicode noncharacters, which no real id holds), and the escape character itself doubled.
_ESC = "\uffff"
_STORED = {"\x00": _ESC + "\ufffe", _ESC: _ESC + _ESC}
_LOADED = {_ESC + "\ufffe": "\x00", _ESC + _ESC: _ESC}
_TO_DB = re.compile("[\x00\uffff]")
_FROM_DB = re.compile("\uffff[\ufffe\uffff]")


def db_text(value: str) -> str:
    """``value`` as the database stores it (NUL escaped); ``db_text_loaded`` undoes it."""
    return _TO_DB.sub(lambda m: _STORED[m.group()], value)


def db_text_loaded(value: str) -> str:
    """The string that ``db_text`` stored as ``value``."""
    return _FROM_DB.sub(lambda m: _LOADED[m.group()], value)


def user_key(user_id: str) -> str:
    """The indexed key of a user id, its SHA-256: ids have any length, a B-tree entry at most about 2.7 kB."""
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


class UserIdField(models.TextField):
    """A user id as a source sent it: any length, any character (NUL too), not indexed (``user_key`` is)."""

    def get_prep_value(self, value: Any) -> Any:
        """Python -> database (lookups with ``=`` and ``__in`` come through here too)."""
        value = super().get_prep_value(value)
        return db_text(value) if isinstance(value, str) else value

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        """Database -> Python."""
        return db_text_loaded(value) if isinstance(value, str) else value

    def formfield(self, **kwargs: Any) -> Any:
        """One line in forms (the admin's silences), not a text area."""
        return super().formfield(**{"widget": forms.TextInput, **kwargs})


class IdentityKind(models.TextChoices):
    """Which credential NAT derived a user id from."""

    COOKIE = "cookie", "nat-session cookie"
    JWT_SUB = "jwt_sub", "JWT subject (sub)"
    API_KEY = "api_key", "API key"
    BASIC = "basic", "Basic credentials (user:password)"


class Identity(models.Model):
    """A label for the user id NAT derives from one credential.

    Only the label, the kind and the derived UUID are stored: never the cookie, key or password
    it came from (the UUID is a one-way hash of it).
    """

    label = models.CharField(max_length=200, db_index=True, help_text="The name to show for this user.")
    kind = models.CharField(max_length=16, choices=IdentityKind.choices)
    user_id = models.CharField(
        "user id",
        max_length=36,
        unique=True,
        help_text="uuid5(uuid5(NAMESPACE_DNS, 'nemo-agent-toolkit'), credential), as NAT reports it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label", "user_id"]
        verbose_name = "identity"
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        """The label and the user id it names."""
        return f"{self.label} ({self.user_id})"


class UserLife(models.Model):
    """One life of one user id: from the workflow's creation until the source dropped it.

    A user evicted by NAT (idle timeout) or lost in a server restart comes back, if at all, with
    fresh counters: that is a new life with ``life`` one higher. While a life is open
    (``ended_at`` is null) its latest values are in its newest ``UserSample``; when it ends, the
    last known values are copied here so that ended users list without touching the samples.
    """

    user_id = UserIdField()
    # Every lookup of a user's lives goes by this key (``user_key(user_id)``), never by the id.
    user_key = models.CharField(max_length=64)
    life = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(help_text="The workflow's created_at as the source reported it.")
    first_seen = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Comma-joined names of the sources that reported this user.
    sources = models.CharField(max_length=1024, default="", blank=True)
    # False when the life was already running the first time we saw it (dashboard start): its first
    # counters are a baseline, not traffic of that instant.
    from_zero = models.BooleanField(default=True)
    # Last known values, filled when the life ends.
    last_activity = models.DateTimeField(null=True, blank=True)
    ref_count = models.PositiveIntegerField(default=0)
    total_requests = models.PositiveBigIntegerField(default=0)
    error_count = models.PositiveBigIntegerField(default=0)
    avg_latency_ms = models.FloatField(default=0.0)
    functions = models.PositiveIntegerField(default=0)
    groups = models.PositiveIntegerField(default=0)
    exit_stack = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user_key", "life"], name="usermetrics_life_key_life")]
        # Ended users are listed newest first; open lives are loaded at start (ended_at IS NULL).
        indexes = [models.Index(fields=["ended_at"], name="usermetrics_life_ended")]

    def __str__(self) -> str:
        return f"{self.user_id} (life {self.life})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Keep ``user_key`` the key of ``user_id`` (the recorder's bulk inserts set it themselves)."""
        self.user_key = user_key(self.user_id)
        super().save(*args, **kwargs)


class UserSample(models.Model):
    """One user's counters at ``ts``, written only when they changed since the previous sample."""

    # (life, ts) is the key: no surrogate id column and no second index to store per row.
    pk = models.CompositePrimaryKey("life", "ts")
    life = models.ForeignKey(UserLife, on_delete=models.CASCADE, related_name="samples", db_index=False)
    ts = models.DateTimeField()
    ref_count = models.PositiveIntegerField()
    total_requests = models.PositiveBigIntegerField()
    error_count = models.PositiveBigIntegerField()
    avg_latency_ms = models.FloatField()
    functions = models.PositiveIntegerField()
    groups = models.PositiveIntegerField()
    exit_stack = models.PositiveIntegerField()
    # Change since the previous sample of this life (from zero for the first sample of a life that
    # was born while we watched): windowed rates are sums of these.
    d_requests = models.IntegerField()
    d_errors = models.IntegerField()
    d_latency_ms = models.FloatField(help_text="Change of avg_latency_ms x total_requests.")
    d_exit_stack = models.IntegerField()
    d_functions = models.IntegerField(help_text="Change of functions + groups.")

    class Meta:
        # The primary key serves one user's series and the newest sample of a life; this one
        # serves window aggregates over everyone, and pruning.
        indexes = [models.Index(fields=["ts"], name="usermetrics_sample_ts")]

    def __str__(self) -> str:
        return f"life {self.life_id} at {self.ts:%Y-%m-%d %H:%M:%S}"


class TotalsSample(models.Model):
    """Totals over every current user, one row per refresh."""

    ts = models.DateTimeField(unique=True)
    users = models.PositiveIntegerField()
    active = models.PositiveIntegerField()
    in_flight = models.PositiveIntegerField()
    requests = models.PositiveBigIntegerField(help_text="Sum of the current users' lifetime requests.")
    errors = models.PositiveBigIntegerField()
    avg_latency_ms = models.FloatField(help_text="Request-weighted mean of the current users' averages.")
    exit_stack = models.PositiveBigIntegerField()
    # Sums of the per-user sample deltas written in this refresh.
    d_requests = models.BigIntegerField()
    d_errors = models.BigIntegerField()
    d_latency_ms = models.FloatField()
    sources_up = models.PositiveSmallIntegerField()
    sources_total = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"totals at {self.ts:%Y-%m-%d %H:%M:%S}"


class UserHourly(models.Model):
    """One life's samples of one UTC hour, rolled up: kept long after the raw samples are pruned."""

    life = models.ForeignKey(UserLife, on_delete=models.CASCADE, related_name="hourly", db_index=False)
    hour = models.DateTimeField()
    d_requests = models.BigIntegerField()
    d_errors = models.BigIntegerField()
    d_latency_ms = models.FloatField()
    d_exit_stack = models.IntegerField()
    d_functions = models.IntegerField()
    max_ref_count = models.PositiveIntegerField()
    max_exit_stack = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["life", "hour"], name="usermetrics_userhourly_life_hour")]
        indexes = [models.Index(fields=["hour"], name="usermetrics_userhourly_hour")]

    def __str__(self) -> str:
        return f"life {self.life_id}, hour {self.hour:%Y-%m-%d %H:00}"


class TotalsHourly(models.Model):
    """The totals of one UTC hour, rolled up."""

    hour = models.DateTimeField(unique=True)
    samples = models.PositiveIntegerField()
    d_requests = models.BigIntegerField()
    d_errors = models.BigIntegerField()
    d_latency_ms = models.FloatField()
    max_users = models.PositiveIntegerField()
    max_active = models.PositiveIntegerField()
    max_in_flight = models.PositiveIntegerField()
    max_exit_stack = models.PositiveBigIntegerField()

    def __str__(self) -> str:
        return f"totals, hour {self.hour:%Y-%m-%d %H:00}"


class SourceSample(models.Model):
    """One source's health at one refresh: written when its state changes, else at most every SAMPLE_INTERVAL."""

    ts = models.DateTimeField()
    source = models.CharField(max_length=200)
    state = models.CharField(max_length=8, help_text="ok, stale or down")
    users = models.PositiveIntegerField()
    duration_ms = models.FloatField(null=True, help_text="How long the fetch took.")
    body_bytes = models.BigIntegerField(null=True, help_text="Size of the last good answer's body.")
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["source", "ts"]), models.Index(fields=["ts"])]

    def __str__(self) -> str:
        return f"{self.source} {self.state} at {self.ts:%Y-%m-%d %H:%M:%S}"


# --- alerts (usermetrics.alerts) -----------------------------------------------------------------


class AlertKind(models.TextChoices):
    """What a rule watches; ``usermetrics.alerts.rules`` reads each from the refresh."""

    SOURCE_DOWN = "source_down", "a source is down"
    SOURCE_STALE = "source_stale", "a source's data is older than the threshold (seconds)"
    USER_STUCK = "user_stuck", "a user is stuck (the lifecycle flag)"
    USER_ERRORING = "user_erroring", "a user is erroring (the lifecycle flag)"
    USER_RISING = "user_rising", "a user's resources are rising (the lifecycle flag)"
    USERS_TOTAL = "users_total", "the number of users is above the threshold"
    USERS_IN_FLIGHT = "users_in_flight", "the requests in flight over all users are above the threshold"


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
        null=True, blank=True, help_text="Counts: users. Source stale: seconds since its last good answer."
    )
    clear_threshold = models.FloatField(
        null=True, blank=True, help_text="Counts: resolve at or below this (empty: 90% of the threshold)."
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

"""ORM (sync): the history store, user lives, per-user samples, totals, hourly roll-ups and source health.

Samples are small on purpose (see ``bench/history_size.py``): a per-user row is written only when
that user's counters changed, refers to its life by an integer key instead of repeating the user
id, and carries the *delta* since the previous row of the same life so that every windowed rate
is one ``SUM`` over the window, correct across evictions and counter resets.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from usermetrics.models.fields import UserIdField, user_key


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
    # What NAT companions add (``history.latency``): the latency histogram's change, queued now, and
    # the change of waiting and running time, in a dozen bytes; NULL for users without companions.
    extras = models.BinaryField(null=True, blank=True, help_text="history.latency.encode")
    # Tokens and cost (``history.tokens``): the change of total tokens, its cost when used (nano-units of the
    # currency), and per model in a few bytes; NULL for users without companions (and, for the two sums, no change).
    d_tokens = models.BigIntegerField(null=True, blank=True)
    d_cost = models.BigIntegerField(null=True, blank=True, help_text="nano-units of the currency")
    llm = models.BinaryField(null=True, blank=True, help_text="history.tokens.encode")

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
    # The sum of the per-user ``extras`` written in this refresh (histogram, waiting, running) and
    # every user's queue now; NULL when no user has extras.
    extras = models.BinaryField(null=True, blank=True, help_text="history.latency.encode")
    # The sums of the per-user tokens and costs written in this refresh (``history.tokens``).
    d_tokens = models.BigIntegerField(null=True, blank=True)
    d_cost = models.BigIntegerField(null=True, blank=True, help_text="nano-units of the currency")
    llm = models.BinaryField(null=True, blank=True, help_text="history.tokens.encode")
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
    # The hour's samples' extras summed (the most queued at any of them); NULL without companions.
    extras = models.BinaryField(null=True, blank=True, help_text="history.latency.encode")
    d_tokens = models.BigIntegerField(null=True, blank=True)
    d_cost = models.BigIntegerField(null=True, blank=True, help_text="nano-units of the currency")
    llm = models.BinaryField(null=True, blank=True, help_text="history.tokens.encode")

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
    extras = models.BinaryField(null=True, blank=True, help_text="history.latency.encode")
    d_tokens = models.BigIntegerField(null=True, blank=True)
    d_cost = models.BigIntegerField(null=True, blank=True, help_text="nano-units of the currency")
    llm = models.BinaryField(null=True, blank=True, help_text="history.tokens.encode")

    def __str__(self) -> str:
        return f"totals, hour {self.hour:%Y-%m-%d %H:00}"


class LlmModel(models.Model):
    """A model name the history's ``llm`` columns refer to by this row's id (written once, not per sample)."""

    name = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return self.name


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

"""ORM (sync): the actions operators took on users (evict, hold, release), each with every NAT worker's answer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from usermetrics.models.fields import UserIdField, user_id_printable, user_key


class ActionKind(models.TextChoices):
    """What an operator asked of the NAT workers that run a user."""

    EVICT = "evict", "Evict"
    HOLD = "hold", "Hold"
    RELEASE = "release", "Release"


class ActionOutcome(models.TextChoices):
    """The action over every worker asked: each did it, some did, all refused, none answered, or it failed."""

    DONE = "done", "done"
    PARTLY = "partly", "partly done"
    REFUSED = "refused", "refused"
    NO_ANSWER = "no answer", "no answer"
    FAILED = "failed", "failed"


class UserAction(models.Model):
    """One action on one user: who asked, when, why, and what each NAT worker answered.

    ``by`` is kept as text because the account may be deleted later (then ``by_user`` is null) and
    an API token has no account at all ("token:…last 4"). ``results`` maps each worker's label to
    ``{"source", "status", "message", "in_flight", "at"}``; a worker expected but silent until the
    timeout is there with the status ``no answer``.
    """

    by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    by = models.CharField(max_length=255, help_text="Who asked: a user name, or token:<last 4> for an API token.")
    at = models.DateTimeField(default=timezone.now, help_text="When the action was asked.")
    user_id = UserIdField()
    # Every lookup of a user's actions goes by this key (``user_key(user_id)``), never by the id.
    user_key = models.CharField(max_length=64)
    action = models.CharField(max_length=16, choices=ActionKind.choices)
    reason = models.TextField(blank=True, default="")
    until = models.DateTimeField(null=True, blank=True, help_text="A hold: when it ends.")
    command_id = models.CharField(max_length=64)
    results = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=16, choices=ActionOutcome.choices)

    class Meta:
        # Nobody adds, changes or deletes an action in the admin: it is a log, written by the actions themselves.
        default_permissions = ("view",)
        permissions = [("act_on_users", "Can evict, hold and release users")]
        indexes = [models.Index(fields=["user_key", "-at"], name="usermetrics_action_user_at")]
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} {user_id_printable(self.user_id)} by {self.by} ({self.outcome})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Keep ``user_key`` the key of ``user_id``."""
        self.user_key = user_key(self.user_id)
        super().save(*args, **kwargs)

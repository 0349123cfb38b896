"""ORM (sync): known identities, the labels that name NAT's user UUIDs."""

from __future__ import annotations

from django.db import models


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

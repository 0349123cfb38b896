"""ORM (sync): the prices of models' tokens set in the admin, over the settings' ``PRICES``."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models

PER_MILLION = {"max_digits": 14, "decimal_places": 6, "validators": [MinValueValidator(0)]}


class ModelPrice(models.Model):
    """What one model's tokens cost, per million, in the deployment's currency (``USERMETRICS["CURRENCY"]``)."""

    model = models.CharField(
        max_length=255,
        unique=True,
        help_text="The model's name as NAT's LLM steps carry it (as a user's cost panel shows it).",
    )
    prompt = models.DecimalField("prompt price", **PER_MILLION, help_text="Per million prompt tokens (not cached).")
    completion = models.DecimalField(
        "completion price", **PER_MILLION, help_text="Per million completion tokens (reasoning tokens included)."
    )
    cached = models.DecimalField(
        "cached prompt price",
        **PER_MILLION,
        null=True,
        blank=True,
        help_text="Per million prompt tokens read from a prompt cache (empty: the prompt price).",
    )
    currency = models.CharField(max_length=8, help_text="Must be the deployment's currency.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        verbose_name = "model price"

    def __str__(self) -> str:
        """The model and its prices."""
        return f"{self.model}: {self.prompt}/{self.completion} {self.currency} per million"

"""App configuration for usermetrics (sync)."""

from django.apps import AppConfig


class UsermetricsConfig(AppConfig):
    """The usermetrics dashboard app."""

    name = "usermetrics"
    verbose_name = "User metrics"

"""App configuration for usermetrics (sync)."""

from django.apps import AppConfig


class UsermetricsConfig(AppConfig):
    """The usermetrics dashboard app."""

    name = "usermetrics"
    verbose_name = "User metrics"

    def ready(self) -> None:
        """Connect the signals that keep the label cache and the price table in step with the database."""
        from usermetrics import identities, pricing  # noqa: F401 - imported for their signal receivers

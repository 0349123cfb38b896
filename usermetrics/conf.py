"""Configuration: the USERMETRICS settings dict merged over defaults, read through get_config() (sync)."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Seconds between two refreshes of every source by the producer.
    "REFRESH_INTERVAL": 2.0,
    # Seconds one source may take to answer before its last good data is marked stale.
    "SOURCE_TIMEOUT": 5.0,
    # Bearer tokens accepted by the JSON API (from the env var USERMETRICS_API_TOKENS).
    "API_TOKENS": [],
    # The built-in demo workload (the embedded default's data source).
    "DEMO": {
        "ENABLED": True,
        "USERS": 40,
        "SEED": 0,
        "TIMEOUT": 120.0,  # per-user workflow timeout of the demo's session manager, seconds
        "CLEANUP_INTERVAL": 10.0,
        # Extra user ids the demo also drives (busy from the start), e.g. to see odd ids in the UI.
        "EXTRA_USERS": [],
    },
    # Largest websocket frame the live feed sends, in bytes. Daphne refuses frames over its
    # --websocket-max-message-size (1 MiB by default); a page that would not fit is shrunk.
    "FEED_MAX_FRAME_BYTES": 512 * 1024,
}


@cache
def get_config() -> dict[str, Any]:
    """The effective USERMETRICS configuration: defaults, then the settings dict over them."""
    user = getattr(settings, "USERMETRICS", {}) or {}
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"Unknown USERMETRICS keys: {', '.join(sorted(unknown))}")
    config = {**DEFAULTS, **user}
    # Nested dicts merge key by key so that one override keeps the other defaults.
    for key, default in DEFAULTS.items():
        if isinstance(default, dict):
            config[key] = {**default, **(user.get(key) or {})}
    return config


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    """Forget the cached configuration when a test overrides USERMETRICS."""
    if setting == "USERMETRICS":
        get_config.cache_clear()

"""Configuration: the USERMETRICS settings dict merged over defaults, read through get_config() (sync)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

if TYPE_CHECKING:
    from usermetrics.sources import NatHttpSource

DEFAULTS: dict[str, Any] = {
    # Seconds between two refreshes of every source by the producer.
    "REFRESH_INTERVAL": 2.0,
    # Seconds one source may take to answer before its last good data is marked stale.
    "SOURCE_TIMEOUT": 5.0,
    # Seconds a source may keep failing as "stale" (a blip) before it is called "down".
    "SOURCE_DOWN_AFTER": 30.0,
    # NAT servers to poll: [{"NAME": "nat-a", "URL": "http://host:8000", "TIMEOUT": 5, "HEADERS": {...},
    #   "TIMEZONE": "Europe/Berlin", "PER_USER_WORKFLOW_TIMEOUT": 1800, "MAX_RESPONSE_BYTES": 67108864}]
    # (only NAME and URL are required; env NAT_SOURCES="name=url,..." fills it in settings).
    "SOURCES": [],
    # Bearer tokens accepted by the JSON API (from the env var USERMETRICS_API_TOKENS).
    "API_TOKENS": [],
    # The built-in demo workload (the embedded default's data source).
    "DEMO": {
        "ENABLED": None,  # None: on unless SOURCES lists a NAT server
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
    # The history store (usermetrics.history): what is recorded, and for how long.
    "HISTORY": {
        "ENABLED": True,
        # A user's counters are written at most once per this many seconds (bounds the store's size);
        # a new life or an ended user is written at once.
        "SAMPLE_INTERVAL": 15.0,
        "RAW_RETENTION_DAYS": 7.0,  # raw samples, then only the hourly roll-ups
        "ROLLUP_RETENTION_DAYS": 90.0,  # hourly roll-ups and ended users
        "MAINTENANCE_INTERVAL": 300.0,  # seconds between two roll-up + prune passes
        "BATCH_SIZE": 1000,  # rows per INSERT
    },
    # Lifecycle flags (usermetrics.history.user_flags).
    "FLAGS": {
        "IDLE_AFTER": 60.0,  # seconds without activity and nothing in flight: idle
        "STUCK_AFTER": 300.0,  # seconds with requests in flight but no activity: stuck
        "RISING_MIN": 3,  # growth of the exit stack or of functions+groups over the window: rising
        "ERROR_RATE": 0.2,  # share of the window's requests that failed: erroring
        "ERROR_MIN_REQUESTS": 5,  # ... counted only with at least this many requests in the window
        "WINDOW": "1h",  # the window that rising and erroring look at
    },
    # GET /metrics (Prometheus): bearer tokens (API_TOKENS also work) or client addresses/networks.
    "METRICS_TOKENS": [],
    "METRICS_ALLOW": ["127.0.0.1", "::1"],
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


def nat_sources_from_config() -> list[NatHttpSource]:
    """One NatHttpSource per ``SOURCES`` entry; a wrong entry is an ImproperlyConfigured error."""
    from django.core.exceptions import ImproperlyConfigured

    from usermetrics.sources import NatHttpSource

    config = get_config()
    sources: list[NatHttpSource] = []
    for entry in config["SOURCES"]:
        try:
            sources.append(NatHttpSource.from_config(entry, default_timeout=float(config["SOURCE_TIMEOUT"])))
        except ValueError as exc:
            raise ImproperlyConfigured(f"USERMETRICS['SOURCES']: {exc}") from None
    return sources


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    """Forget the cached configuration when a test overrides USERMETRICS."""
    if setting == "USERMETRICS":
        get_config.cache_clear()

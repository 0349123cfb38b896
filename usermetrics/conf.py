"""Configuration (sync): the USERMETRICS settings dict over the defaults, cast once into ``get_config()``.

Every value is checked and cast here, so code reads ``get_config().history.sample_interval`` as a
float and never casts again. This module builds nothing (no sources, no services): it only says
what the settings mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from usermetrics.nat import SourceEntry, parse_nat_sources, source_entry_parse
from usermetrics.selection import WINDOWS, window_length

DEFAULTS: dict[str, Any] = {
    # Seconds between two refreshes of every source by the producer.
    "REFRESH_INTERVAL": 2.0,
    # Seconds one source may take to answer before its last good data is marked stale.
    "SOURCE_TIMEOUT": 5.0,
    # Seconds a source may keep failing as "stale" (a blip) before it is called "down".
    "SOURCE_DOWN_AFTER": 30.0,
    # NAT servers to poll: [{"NAME": "nat-a", "URL": "http://host:8000", "TIMEOUT": 5, "HEADERS": {...},
    #   "TIMEZONE": "Europe/Berlin", "PER_USER_WORKFLOW_TIMEOUT": 1800, "MAX_RESPONSE_BYTES": 67108864}]
    # (only NAME and URL are required), or NAT_SOURCES's string form "name=url,name2=url2".
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
    # Bytes a websocket may leave unsent in the server (a client that stops reading) before it is
    # closed with 4008: room for several whole frames on a slow link, never unbounded.
    "FEED_MAX_UNSENT_BYTES": 4 * 1024 * 1024,
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
    # Lifecycle flags (usermetrics.history.flags).
    "FLAGS": {
        "IDLE_AFTER": 60.0,  # seconds without activity and nothing in flight: idle
        "STUCK_AFTER": 300.0,  # seconds with requests in flight but no activity: stuck
        "RISING_MIN": 3,  # growth of the exit stack or of functions+groups over the window: rising
        "ERROR_RATE": 0.2,  # share of the window's requests that failed: erroring
        "ERROR_MIN_REQUESTS": 5,  # ... counted only with at least this many requests in the window
        "WINDOW": "1h",  # the window that rising and erroring look at
    },
    # Producer and faces (usermetrics.publish): "embedded" runs a producer in this process (a thread of
    # the one Daphne of the default); "external" serves only what a `manage.py runmonitor` publishes.
    "PRODUCER": "embedded",
    # Redis (env REDIS_URL): the bus, the lease and the views directory of several processes; unset,
    # everything stays in this process.
    "REDIS_URL": "",
    "REDIS_PREFIX": "usermetrics",  # keys, pub/sub channel and lease under this prefix
    # Seconds without a new board before a face says no producer is publishing (None: 3 intervals).
    "PRODUCER_TIMEOUT": None,
    # GET /metrics (Prometheus): bearer tokens (API_TOKENS also work); addresses/networks that need
    # none are opt-in (behind a local proxy every client is loopback, so loopback is no proof).
    "METRICS_TOKENS": [],
    "METRICS_ALLOW": [],
    # Alerts (usermetrics.alerts): evaluated by the producer after each refresh, sent through Apprise.
    "ALERTS": {
        "ENABLED": True,
        "URLS": [],  # default routes: Apprise URLs (env USERMETRICS_ALERT_URLS, comma-separated)
        "GROUP_NAMES": 5,  # a grouped notification names this many users, then says how many more
        "RETRY_MIN": 5.0,  # seconds before the first retry of a failed delivery; doubles each time ...
        "RETRY_MAX": 600.0,  # ... up to this
        "GIVE_UP_AFTER": 86400.0,  # seconds after which a delivery still failing is marked failed
        "DASHBOARD_URL": "",  # e.g. https://monitor.example.com: notifications link to its alerts page
        # The rules the database starts with (its first migration writes them; then the admin edits them).
        "RULES": [
            {"NAME": "source-down", "KIND": "source_down", "SEVERITY": "critical", "FOR": 60.0},
            {"NAME": "source-stale", "KIND": "source_stale", "SEVERITY": "warning", "THRESHOLD": 300.0},
            {"NAME": "user-stuck", "KIND": "user_stuck", "SEVERITY": "warning"},
            {"NAME": "user-erroring", "KIND": "user_erroring", "ENABLED": False, "FOR": 300.0},
            {"NAME": "user-rising", "KIND": "user_rising", "ENABLED": False, "FOR": 600.0},
            {"NAME": "users-total", "KIND": "users_total", "ENABLED": False, "SEVERITY": "info", "THRESHOLD": 10000},
            {"NAME": "users-in-flight", "KIND": "users_in_flight", "ENABLED": False, "THRESHOLD": 1000, "FOR": 120.0},
        ],
    },
}
# One ALERTS["RULES"] entry: what a key may say, and what it says when left out.
ALERT_RULE_DEFAULTS: dict[str, Any] = {
    "NAME": None,
    "KIND": None,
    "ENABLED": True,
    "SEVERITY": "warning",
    "THRESHOLD": None,  # counts: users; source_stale: seconds since the last good answer
    "CLEAR_THRESHOLD": None,  # counts: resolve at or below this (None: 90% of THRESHOLD)
    "FOR": 0.0,  # seconds the condition must hold before the rule fires
    "CLEAR_FOR": 30.0,  # seconds it must stay clear before the rule resolves
    "REMIND_EVERY": 3600.0,  # seconds between reminders while firing (0: none)
}


@dataclass(frozen=True)
class DemoConfig:
    """The built-in demo workload."""

    enabled: bool
    users: int
    seed: int
    timeout: float
    cleanup_interval: float
    extra_users: tuple[str, ...]


@dataclass(frozen=True)
class HistoryConfig:
    """The history store: what is recorded, and for how long."""

    enabled: bool
    sample_interval: float
    raw_retention_days: float
    rollup_retention_days: float
    maintenance_interval: float
    batch_size: int

    @property
    def raw_retention(self) -> timedelta:
        """How long raw samples and totals are kept."""
        return timedelta(days=self.raw_retention_days)

    @property
    def rollup_retention(self) -> timedelta:
        """How long hourly roll-ups and ended lives (hence ended users) are kept."""
        return timedelta(days=self.rollup_retention_days)


@dataclass(frozen=True)
class FlagsConfig:
    """Thresholds of the lifecycle flags."""

    idle_after: float
    stuck_after: float
    rising_min: int
    error_rate: float
    error_min_requests: int
    window: str

    @property
    def window_length(self) -> timedelta:
        """The window that ``rising`` and ``erroring`` look at."""
        return window_length(self.window)


@dataclass(frozen=True)
class AlertRuleDefault:
    """One rule of ``ALERTS["RULES"]``, as the database starts with it."""

    name: str
    kind: str
    enabled: bool
    severity: str
    threshold: float | None
    clear_threshold: float | None
    for_seconds: float
    clear_seconds: float
    remind_seconds: float


@dataclass(frozen=True)
class AlertsConfig:
    """Alerting: default routes, grouping, retries, and the rules a new database starts with."""

    enabled: bool
    urls: tuple[str, ...]
    group_names: int
    retry_min: float
    retry_max: float
    give_up_after: float
    dashboard_url: str
    rules: tuple[AlertRuleDefault, ...]


@dataclass(frozen=True)
class Config:
    """The effective USERMETRICS configuration, every value cast."""

    refresh_interval: float
    source_timeout: float
    source_down_after: float
    sources: tuple[SourceEntry, ...]
    api_tokens: tuple[str, ...]
    demo: DemoConfig
    feed_max_frame_bytes: int
    feed_max_unsent_bytes: int
    history: HistoryConfig
    flags: FlagsConfig
    metrics_tokens: tuple[str, ...]
    metrics_allow: tuple[str, ...]
    producer: str
    redis_url: str
    redis_prefix: str
    producer_timeout: float
    alerts: AlertsConfig


def _merged() -> dict[str, Any]:
    user = getattr(settings, "USERMETRICS", {}) or {}
    unknown = set(user) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(f"Unknown USERMETRICS keys: {', '.join(sorted(unknown))}")
    merged = {**DEFAULTS, **user}
    # Nested dicts merge key by key so that one override keeps the other defaults.
    for key, default in DEFAULTS.items():
        if isinstance(default, dict):
            extra = user.get(key) or {}
            wrong = set(extra) - set(default)
            if wrong:
                raise ImproperlyConfigured(f"Unknown USERMETRICS['{key}'] keys: {', '.join(sorted(wrong))}")
            merged[key] = {**default, **extra}
    return merged


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in (value or ()))


def _sources(value: Any) -> tuple[SourceEntry, ...]:
    entries = parse_nat_sources(value) if isinstance(value, str) else list(value or ())
    parsed: list[SourceEntry] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ImproperlyConfigured(f"USERMETRICS['SOURCES']: each source is a dict, got {entry!r}")
        try:
            parsed.append(source_entry_parse(entry))
        except ValueError as exc:
            raise ImproperlyConfigured(f"USERMETRICS['SOURCES']: {exc}") from None
    names = [e.name for e in parsed]
    if len(set(names)) != len(names):
        raise ImproperlyConfigured(f"USERMETRICS['SOURCES']: source names must be unique, got {names}")
    return tuple(parsed)


def _alert_rule(entry: Any) -> AlertRuleDefault:
    wrong = set(entry) - set(ALERT_RULE_DEFAULTS) if isinstance(entry, Mapping) else None
    if wrong is None or wrong or not entry.get("NAME") or not entry.get("KIND"):
        raise ImproperlyConfigured(f"USERMETRICS['ALERTS']['RULES']: a dict with NAME, KIND and {ALERT_RULE_DEFAULTS}")
    e = {**ALERT_RULE_DEFAULTS, **entry}
    optional = {k: None if e[k] is None else float(e[k]) for k in ("THRESHOLD", "CLEAR_THRESHOLD")}
    return AlertRuleDefault(
        name=str(e["NAME"]),
        kind=str(e["KIND"]),
        enabled=bool(e["ENABLED"]),
        severity=str(e["SEVERITY"]),
        threshold=optional["THRESHOLD"],
        clear_threshold=optional["CLEAR_THRESHOLD"],
        for_seconds=float(e["FOR"]),
        clear_seconds=float(e["CLEAR_FOR"]),
        remind_seconds=float(e["REMIND_EVERY"]),
    )


def _alerts(a: dict[str, Any]) -> AlertsConfig:
    return AlertsConfig(
        enabled=bool(a["ENABLED"]),
        urls=tuple(u.strip() for u in (a["URLS"].split(",") if isinstance(a["URLS"], str) else a["URLS"]) if u.strip()),
        group_names=max(1, int(a["GROUP_NAMES"])),
        retry_min=float(a["RETRY_MIN"]),
        retry_max=float(a["RETRY_MAX"]),
        give_up_after=float(a["GIVE_UP_AFTER"]),
        dashboard_url=str(a["DASHBOARD_URL"] or "").rstrip("/"),
        rules=tuple(_alert_rule(entry) for entry in a["RULES"]),
    )


def _build(raw: dict[str, Any]) -> Config:
    sources = _sources(raw["SOURCES"])
    demo, history, flags = raw["DEMO"], raw["HISTORY"], raw["FLAGS"]
    if str(flags["WINDOW"]) not in WINDOWS:
        raise ImproperlyConfigured(f"USERMETRICS['FLAGS']['WINDOW'] must be one of {', '.join(WINDOWS)}")
    # The producer checks only users that could raise a flag; that needs both thresholds above zero.
    if int(flags["RISING_MIN"]) < 1 or float(flags["ERROR_RATE"]) <= 0:
        raise ImproperlyConfigured("USERMETRICS['FLAGS']: RISING_MIN must be at least 1 and ERROR_RATE above 0")
    producer = str(raw["PRODUCER"])
    if producer not in ("embedded", "external"):
        raise ImproperlyConfigured(f"USERMETRICS['PRODUCER'] must be embedded or external, got {producer!r}")
    redis_url = str(raw["REDIS_URL"] or "")
    if producer == "external" and not redis_url:
        raise ImproperlyConfigured(
            "USERMETRICS_PRODUCER=external needs REDIS_URL: faces read what runmonitor publishes there"
        )
    interval = float(raw["REFRESH_INTERVAL"])
    timeout = raw["PRODUCER_TIMEOUT"]
    return Config(
        refresh_interval=interval,
        source_timeout=float(raw["SOURCE_TIMEOUT"]),
        source_down_after=float(raw["SOURCE_DOWN_AFTER"]),
        sources=sources,
        api_tokens=_strings(raw["API_TOKENS"]),
        demo=DemoConfig(
            # The one home of "the demo runs unless NAT servers are configured".
            enabled=bool(demo["ENABLED"]) if demo["ENABLED"] is not None else not sources,
            users=int(demo["USERS"]),
            seed=int(demo["SEED"]),
            timeout=float(demo["TIMEOUT"]),
            cleanup_interval=float(demo["CLEANUP_INTERVAL"]),
            extra_users=_strings(demo["EXTRA_USERS"]),
        ),
        feed_max_frame_bytes=int(raw["FEED_MAX_FRAME_BYTES"]),
        feed_max_unsent_bytes=int(raw["FEED_MAX_UNSENT_BYTES"]),
        history=HistoryConfig(
            enabled=bool(history["ENABLED"]),
            sample_interval=float(history["SAMPLE_INTERVAL"]),
            raw_retention_days=float(history["RAW_RETENTION_DAYS"]),
            rollup_retention_days=float(history["ROLLUP_RETENTION_DAYS"]),
            maintenance_interval=float(history["MAINTENANCE_INTERVAL"]),
            batch_size=int(history["BATCH_SIZE"]),
        ),
        flags=FlagsConfig(
            idle_after=float(flags["IDLE_AFTER"]),
            stuck_after=float(flags["STUCK_AFTER"]),
            rising_min=int(flags["RISING_MIN"]),
            error_rate=float(flags["ERROR_RATE"]),
            error_min_requests=int(flags["ERROR_MIN_REQUESTS"]),
            window=str(flags["WINDOW"]),
        ),
        metrics_tokens=_strings(raw["METRICS_TOKENS"]),
        metrics_allow=_strings(raw["METRICS_ALLOW"]),
        producer=producer,
        redis_url=redis_url,
        redis_prefix=str(raw["REDIS_PREFIX"]),
        producer_timeout=float(timeout) if timeout is not None else 3 * interval,
        alerts=_alerts(raw["ALERTS"]),
    )


@cache
def get_config() -> Config:
    """The effective configuration: defaults, then the settings dict over them, checked and cast."""
    raw = _merged()
    try:
        return _build(raw)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"USERMETRICS: {exc}") from None


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    """Forget the cached configuration when a test overrides USERMETRICS."""
    if setting == "USERMETRICS":
        get_config.cache_clear()

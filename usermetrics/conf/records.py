"""The effective configuration as frozen, typed records (sync): what ``get_config()`` returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from usermetrics.nat import SourceEntry
from usermetrics.prices import PriceTable
from usermetrics.windows import window_length


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
    window: str = "1h"  # user budgets: the window their cost or tokens are summed over


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
    actions_tokens: tuple[str, ...]
    actions_timeout: float
    prices: PriceTable  # the settings' table; the admin's prices go over it (``usermetrics.pricing``)
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

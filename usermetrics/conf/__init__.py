"""Configuration (sync): the USERMETRICS settings dict over the defaults, cast once into ``get_config()``.

Every value is checked and cast here, so code reads ``get_config().history.sample_interval`` as a
float and never casts again. Settings pass only what the environment sets, as raw strings
(``monitor_site/settings.py``, ``USERMETRICS_ENV``); each key's default, cast and meaning live in
``defaults.py`` (those of an alert rule's and a source's keys in ``entries.py``). This package
builds nothing (no sources, no services): it only says what the settings mean.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from .build import config_build
from .defaults import DEFAULTS, SETTINGS, Setting, leaves
from .entries import ALERT_RULE, ALERT_RULE_DEFAULTS, SOURCE_ENTRY
from .records import AlertRuleDefault, AlertsConfig, Config, DemoConfig, FlagsConfig, HistoryConfig

__all__ = [
    "ALERT_RULE",
    "ALERT_RULE_DEFAULTS",
    "DEFAULTS",
    "SETTINGS",
    "SOURCE_ENTRY",
    "AlertRuleDefault",
    "AlertsConfig",
    "Config",
    "DemoConfig",
    "FlagsConfig",
    "HistoryConfig",
    "Setting",
    "config_check",
    "get_config",
    "leaves",
]


@cache
def get_config() -> Config:
    """The effective configuration: defaults, then the settings dict over them, checked and cast."""
    # Errors name the environment variable that sets a key, where one does.
    env = {tuple(path): name for name, path in (getattr(settings, "USERMETRICS_ENV", None) or {}).items()}
    return config_build(getattr(settings, "USERMETRICS", None) or {}, env)


@checks.register()
def config_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A value conf cannot read stops ``manage.py check``, ``migrate`` and ``runmonitor`` before they start.

    Settings only pass the environment's strings on, so this is where a bad ``USERMETRICS_DEMO=maybe``
    is caught at start-up, as settings themselves once caught it.
    """
    try:
        get_config()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="usermetrics.E001")]
    return []


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    """Forget the cached configuration when a test overrides USERMETRICS (or the table of its variables)."""
    if setting in ("USERMETRICS", "USERMETRICS_ENV"):
        get_config.cache_clear()

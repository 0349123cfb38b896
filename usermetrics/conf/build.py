"""From the USERMETRICS dict to a ``Config`` (sync): merge over the defaults, cast every key, check what spans keys.

Each key is cast by its own ``Setting.cast`` (``defaults.py``), so a value may be typed or the raw
string of an environment variable; what depends on several keys (the demo rule, the producer's
need for Redis, the flags' thresholds) is decided here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from usermetrics.nat import SourceEntry, parse_nat_sources, source_entry_parse
from usermetrics.prices import PriceTable, price_table_parse

from .casts import where_words
from .defaults import SETTINGS, Setting
from .entries import ALERT_RULE
from .records import AlertRuleDefault, AlertsConfig, Config, DemoConfig, FlagsConfig, HistoryConfig

MAX_ACTIONS_TIMEOUT = 120.0  # seconds: an action's HTTP request waits this long at most

Record = TypeVar("Record")

# Where a key came from: the environment variable that sets it, by key path (settings' USERMETRICS_ENV, inverted).
EnvNames = Mapping[tuple[str, ...], str]


def _cast_tree(tree: Mapping[str, Any], user: Any, path: tuple[str, ...], env: EnvNames) -> dict[str, Any]:
    """``user`` merged over the defaults of ``tree`` key by key, every leaf cast; unknown keys are an error."""
    if not isinstance(user, Mapping):
        raise ImproperlyConfigured(f"{where_words(path)} must be a dict of its keys, got {user!r}")
    unknown = set(user) - set(tree)
    if unknown:
        where = f"{where_words(path)} keys" if path else "USERMETRICS keys"
        raise ImproperlyConfigured(f"Unknown {where}: {', '.join(sorted(map(str, unknown)))}")
    cast: dict[str, Any] = {}
    for key, node in tree.items():
        here = (*path, key)
        if isinstance(node, Setting):
            value = user.get(key, node.default)
            cast[key] = node.cast(value, where_words(here, env.get(here)))
        else:
            # Nested dicts merge key by key, so that one override keeps the other defaults.
            cast[key] = _cast_tree(node, user.get(key) or {}, here, env)
    return cast


def _sources(value: Any, where: str) -> tuple[SourceEntry, ...]:
    entries = parse_nat_sources(value) if isinstance(value, str) else list(value or ())
    parsed: list[SourceEntry] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ImproperlyConfigured(f"{where}: each source is a dict, got {entry!r}")
        try:
            parsed.append(source_entry_parse(entry))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{where}: {exc}") from None
    names = [e.name for e in parsed]
    if len(set(names)) != len(names):
        raise ImproperlyConfigured(f"{where}: source names must be unique, got {names}")
    return tuple(parsed)


def _prices(value: Any, currency: str, env: EnvNames) -> PriceTable:
    try:
        return price_table_parse(value, currency)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{where_words(('PRICES',), env.get(('PRICES',)))}: {exc}") from None


def _alert_rule(entry: Any) -> AlertRuleDefault:
    where = "USERMETRICS['ALERTS']['RULES']"
    wrong = set(entry) - set(ALERT_RULE) if isinstance(entry, Mapping) else None
    if wrong is None or wrong or not entry.get("NAME") or not entry.get("KIND"):
        raise ImproperlyConfigured(f"{where}: a dict with NAME, KIND and any of {', '.join(ALERT_RULE)}")
    e = {key: leaf.cast(entry.get(key, leaf.default), f"{where} {key}") for key, leaf in ALERT_RULE.items()}
    return AlertRuleDefault(
        name=e["NAME"],
        kind=e["KIND"],
        enabled=e["ENABLED"],
        severity=e["SEVERITY"],
        threshold=e["THRESHOLD"],
        clear_threshold=e["CLEAR_THRESHOLD"],
        for_seconds=e["FOR"],
        clear_seconds=e["CLEAR_FOR"],
        remind_seconds=e["REMIND_EVERY"],
        window=e["WINDOW"],
    )


def _record(cls: type[Record], section: Mapping[str, Any], **decided: Any) -> Record:
    """``cls`` of a settings section whose keys are its fields in capitals (``decided`` sets what spans keys)."""
    return cls(**{**{key.lower(): value for key, value in section.items()}, **decided})


def config_build(user: Any, env: EnvNames) -> Config:
    """The ``Config`` that the settings dict ``user`` describes over the defaults."""
    raw = _cast_tree(SETTINGS, user or {}, (), env)
    sources = _sources(raw["SOURCES"], where_words(("SOURCES",), env.get(("SOURCES",))))
    demo, history, flags, alerts = raw["DEMO"], raw["HISTORY"], raw["FLAGS"], raw["ALERTS"]
    # The producer checks only users that could raise a flag; that needs both thresholds above zero.
    if flags["RISING_MIN"] < 1 or flags["ERROR_RATE"] <= 0:
        raise ImproperlyConfigured("USERMETRICS['FLAGS']: RISING_MIN must be at least 1 and ERROR_RATE above 0")
    if raw["PRODUCER"] == "external" and not raw["REDIS_URL"]:
        raise ImproperlyConfigured(
            "USERMETRICS_PRODUCER=external needs REDIS_URL: faces read what runmonitor publishes there"
        )
    rules = alerts["RULES"]
    if isinstance(rules, (str, Mapping)) or not hasattr(rules, "__iter__"):
        raise ImproperlyConfigured(f"USERMETRICS['ALERTS']['RULES'] must be a list of rules, got {rules!r}")
    # An action's request waits this long for the NAT workers' answers: some time, and never for long.
    if not 0 < raw["ACTIONS_TIMEOUT"] <= MAX_ACTIONS_TIMEOUT:
        raise ImproperlyConfigured(
            f"USERMETRICS['ACTIONS_TIMEOUT'] must be above 0 and at most {MAX_ACTIONS_TIMEOUT:g} seconds,"
            f" got {raw['ACTIONS_TIMEOUT']!r}"
        )
    timeout = raw["PRODUCER_TIMEOUT"]
    return Config(
        refresh_interval=raw["REFRESH_INTERVAL"],
        source_timeout=raw["SOURCE_TIMEOUT"],
        source_down_after=raw["SOURCE_DOWN_AFTER"],
        sources=sources,
        api_tokens=raw["API_TOKENS"],
        actions_tokens=raw["ACTIONS_TOKENS"],
        actions_timeout=raw["ACTIONS_TIMEOUT"],
        prices=_prices(raw["PRICES"], raw["CURRENCY"], env),
        # The one home of "the demo runs unless NAT servers are configured".
        demo=_record(DemoConfig, demo, enabled=demo["ENABLED"] if demo["ENABLED"] is not None else not sources),
        feed_max_frame_bytes=raw["FEED_MAX_FRAME_BYTES"],
        feed_max_unsent_bytes=raw["FEED_MAX_UNSENT_BYTES"],
        history=_record(HistoryConfig, history),
        flags=_record(FlagsConfig, flags),
        metrics_tokens=raw["METRICS_TOKENS"],
        metrics_allow=raw["METRICS_ALLOW"],
        producer=raw["PRODUCER"],
        redis_url=raw["REDIS_URL"],
        redis_prefix=raw["REDIS_PREFIX"],
        producer_timeout=timeout if timeout is not None else 3 * raw["REFRESH_INTERVAL"],
        alerts=_record(
            AlertsConfig,
            alerts,
            group_names=max(1, alerts["GROUP_NAMES"]),
            dashboard_url=alerts["DASHBOARD_URL"].rstrip("/"),
            rules=tuple(_alert_rule(entry) for entry in rules),
        ),
    )

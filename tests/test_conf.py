"""Configuration: defaults merged under the settings, every value cast once, sources parsed, the demo rule."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from usermetrics.conf import DEFAULTS, get_config
from usermetrics.publish.assembly import monitor_build


def test_conf_merges_nested_defaults_and_casts(settings):
    settings.USERMETRICS = {"REFRESH_INTERVAL": "7", "DEMO": {"USERS": "3"}, "FLAGS": {"RISING_MIN": "4"}}
    config = get_config()
    assert config.refresh_interval == 7.0 and isinstance(config.refresh_interval, float)
    assert config.demo.users == 3 and config.demo.seed == DEFAULTS["DEMO"]["SEED"]
    assert config.flags.rising_min == 4 and config.flags.stuck_after == DEFAULTS["FLAGS"]["STUCK_AFTER"]
    assert config.source_timeout == DEFAULTS["SOURCE_TIMEOUT"]
    assert config.history.rollup_retention.days == 90
    assert get_config() is config  # read once


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"REFRESH_INTERVALL": 7}, "REFRESH_INTERVALL"),
        ({"HISTORY": {"SAMPLE_INTERVALL": 1}}, "SAMPLE_INTERVALL"),
        ({"REFRESH_INTERVAL": "often"}, "could not convert"),
        ({"FLAGS": {"WINDOW": "2h"}}, "WINDOW"),
        ({"SOURCES": [{"NAME": "a"}]}, "needs NAME and URL"),
        ({"SOURCES": [{"NAME": "a", "URL": "http://h"}, {"NAME": "a", "URL": "http://i"}]}, "unique"),
        ({"ALERTS": {"URL": ["json://h"]}}, "URL"),
        ({"ALERTS": {"RULES": [{"NAME": "x"}]}}, "RULES"),
        ({"ALERTS": {"RULES": [{"NAME": "x", "KIND": "user_stuck", "FOR_SECONDS": 3}]}}, "RULES"),
    ],
)
def test_conf_rejects_what_it_cannot_use(settings, override, message):
    settings.USERMETRICS = override
    with pytest.raises(ImproperlyConfigured, match=message):
        get_config()


def test_conf_sources_take_the_nat_sources_string_form(settings):
    settings.USERMETRICS = {"SOURCES": "a=http://h1:8000, http://h3:7000"}
    assert [(e.name, e.url) for e in get_config().sources] == [("a", "http://h1:8000"), ("h3:7000", "http://h3:7000")]


def test_conf_demo_runs_only_without_nat_sources_unless_asked(settings):
    settings.USERMETRICS = {"DEMO": {"ENABLED": None}}
    assert get_config().demo.enabled
    settings.USERMETRICS = {"DEMO": {"ENABLED": None}, "SOURCES": "a=http://h"}
    assert not get_config().demo.enabled
    settings.USERMETRICS = {"DEMO": {"ENABLED": True}, "SOURCES": [{"NAME": "a", "URL": "http://h"}]}
    service = monitor_build()
    assert [s.name for s in service.sources] == ["a", "demo"]
    assert service.timeout == DEFAULTS["SOURCE_TIMEOUT"]


def test_conf_alerts_defaults_and_routes(settings):
    settings.USERMETRICS = {"ALERTS": {"URLS": "json://a/x, ntfys://ntfy.sh/t", "GROUP_NAMES": "3"}}
    alerts = get_config().alerts
    assert alerts.urls == ("json://a/x", "ntfys://ntfy.sh/t") and alerts.group_names == 3 and alerts.enabled
    assert [(r.name, r.enabled) for r in alerts.rules][:3] == [
        ("source-down", True),
        ("source-stale", True),
        ("user-stuck", True),
    ]
    assert not any(r.enabled for r in alerts.rules[3:])  # on by default: the first three only
    stale = alerts.rules[1]
    assert (stale.threshold, stale.for_seconds, stale.clear_seconds, stale.remind_seconds) == (300.0, 0.0, 30.0, 3600.0)

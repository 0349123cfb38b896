"""Configuration: defaults merged under the settings, every value cast once, sources parsed, the demo rule."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from usermetrics.conf import DEFAULTS, config_check, get_config
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
        # An action waits this long for the workers: never not at all (every action failed), never for hours.
        ({"ACTIONS_TIMEOUT": 0}, "ACTIONS_TIMEOUT"),
        ({"ACTIONS_TIMEOUT": -5}, "ACTIONS_TIMEOUT"),
        ({"ACTIONS_TIMEOUT": "nan"}, "ACTIONS_TIMEOUT"),
        ({"ACTIONS_TIMEOUT": 86400}, "ACTIONS_TIMEOUT"),
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
    # On by default: those three, and user-saturated (only NAT companions' users can fire it).
    assert [r.name for r in alerts.rules[3:] if r.enabled] == ["user-saturated"]
    stale = alerts.rules[1]
    assert (stale.threshold, stale.for_seconds, stale.clear_seconds, stale.remind_seconds) == (300.0, 0.0, 30.0, 3600.0)


def test_conf_casts_the_strings_settings_pass_from_the_environment(settings):
    settings.USERMETRICS = {
        "REFRESH_INTERVAL": "0.5",
        "PRODUCER_TIMEOUT": "9",
        "API_TOKENS": " t1 , ,t2 ",
        "DEMO": {"ENABLED": "ON", "USERS": "12", "EXTRA_USERS": "a/b,<b>x</b>"},
        "FEED_MAX_FRAME_BYTES": "1024",
        "HISTORY": {"ENABLED": "off", "RAW_RETENTION_DAYS": "3"},
        "METRICS_ALLOW": "127.0.0.1,10.0.0.0/8",
        "ALERTS": {"ENABLED": "no", "DASHBOARD_URL": "https://m.example.com/"},
    }
    config = get_config()
    assert (config.refresh_interval, config.producer_timeout) == (0.5, 9.0)
    assert config.api_tokens == ("t1", "t2")
    assert (config.demo.enabled, config.demo.users, config.demo.extra_users) == (True, 12, ("a/b", "<b>x</b>"))
    assert config.feed_max_frame_bytes == 1024 and isinstance(config.feed_max_frame_bytes, int)
    assert (config.history.enabled, config.history.raw_retention_days) == (False, 3.0)
    assert config.metrics_allow == ("127.0.0.1", "10.0.0.0/8")
    assert not config.alerts.enabled and config.alerts.dashboard_url == "https://m.example.com"


@pytest.mark.parametrize(
    ("word", "expected"),
    [("1", True), ("true", True), (" Yes ", True), ("ON", True), ("0", False), ("False", False), ("no", False)],
)
def test_conf_on_off_words(settings, word, expected):
    settings.USERMETRICS = {"HISTORY": {"ENABLED": word}}
    assert get_config().history.enabled is expected


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"DEMO": {"ENABLED": "maybe"}}, r"USERMETRICS\['DEMO'\]\['ENABLED'\] \(env USERMETRICS_DEMO\) must be one of"),
        ({"HISTORY": {"ENABLED": "2"}}, r"\(env USERMETRICS_HISTORY\) must be one of 1/0, true/false"),
        ({"DEMO": {"USERS": "4.5"}}, r"\(env USERMETRICS_DEMO_USERS\): could not convert '4.5' to a whole number"),
        ({"PRODUCER": "both"}, r"\(env USERMETRICS_PRODUCER\) must be one of embedded, external"),
        ({"SOURCES": "a=ftp://h"}, r"USERMETRICS\['SOURCES'\] \(env NAT_SOURCES\): .*http://"),
    ],
)
def test_conf_errors_name_the_key_and_its_environment_variable(settings, override, message):
    # The table settings.py keeps, so that an error names what the operator actually set.
    assert settings.USERMETRICS_ENV["USERMETRICS_DEMO"] == ("DEMO", "ENABLED")
    settings.USERMETRICS = override
    with pytest.raises(ImproperlyConfigured, match=message):
        get_config()


def test_conf_check_reports_what_it_cannot_read(settings):
    settings.USERMETRICS = {"HISTORY": {"SAMPLE_INTERVAL": "soon"}}
    [error] = config_check()
    assert error.id == "usermetrics.E001" and "SAMPLE_INTERVAL" in error.msg
    settings.USERMETRICS = {}
    assert config_check() == []

"""The companion's settings: read from the NAT server's environment, with defaults, and clear errors."""

from __future__ import annotations

import inspect
import re

import pytest
from usermetrics_nat.settings import VARIABLES, CompanionSettings, SettingsError


def test_settings_defaults_report_nowhere_until_redis_is_given():
    s = CompanionSettings.from_env({}, config_name="probe")
    assert s.redis_url == "" and s.deployment == "nat" and s.stream == "usermetrics:nat:nat"
    assert (s.interval, s.full_every, s.maxlen, s.buffer, s.config_name) == (2.0, 15, 10_000, 60, "probe")
    assert s.commands  # takes usermetrics' commands unless told not to


def test_settings_from_the_environment():
    s = CompanionSettings.from_env(
        {
            "USERMETRICS_NAT_REDIS_URL": "redis://r:6379/1",
            "USERMETRICS_NAT_DEPLOYMENT": "prod-eu",
            "USERMETRICS_NAT_INTERVAL": "0.5",
            "USERMETRICS_NAT_FULL_EVERY": "4",
            "USERMETRICS_NAT_CONFIG_NAME": "support-bot",
            "USERMETRICS_NAT_COMMANDS": "Off",
        }
    )
    assert s.stream == "usermetrics:nat:prod-eu" and s.interval == 0.5 and s.full_every == 4
    assert s.config_name == "support-bot" and not s.commands
    assert CompanionSettings.from_env({"USERMETRICS_NAT_STREAM": "mine"}).stream == "mine"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("USERMETRICS_NAT_INTERVAL", "often", "must be a number"),
        ("USERMETRICS_NAT_INTERVAL", "0", "must be at least 0.05"),
        ("USERMETRICS_NAT_MAXLEN", "5", "must be at least 10"),
        ("USERMETRICS_NAT_COMMANDS", "maybe", "must be on or off"),
    ],
)
def test_settings_say_which_variable_is_wrong(name, value, words):
    with pytest.raises(SettingsError, match=f"{name} {words}"):
        CompanionSettings.from_env({name: value})


def test_settings_the_table_names_every_variable_read():
    read = set(re.findall(r'"(USERMETRICS_NAT_[A-Z_]+)"', inspect.getsource(CompanionSettings.from_env)))
    assert read == {v.name for v in VARIABLES}

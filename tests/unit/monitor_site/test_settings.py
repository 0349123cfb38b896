"""Settings: safe defaults, refusal to start insecurely, a clean deploy check, config merging."""

from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys

import pytest

from tests.support.machine import ROOT
from usermetrics.conf import DEFAULTS, SETTINGS, get_config, leaves

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 20 + "-production-secret-that-is-long-enough-0123456789",
    "ALLOWED_HOSTS": "monitor.example.com",
    "USERMETRICS_HTTPS": "1",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}}
    base["DJANGO_SETTINGS_MODULE"] = "monitor_site.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_settings_refuse_to_start_without_secret_key():
    result = _manage("check", DEBUG="0", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_settings_refuse_a_weak_secret_key():
    result = _manage("check", DEBUG="0", ALLOWED_HOSTS="example.com", SECRET_KEY="django-insecure-short")
    assert result.returncode != 0
    assert "SECRET_KEY must be a real secret" in result.stderr


@pytest.mark.parametrize("hosts", ["", "*"])
def test_settings_refuse_to_start_without_allowed_hosts(hosts):
    result = _manage("check", DEBUG="0", SECRET_KEY=PRODUCTION_ENV["SECRET_KEY"], ALLOWED_HOSTS=hosts)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must list" in result.stderr


def test_settings_debug_runs_on_local_defaults():
    result = _manage("check", DEBUG="1")
    assert result.returncode == 0, result.stderr


def test_settings_deploy_check_is_clean_for_documented_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_settings_bad_boolean_is_an_error():
    result = _manage("check", DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG must be one of" in result.stderr


def test_settings_daphne_first_and_asgi(settings):
    assert settings.INSTALLED_APPS[0] == "daphne"
    assert settings.ASGI_APPLICATION == "monitor_site.asgi.application"


LOG_PROBE = """
import logging
logging.basicConfig(level=logging.INFO, format="DAPHNE %(message)s")  # what Daphne's command line does first
import django
django.setup()
logging.getLogger("usermetrics.monitor").warning("source probe failed")
logging.getLogger("usermetrics.monitor").debug("a debug line")
logging.getLogger("httpx").info('HTTP Request: GET http://nat/monitor/users "HTTP/1.1 200 OK"')
logging.getLogger("daphne.server").info("Listening on TCP address 127.0.0.1:8000")
"""


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_settings_logging_one_format_once_and_fetches_at_debug(level):
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    env = {**base, "DJANGO_SETTINGS_MODULE": "monitor_site.settings", "DEBUG": "1", "USERMETRICS_LOG_LEVEL": level}
    result = subprocess.run(
        [sys.executable, "-c", LOG_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    probe = [line for line in lines if "source probe failed" in line]
    assert len(probe) == 1, lines  # once, not once per handler
    assert " WARNING usermetrics.monitor: source probe failed" in probe[0]
    assert not any(line.startswith("DAPHNE") for line in lines), lines  # one format for every logger
    assert any("daphne.server: Listening" in line for line in lines)
    fetches = [line for line in lines if "HTTP Request" in line]
    debug = [line for line in lines if "a debug line" in line]
    assert (len(fetches), len(debug)) == ((1, 1) if level == "DEBUG" else (0, 0))


def test_settings_commands_print_no_axes_banner():
    # The run command runs migrate, ensureadmin, Daphne and its producer: each printed axes' start-up line.
    result = _manage("check", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "AXES: BEGIN" not in result.stdout + result.stderr


def _settings_with(monkeypatch, **env: str) -> dict[str, object]:
    """monitor_site/settings.py run afresh with only ``env`` of its own variables set (plus DEBUG=1)."""
    scope = runpy.run_path(str(ROOT / "monitor_site" / "settings.py"))
    for name in [*scope["USERMETRICS_ENV"], *scope["SITE_ENV"]]:
        monkeypatch.delenv(name, raising=False)
    for name, value in {"DEBUG": "1", **env}.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "monitor_site" / "settings.py"))


def test_settings_pass_only_what_the_environment_sets(monkeypatch):
    assert _settings_with(monkeypatch)["USERMETRICS"] == {}
    scope = _settings_with(
        monkeypatch,
        USERMETRICS_HISTORY_RAW_DAYS="3",
        USERMETRICS_HISTORY="off",
        USERMETRICS_DEMO_USERS="12",
        NAT_SOURCES="a=http://h:8000",
        USERMETRICS_SOURCE_TIMEOUT=" ",  # blank is unset
    )
    assert scope["USERMETRICS"] == {
        "HISTORY": {"RAW_RETENTION_DAYS": "3", "ENABLED": "off"},
        "DEMO": {"USERS": "12"},
        "SOURCES": "a=http://h:8000",
    }


def test_settings_environment_table_names_keys_conf_knows():
    paths = {path for path, _ in leaves(SETTINGS)}
    table = runpy.run_path(str(ROOT / "monitor_site" / "settings.py"))["USERMETRICS_ENV"]
    assert not [name for name, path in table.items() if path not in paths]
    assert len(set(table.values())) == len(table)  # one variable per key


def test_settings_read_only_the_variables_their_tables_document():
    tree = ast.parse((ROOT / "monitor_site" / "settings.py").read_text())
    scope = runpy.run_path(str(ROOT / "monitor_site" / "settings.py"))
    documented = set(scope["SITE_ENV"]) | set(scope["USERMETRICS_ENV"])
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = ast.unparse(node.func)
            if name in {"os.environ.get", "site_env", "env_bool", "env_list"}:
                read.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            read.add(ast.unparse(node.slice).strip("'\""))
    assert {"DEBUG", "REDIS_URL", "USERMETRICS_LOG_LEVEL"} <= read  # the walk finds what it looks for
    assert read <= documented, read - documented


def test_settings_channel_layer_reads_confs_defaults_and_the_same_variables(monkeypatch, settings):
    scope = _settings_with(monkeypatch)
    assert scope["REDIS_PREFIX"] == DEFAULTS["REDIS_PREFIX"]
    assert scope["REFRESH_INTERVAL"] == DEFAULTS["REFRESH_INTERVAL"]
    assert scope["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    scope = _settings_with(
        monkeypatch, USERMETRICS_REDIS_PREFIX="p1", USERMETRICS_REFRESH_INTERVAL="4", REDIS_URL="redis://h:1/0"
    )
    settings.USERMETRICS = scope["USERMETRICS"]
    config = get_config()
    layer = scope["CHANNEL_LAYERS"]["default"]["CONFIG"]
    assert (layer["prefix"], layer["expiry"]) == (f"{config.redis_prefix}:asgi", 3 * config.refresh_interval)
    assert layer["hosts"][0]["address"] == config.redis_url


def test_settings_an_unreadable_value_stops_the_checks():
    result = _manage("check", DEBUG="1", USERMETRICS_DEMO="maybe")
    assert result.returncode != 0
    assert "(env USERMETRICS_DEMO) must be one of 1/0, true/false, yes/no, on/off; got 'maybe'" in result.stderr


def test_settings_a_bad_value_stops_the_asgi_application_at_start_up():
    # Daphne imports monitor_site.asgi before it serves: a bad value must stop it there, saying why.
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}}
    env = {**base, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "monitor_site.settings", "USERMETRICS_DEMO": "maybe"}
    result = subprocess.run(
        [sys.executable, "-c", "import monitor_site.asgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "USERMETRICS_DEMO" in result.stderr and "maybe" in result.stderr

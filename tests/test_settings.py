"""Settings: safe defaults, refusal to start insecurely, a clean deploy check, config merging."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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

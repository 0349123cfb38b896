"""A real Daphne serving the project in a subprocess, for whole-stack and browser tests (sync)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def server_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """Production-like settings with their own SQLite and no PostgreSQL/Redis from the CI env."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="monitor_site.settings",
        DEBUG="0",
        SECRET_KEY="browser-test-secret-" + "s" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        USERMETRICS_VAR_DIR=str(var_dir),
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> None:
    """Run a management command against the server's settings; fail loudly with its output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def wait_until(predicate: Callable[[], bool], *, what: str, deadline: float = 30.0, proc: object = None) -> None:
    """Poll ``predicate`` until true; fail after ``deadline`` seconds or when ``proc`` exits."""
    end = time.monotonic() + deadline
    while not predicate():
        if isinstance(proc, subprocess.Popen) and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def http_get(url: str, token: str | None = None) -> tuple[int, bytes]:
    """GET ``url`` (with a bearer ``token``): status and body; status 0 when nothing answers."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class Daphne:
    """``python -m daphne`` on ``port``, restartable on the same port."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        """Serve with ``env`` on 127.0.0.1:``port``, logging to ``log_path``."""
        self.port = port
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        """Start and wait until it answers HTTP."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "monitor_site.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(lambda: http_get(self.base + "/api/status")[0] == 401, what="Daphne to answer", proc=self.proc)

    def stop(self) -> None:
        """Stop it and wait for the process to end."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

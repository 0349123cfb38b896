"""Real processes for whole-stack and browser tests (sync): Daphne serving the project, and runmonitor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.machine import ROOT, free_port

# Seconds a process gets to stop on SIGTERM: an embedded producer's Daphne waits up to 10 s for its
# child to write its history (publish.child.STOP_WAIT).
STOP_WITHIN = 20.0


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


def http_get(url: str, token: str | None = None, *, session: str | None = None) -> tuple[int, bytes]:
    """GET ``url`` (with a bearer ``token``, or a ``session`` cookie): status and body; 0 when nothing answers."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if session:
        headers["Cookie"] = f"sessionid={session}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


class Process:
    """A project process (a command line run from the repository root), stopped for sure."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        """Run ``args`` with ``env``, logging to ``log_path``."""
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (without waiting for anything)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self) -> None:
        """Stop it with SIGTERM, as systemd or a container runtime would, and wait for it to end.

        A process that is still running ``STOP_WITHIN`` seconds later is killed, and that fails the
        test: every process of ours must stop cleanly on SIGTERM (children included).
        """
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError(f"{' '.join(self.args)} still ran {STOP_WITHIN} s after SIGTERM") from None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crash or the OOM killer would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def log(self) -> str:
        """What it wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Daphne(Process):
    """``python -m daphne`` on ``port``, restartable on the same port."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        """Serve with ``env`` on 127.0.0.1:``port``, logging to ``log_path``."""
        daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "monitor_site.asgi:application"]
        super().__init__(daphne, env, log_path)
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        """Start and wait until it answers HTTP."""
        super().start()
        wait_until(lambda: http_get(self.base + "/api/status")[0] == 401, what="Daphne to answer", proc=self.proc)


class Runmonitor(Process):
    """``manage.py runmonitor``: a producer publishing through Redis."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        """Produce with ``env``, logging to ``log_path``."""
        super().__init__([sys.executable, "manage.py", "runmonitor"], env, log_path)


STAFF_SESSION = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from usermetrics.outage import SessionStore
user, _ = get_user_model().objects.get_or_create(username=USERNAME, defaults={"is_staff": True})
user.user_permissions.add(*Permission.objects.filter(codename__in=PERMISSIONS))
store = SessionStore()
store["_auth_user_id"] = str(user.pk)
store["_auth_user_backend"] = "usermetrics.outage.OutageTolerantBackend"
store["_auth_user_hash"] = user.get_session_auth_hash()
store.create()
print(store.session_key)
"""


def staff_session(env: dict[str, str], username: str = "ws-staff", *, permissions: tuple[str, ...] = ()) -> str:
    """A logged-in staff session key of ``username`` (granted ``permissions``, by codename) for the server's database
    (a ``sessionid`` cookie value)."""
    code = STAFF_SESSION.replace("USERNAME", repr(username)).replace("PERMISSIONS", repr(list(permissions)))
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@contextmanager
def serving(env: dict[str, str], log_path: Path) -> Iterator[Daphne]:
    """A Daphne with ``env`` on a free loopback port, answering; always stopped (SIGTERM, checked) after."""
    server = Daphne(free_port(), env, log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()

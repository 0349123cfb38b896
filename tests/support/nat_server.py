"""Real NAT servers for tests (sync helpers): a cached NAT virtualenv and `nat serve` processes.

The virtualenv ``.venv-nat/`` at the repository root holds ``nvidia-nat-core==1.9.0``, the
SQLAlchemy it needs to serve, gunicorn (NAT's production mode: several worker processes), our NAT
companion (``companion/``, ``usermetrics_nat``) and the test plugin in ``tests/support/nat_plugin`` (a
per-user workflow without an LLM). It is built when absent or when the pins, the companion or the
plugin change, and reused otherwise. Where it cannot be built (no network) the NAT tests skip, except in CI
(``USERMETRICS_REQUIRE_SERVICES=1``), where that is a failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.machine import REQUIRE_SERVICES, ROOT, free_port

PLUGIN = Path(__file__).resolve().parent / "nat_plugin"
COMPANION = ROOT / "companion"
NAT_VENV = Path(os.environ.get("USERMETRICS_NAT_VENV", ROOT / ".venv-nat"))
NAT_REQUIREMENTS = ["nvidia-nat-core==1.9.0", "sqlalchemy[asyncio]~=2.0", "gunicorn==27.0.1"]
INSTALL_TIMEOUT = 20 * 60  # seconds; a cold install takes about a minute here
START_TIMEOUT = 90.0  # seconds for `nat serve` to answer


def _stamp() -> str:
    digest = hashlib.sha256("\n".join(NAT_REQUIREMENTS).encode())
    for tree in (PLUGIN, COMPANION):
        for path in sorted(tree.rglob("*")):
            if path.is_file() and "egg-info" not in str(path) and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"NAT test cannot run: {reason} (USERMETRICS_REQUIRE_SERVICES=1)")
    pytest.skip(f"NAT not available: {reason}")


def ensure_nat_venv() -> Path:
    """The ``nat`` executable of the cached virtualenv, built first when needed; skip or fail when it cannot be."""
    nat = NAT_VENV / "bin" / "nat"
    python = NAT_VENV / "bin" / "python"
    stamp_file = NAT_VENV / ".usermetrics-nat-stamp"
    stamp = _stamp()
    if nat.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return nat
    started = time.monotonic()
    try:
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(NAT_VENV)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, *NAT_REQUIREMENTS], check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        # Build from copies: setuptools leaves build/ and *.egg-info next to the sources. The
        # companion is installed as its docs say (`pip install ./companion`: its dependencies too),
        # then again by itself, so that a changed companion of the same version replaces the old.
        with tempfile.TemporaryDirectory() as tmp:
            ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
            plugin, companion = Path(tmp) / "plugin", Path(tmp) / "companion"
            shutil.copytree(PLUGIN, plugin, ignore=ignore)
            shutil.copytree(COMPANION, companion, ignore=ignore)
            again = ["--no-deps", "--force-reinstall"]
            for command in ([str(companion)], [*again, str(companion)], [*again, "--no-build-isolation", str(plugin)]):
                subprocess.run([*pip, *command], check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        _unavailable(f"installing NAT into {NAT_VENV} failed: {(exc.stderr or exc.stdout or '').strip()[-2000:]}")
    except (subprocess.TimeoutExpired, OSError) as exc:
        _unavailable(f"installing NAT into {NAT_VENV} failed: {exc}")
    stamp_file.write_text(stamp)
    print(f"\nNAT virtualenv ready in {time.monotonic() - started:.1f} s: {NAT_VENV}", file=sys.stderr)
    return nat


class NatServer:
    """One `nat serve` process with the probe workflow on a free loopback port; restartable."""

    def __init__(
        self,
        nat: Path,
        workdir: Path,
        *,
        name: str,
        per_user_workflow_timeout: float = 1800,
        cleanup_interval: float = 300,
        monitoring: bool = True,
        workers: int = 1,
        companion: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare the config in ``workdir``; ``start()`` runs the server.

        ``workers`` > 1 serves as NAT documents for production (gunicorn, one process each);
        ``companion`` switches our companion on (``runner_class``) with these environment variables.
        """
        self.nat = nat
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.per_user_workflow_timeout = per_user_workflow_timeout
        self.config = workdir / f"{name}.yml"
        front_end = ["  front_end:\n", "    _type: fastapi\n"]
        if workers > 1:
            front_end += [f"    workers: {workers}\n", "    use_gunicorn: true\n"]
        if companion is not None:
            front_end.append("    runner_class: usermetrics_nat.CompanionWorker\n")
        self.companion_env = dict(companion or {})
        self.config.write_text(
            "general:\n"
            f"  enable_per_user_monitoring: {'true' if monitoring else 'false'}\n"
            f"  per_user_workflow_timeout: {per_user_workflow_timeout}\n"
            f"  per_user_workflow_cleanup_interval: {cleanup_interval}\n" + "".join(front_end) + "workflow:\n"
            "  _type: usermetrics_probe\n"
        )
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NatServer:
        """Start the process (does not wait; see ``wait_ready``)."""
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "USERMETRICS_"))}
        env.update(self.companion_env)
        # NAT writes its whole config to a temporary file it deletes only on a clean exit: keep what a
        # stopped server leaves in the test's own directory, not in /tmp.
        env["TMPDIR"] = str(self.workdir)
        self.proc = subprocess.Popen(
            [
                str(self.nat),
                "serve",
                "--config_file",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the server answers ``/health``; fail with its log when it exits or takes too long."""
        end = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"nat serve {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > end:
                raise AssertionError(f"nat serve {self.name} did not answer in {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the process and wait for it (kill after 15 s)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

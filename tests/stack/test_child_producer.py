"""The embedded default's producer is a child process of its one Daphne: live, restarted, never orphaned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.daphne import Daphne, http_get, manage, server_env, serving, wait_until
from tests.support.machine import free_port

TOKEN = "child-producer-token-" + "c" * 24


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def producer_children(pid: int) -> list[int]:
    """Daphne's children that are its embedded producer (``runmonitor --embedded``)."""
    out = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"runmonitor" in cmdline and b"--embedded" in cmdline:
            out.append(child)
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def status(base: str) -> dict[str, object]:
    """``/api/status`` with the token (503 with the same document while no producer publishes)."""
    code, body = http_get(base + "/api/status", TOKEN)
    assert code in (200, 503), body
    return json.loads(body)


def embedded_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The embedded default with the demo, refreshing every half second (no Redis unless ``extra`` says so)."""
    return server_env(
        tmp_path, USERMETRICS_API_TOKENS=TOKEN, USERMETRICS_DEMO="1", USERMETRICS_REFRESH_INTERVAL="0.5", **extra
    )


def redis_env(tmp_path: Path) -> dict[str, str]:
    """The embedded default on Redis: its child is a plain producer publishing there, under a prefix of its own."""
    return embedded_env(
        tmp_path, REDIS_URL=os.environ["REDIS_URL"], USERMETRICS_REDIS_PREFIX=f"umchild-{uuid.uuid4().hex[:10]}"
    )


def terminated_within(server: Daphne, seconds: float) -> int | None:
    """SIGTERM ``server`` as systemd or a container runtime would; its exit code, or None if still running."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def embedded_daphne(tmp_path: Path):
    """The embedded default (no Redis) with the demo, refreshing every half second."""
    env = embedded_env(tmp_path)
    with serving(env, tmp_path / "embedded_daphne.log") as server:
        yield server


def test_child_producer_serves_restarts_and_ends_with_its_daphne(embedded_daphne):
    pid = embedded_daphne.proc.pid
    wait_until(lambda: len(producer_children(pid)) == 1, what="the embedded producer's process")
    [first] = producer_children(pid)
    # Boards arrive through the socket: the published sequence moves, from the child's producer.
    seq = status(embedded_daphne.base)["producer"]["seq"]
    wait_until(lambda: status(embedded_daphne.base)["producer"]["seq"] > seq, what="a newer board")
    name = status(embedded_daphne.base)["producer"]["producer"]
    assert status(embedded_daphne.base)["producer"]["state"] == "ok"

    # The child killed: Daphne starts another, and boards come from the new producer.
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: producer_children(pid) not in ([], [first]), what="a new embedded producer")
    [second] = producer_children(pid)
    wait_until(
        lambda: (
            status(embedded_daphne.base)["producer"]["producer"] not in (name, None)
            and status(embedded_daphne.base)["producer"]["state"] == "ok"
        ),
        what="boards of the new producer",
    )
    assert "exited with -9; starting it again" in embedded_daphne.log()

    # Daphne killed (no clean-up at all): its child notices the closed socket and ends too.
    embedded_daphne.kill()
    wait_until(lambda: not alive(second), what="the orphaned producer to end", deadline=15)


@pytest.mark.parametrize("layer", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_child_producer_daphne_stops_on_sigterm_child_included(tmp_path: Path, layer: str):
    # SIGTERM is what systemd, supervisors and containers send. Daphne used to log "Killed 1 pending
    # application instances" and then never exit (a thread still waited on the child), the child running on.
    env = embedded_env(tmp_path) if layer == "memory" else redis_env(tmp_path)
    manage(env, "migrate", "--noinput", "-v", "0")
    server = Daphne(free_port(), env, tmp_path / "embedded_daphne.log")
    server.start()
    try:
        pid = server.proc.pid
        wait_until(lambda: len(producer_children(pid)) == 1, what="the embedded producer's process")
        [child] = producer_children(pid)
        wait_until(lambda: status(server.base)["producer"]["state"] == "ok", what="a first board")
        code = terminated_within(server, 15)
        assert code is not None, f"Daphne still runs 15 s after SIGTERM:\n{server.log()[-2000:]}"
        assert not alive(child), "Daphne exited but left its producer running"
        assert "Traceback" not in server.log(), server.log()
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()
        server.proc = None


@pytest.mark.redis
def test_child_producer_on_redis_ends_with_a_killed_daphne(tmp_path: Path):
    # With Redis the child publishes there, not over a socket to its Daphne; it still ends with it.
    with serving(redis_env(tmp_path), tmp_path / "embedded_daphne.log") as server:
        pid = server.proc.pid
        wait_until(lambda: len(producer_children(pid)) == 1, what="the embedded producer's process")
        [child] = producer_children(pid)
        server.kill()
        wait_until(lambda: not alive(child), what="the orphaned producer to end", deadline=15)

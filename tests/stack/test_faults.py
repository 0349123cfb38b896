"""Faults on real processes: connect churn, Redis down and back, SIGKILL mid-refresh, the database locked or gone.

Every process runs on free loopback ports and is always stopped. Tests that need Redis or
PostgreSQL are marked and run wherever ``REDIS_URL`` / ``DATABASE_URL`` are set (CI); the Redis
they kill is their own ``redis-server``, never the shared one, and the PostgreSQL database they
make unavailable is a throwaway one they create.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import redis
import websockets

from tests.support.daphne import (
    Daphne,
    Process,
    Runmonitor,
    http_get,
    manage,
    rss,
    server_env,
    serving,
    staff_session,
    wait_until,
)
from tests.support.fake_nat import FakeNat
from tests.support.machine import free_port
from usermetrics.humanize import HISTORY_UNAVAILABLE

MiB = 1024 * 1024
TOKEN = "faults-token-" + "f" * 24


async def _first_snapshot(url: str, cookie: str, origin: str, *, within: float = 30) -> dict[str, object]:
    """The first snapshot frame a new socket of ``url`` gets (status messages are passed over)."""
    headers = {"Cookie": f"sessionid={cookie}", "Origin": origin}
    async with websockets.connect(url, additional_headers=headers, max_size=2**22, open_timeout=10) as ws:
        async with asyncio.timeout(within):
            while True:
                doc = json.loads(await ws.recv())
                if doc.get("type") == "snapshot":
                    return doc


async def _reconnecting_snapshot(url: str, cookie: str, origin: str, *, within: float = 30) -> dict[str, object]:
    """``_first_snapshot`` as the page gets it: a socket closed (4503) or refused is tried again.

    A socket that is accepted and then gets nothing is a failure (the timeout). One opened right
    after a Redis restart used to hang in its group_add about 2 runs in 10; sockets join no layer
    group any more (the face hands them their frames).
    """
    async with asyncio.timeout(within):
        while True:
            try:
                return await _first_snapshot(url, cookie, origin, within=within)
            except (websockets.ConnectionClosed, websockets.InvalidStatus, OSError):
                await asyncio.sleep(0.5)


# --- 500 connect/disconnect cycles -----------------------------------------------------------------


@pytest.mark.redis
def test_faults_connect_churn_on_daphne_and_redis(tmp_path: Path):
    prefix = f"umfaults-{uuid.uuid4().hex[:10]}"
    env = server_env(
        tmp_path,
        REDIS_URL=os.environ["REDIS_URL"],
        USERMETRICS_REDIS_PREFIX=prefix,
        USERMETRICS_DEMO="1",
        USERMETRICS_REFRESH_INTERVAL="0.5",
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    cookie = staff_session(env)
    server = Daphne(free_port(), env, tmp_path / "daphne.log")
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}"

        async def churn(count: int) -> None:
            for i in range(count):
                path = "/ws/monitor/" if i % 2 else "/ws/monitor/users/demo-user-001/"
                await _first_snapshot(url + path, cookie, server.base)

        asyncio.run(churn(50))
        assert server.proc is not None
        before = rss(server.proc.pid)
        asyncio.run(churn(500))
        after = rss(server.proc.pid)

        def advertised() -> dict[bytes, int]:
            # What the face tells the producer its sockets watch (renewed every half interval).
            return {key: store.hlen(key) for key in store.scan_iter(match=f"{prefix}:subscriptions:*")}

        wait_until(lambda: sum(advertised().values()) == 0, what=f"views to empty: {advertised()}", deadline=10)
        assert after - before < 30 * MiB, f"Daphne grew by {(after - before) // MiB} MiB over 500 cycles"
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        for key in store.scan_iter(match=f"{prefix}*"):
            store.delete(key)
        store.close()


@pytest.mark.redis
def test_faults_idle_socket_on_redis_is_not_closed(tmp_path: Path):
    # A face with no producer: its socket gets one status message, then nothing for a long while.
    # redis-py 8's default 5 s read timeout made the layer's 5 s blocking pop fail: 1011 every 5 s.
    prefix = f"umfaults-{uuid.uuid4().hex[:10]}"
    env = server_env(
        tmp_path,
        REDIS_URL=os.environ["REDIS_URL"],
        USERMETRICS_REDIS_PREFIX=prefix,
        USERMETRICS_PRODUCER="external",
        USERMETRICS_DEMO="0",
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    cookie = staff_session(env)
    try:
        with serving(env, tmp_path / "daphne.log") as server:
            messages = asyncio.run(_idle(server, cookie))
            assert messages and messages[0]["type"] == "status"
            assert "Timeout reading" not in server.log()
    finally:
        store = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in store.scan_iter(match=f"{prefix}*"):
            store.delete(key)
        store.close()


async def _idle(server: Daphne, cookie: str) -> list[dict[str, object]]:
    """What an idle socket of ``server`` gets in 12 s (AssertionError when the server closes it)."""
    headers = {"Cookie": f"sessionid={cookie}", "Origin": server.base}
    url = f"ws://127.0.0.1:{server.port}/ws/monitor/"
    got: list[dict[str, object]] = []
    async with websockets.connect(url, additional_headers=headers) as ws:
        try:
            async with asyncio.timeout(12):  # more than two of the layer's 5 s blocking pops
                while True:
                    got.append(json.loads(await ws.recv()))
        except TimeoutError:
            return got  # still open after 12 s
    raise AssertionError(f"closed: {ws.close_code} {ws.close_reason}")


# --- Redis down and back ---------------------------------------------------------------------------


class OwnRedis(Process):
    """A ``redis-server`` of this test's own on ``port`` (no persistence): killed and restarted at will."""

    def __init__(self, port: int, log_path: Path) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        super().__init__(args, dict(os.environ), log_path)
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        """Start and wait until it answers PING."""
        super().start()

        def pong() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        wait_until(pong, what="redis-server to answer", proc=self.proc)


@pytest.mark.redis  # CI has redis-server; this test runs its own and never touches the shared one
def test_faults_redis_down_and_back(tmp_path: Path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    own = OwnRedis(free_port(), tmp_path / "redis.log")
    own.start()
    nat = FakeNat(40, moving=0.2).start()
    env = server_env(
        tmp_path,
        REDIS_URL=own.url,
        NAT_SOURCES=f"fake={nat.url}",
        USERMETRICS_DEMO="0",
        USERMETRICS_REFRESH_INTERVAL="0.5",
        USERMETRICS_API_TOKENS=TOKEN,
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    cookie = staff_session(env)
    producer = Runmonitor(env, tmp_path / "producer.log")
    face = Daphne(free_port(), {**env, "USERMETRICS_PRODUCER": "external"}, tmp_path / "face.log")
    processes: list[Process] = [producer, face]
    try:
        producer.start()
        face.start()

        def status() -> dict[str, object]:
            code, body = http_get(face.base + "/api/status", TOKEN)
            return {"code": code, **(json.loads(body) if body else {})}

        wait_until(lambda: status()["code"] == 200, what="the first board", deadline=40)
        ws = f"ws://127.0.0.1:{face.port}/ws/monitor/"
        assert asyncio.run(_first_snapshot(ws, cookie, face.base))["total_active_users"] == 40

        async def held_socket_when_redis_dies() -> tuple[int | None, str | None]:
            headers = {"Cookie": f"sessionid={cookie}", "Origin": face.base}
            sock = await websockets.connect(ws, additional_headers=headers, max_size=2**22)
            try:
                await sock.recv()
                await asyncio.to_thread(own.kill)
                with contextlib.suppress(websockets.ConnectionClosed):
                    async with asyncio.timeout(30):
                        while True:
                            await sock.recv()
            finally:
                await sock.close()
            return sock.close_code, sock.close_reason

        # An open socket is closed with 4503 (its channel is received through Redis): the browser reconnects.
        assert asyncio.run(held_socket_when_redis_dies()) == (4503, "live feed unavailable")
        # The face says so: no producer is publishing (the API, the page); it serves what it had.
        wait_until(lambda: status().get("producer", {}).get("state") == "absent", what="absent", deadline=30)
        assert status()["code"] == 503
        code, body = http_get(face.base + "/", session=cookie)
        assert code == 200 and "No producer is publishing" in body.decode()
        assert http_get(face.base + "/monitor/users", TOKEN)[0] == 503

        own.start()  # the same port, empty: producer and face must find their way back by themselves
        wait_until(lambda: status()["code"] == 200, what="publishing again", deadline=60)
        seq = status()["seq"]
        wait_until(lambda: status()["seq"] > seq, what="boards advancing", deadline=30)
        snapshot = asyncio.run(_reconnecting_snapshot(ws, cookie, face.base))
        assert snapshot["total_active_users"] == 40 and len(snapshot["users"]) == 40
        for process in processes:
            assert process.proc is not None and process.proc.poll() is None, process.log()
            assert "Traceback" not in process.log()
    finally:
        for process in processes:
            process.stop()
        own.stop()
        nat.stop()


# --- SIGKILL mid-refresh ---------------------------------------------------------------------------


def test_faults_sigkill_mid_refresh_leaves_no_half_written_history(tmp_path: Path):
    users = 3000
    nat = FakeNat(users, moving=1.0).start()  # every user changes each fetch: every refresh writes all
    env = server_env(
        tmp_path,
        NAT_SOURCES=f"fake={nat.url}",
        USERMETRICS_DEMO="0",
        USERMETRICS_REFRESH_INTERVAL="0.5",
        USERMETRICS_HISTORY_SAMPLE_INTERVAL="0",  # no user held back: a refresh's batch is every user
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    cookie = staff_session(env)
    server = Daphne(free_port(), env, tmp_path / "daphne.log")
    db = tmp_path / "db.sqlite3"

    def refreshes() -> int:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=20) as conn:
            return conn.execute("SELECT COUNT(*) FROM usermetrics_totalssample").fetchone()[0]

    try:
        server.start()
        ws = f"ws://127.0.0.1:{server.port}/ws/monitor/"
        for kill in range(5):
            seen = refreshes()
            wait_until(lambda seen=seen: refreshes() >= seen + 2, what="the producer writing", deadline=60)
            time.sleep(0.1 * kill)  # at a different point of a refresh each time
            server.kill()
            server.start()
            # The client reconnects to the restarted server and gets a full snapshot at once.
            snapshot = asyncio.run(_reconnecting_snapshot(ws, cookie, server.base))
            assert snapshot["total_active_users"] == users and len(snapshot["users"]) == 100
            assert snapshot["view"]["matched"] == users
        wait_until(lambda: refreshes() >= 12, what="more refreshes", deadline=60)
    finally:
        server.stop()
        nat.stop()
    with sqlite3.connect(db) as conn:
        per_refresh = conn.execute(
            "SELECT t.ts, COUNT(s.ts) FROM usermetrics_totalssample t"
            " LEFT JOIN usermetrics_usersample s ON s.ts = t.ts GROUP BY t.ts"
        ).fetchall()
        orphans = conn.execute(
            "SELECT COUNT(*) FROM usermetrics_usersample WHERE ts NOT IN (SELECT ts FROM usermetrics_totalssample)"
        ).fetchone()[0]
        lives = conn.execute("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM usermetrics_userlife").fetchone()
    # Each refresh's samples are one transaction with its totals row: all of them, or none.
    assert len(per_refresh) >= 12
    assert {count for _, count in per_refresh} == {users}, per_refresh
    assert orphans == 0
    assert lives == (users, users)  # a restart continues the open lives, never a second one


# --- the database locked ---------------------------------------------------------------------------


def _recording_env(tmp_path: Path, nat: FakeNat) -> dict[str, str]:
    """A Daphne's settings for the database faults: ``nat`` read every 0.5 s, every refresh recorded."""
    return server_env(
        tmp_path,
        NAT_SOURCES=f"fake={nat.url}",
        USERMETRICS_DEMO="0",
        USERMETRICS_REFRESH_INTERVAL="0.5",
        USERMETRICS_HISTORY_SAMPLE_INTERVAL="0",
        USERMETRICS_API_TOKENS=TOKEN,
    )


def _seq(server: Daphne) -> int:
    """The refresh number ``server`` serves now (its status API, with the token)."""
    code, body = http_get(server.base + "/api/status", TOKEN)
    assert code == 200, body
    return int(json.loads(body)["seq"])


def test_faults_sqlite_locked_live_faces_keep_working_and_history_catches_up(tmp_path: Path):
    nat = FakeNat(200, moving=0.5).start()
    env = _recording_env(tmp_path, nat)
    manage(env, "migrate", "--noinput", "-v", "0")
    cookie = staff_session(env)
    server = Daphne(free_port(), env, tmp_path / "daphne.log")
    db = tmp_path / "db.sqlite3"

    def last_recorded() -> str | None:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute("SELECT MAX(ts) FROM usermetrics_totalssample").fetchone()[0]

    def seq() -> int:
        return _seq(server)

    try:
        server.start()
        wait_until(lambda: last_recorded() is not None, what="history", deadline=60)
        ws = f"ws://127.0.0.1:{server.port}/ws/monitor/"
        lock = sqlite3.connect(db, timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # no other connection writes until it ends
        try:
            locked_at = last_recorded()
            start = seq()
            # Longer than the server's 20 s busy timeout: the recorder's writes fail meanwhile.
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                for path, kwargs in (("/", {"session": cookie}), ("/monitor/users", {"token": TOKEN})):
                    code, _ = http_get(server.base + path, **kwargs)
                    assert code == 200, (path, code)
                time.sleep(0.5)
            assert seq() > start + 10  # the producer kept refreshing from memory
            snapshot = asyncio.run(_first_snapshot(ws, cookie, server.base))
            assert snapshot["total_active_users"] == 200
            assert last_recorded() == locked_at  # nothing was written while locked
        finally:
            lock.rollback()
            lock.close()
        # Released: it recovers by itself and the history catches up (counters are cumulative).
        wait_until(lambda: (last_recorded() or "") > locked_at, what="history to resume", deadline=60)
        assert "database is locked" in server.log() and " 500 " not in server.log()
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
        nat.stop()


# --- PostgreSQL gone -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_faults_postgres_gone_pages_api_and_feed_keep_working_and_history_catches_up(tmp_path: Path):
    admin_url = os.environ["DATABASE_URL"]
    name = f"um_faults_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')  # a throwaway database: the shared server keeps running
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    nat = FakeNat(100, moving=0.5).start()
    env = _recording_env(tmp_path, nat)
    env["DATABASE_URL"] = url
    server = Daphne(free_port(), env, tmp_path / "daphne.log")

    def last_recorded() -> object:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT MAX(ts) FROM usermetrics_totalssample").fetchone()[0]

    def seq() -> int:
        return _seq(server)

    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        cookie = staff_session(env)
        server.start()
        wait_until(lambda: last_recorded() is not None, what="history", deadline=60)
        code, body = http_get(server.base + "/monitor/users", TOKEN)
        user_id = json.loads(body)["users"][0]["user_id"]
        pages = ["/", f"/users/{user_id}/", "/sources/", "/alerts/"]
        for path in pages:  # the operator had the dashboard open before the outage
            code, body = http_get(server.base + path, session=cookie)
            assert code == 200 and HISTORY_UNAVAILABLE not in body.decode(), (path, code)

        async def socket_through_the_outage() -> list[int]:
            headers = {"Cookie": f"sessionid={cookie}", "Origin": server.base}
            seqs: list[int] = []
            ws = f"ws://127.0.0.1:{server.port}/ws/monitor/"
            async with websockets.connect(ws, additional_headers=headers, max_size=2**22) as sock:
                seqs.append(json.loads(await sock.recv())["seq"])
                # Gone: no new connection, and every existing one cut.
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                start = await asyncio.to_thread(seq)
                async with asyncio.timeout(30):
                    while len(seqs) < 15:  # the socket keeps streaming (its session re-check cannot run)
                        doc = json.loads(await sock.recv())
                        if doc.get("type") == "snapshot":
                            seqs.append(doc["seq"])
                code, _ = await asyncio.to_thread(http_get, server.base + "/monitor/users", TOKEN)
                assert code == 200  # the API serves the board from memory
                assert await asyncio.to_thread(seq) > start
                # The pages: their live part from memory, and they say the history is unavailable.
                for path in pages:
                    code, body = await asyncio.to_thread(http_get, server.base + path, session=cookie)
                    assert code == 200 and HISTORY_UNAVAILABLE in body.decode(), (path, code)
                    assert user_id in body.decode() or path != pages[1], path  # the user, live
                # What the pages fetch from the history answers a JSON 503 that says why.
                code, body = await asyncio.to_thread(http_get, server.base + "/api/overview/history", session=cookie)
                assert code == 503 and json.loads(body) == {"detail": HISTORY_UNAVAILABLE}
                # A new socket of the same login (a reload, a second tab) gets its snapshot.
                snapshot = await _first_snapshot(ws, cookie, server.base)
                assert snapshot["total_active_users"] == 100
            return seqs

        seqs = asyncio.run(socket_through_the_outage())
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        restored = datetime.now(UTC)
        # Back: the recorder reconnects by itself and the history catches up.
        wait_until(lambda: last_recorded() > restored, what="history to resume", deadline=60)
        code, body = http_get(server.base + "/", session=cookie)
        assert code == 200 and HISTORY_UNAVAILABLE not in body.decode()  # the page has its history again
        assert " 500 " not in server.log()
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
        nat.stop()
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

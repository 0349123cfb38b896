"""Faults on real processes: connect churn, Redis down and back, SIGKILL mid-refresh, the database locked or gone.

Every process runs on free loopback ports and is always stopped. Tests that need Redis or
PostgreSQL are marked and run wherever ``REDIS_URL`` / ``DATABASE_URL`` are set (CI); the Redis
they kill is their own ``redis-server``, never the shared one, and the PostgreSQL database they
make unavailable is a throwaway one they create.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
import websockets
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from monitor_site.asgi import application
from tests.conftest import free_port
from tests.daphne import Daphne, Process, Runmonitor, http_get, manage, server_env, staff_session, wait_until
from tests.factories import StaticSource, sample_users
from tests.fake_nat import FakeNat
from usermetrics import services

MiB = 1024 * 1024
TOKEN = "faults-token-" + "f" * 24


def rss(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _first_snapshot(url: str, cookie: str, origin: str, *, within: float = 30) -> dict[str, object]:
    """The first snapshot frame a new socket of ``url`` gets (status messages are passed over)."""
    headers = {"Cookie": f"sessionid={cookie}", "Origin": origin}
    async with websockets.connect(url, additional_headers=headers, max_size=2**22, open_timeout=10) as ws:
        async with asyncio.timeout(within):
            while True:
                doc = json.loads(await ws.recv())
                if doc.get("type") == "snapshot":
                    return doc


# --- 500 connect/disconnect cycles -----------------------------------------------------------------


async def _group_members(layer: object) -> dict[str, int]:
    """Every non-empty group of the channel layer and its member count (in memory, or in Redis)."""
    groups = getattr(layer, "groups", None)
    if groups is not None:
        return {group: len(members) for group, members in groups.items() if members}
    store = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
    try:
        pattern = f"{layer.prefix}:group:*"  # type: ignore[attr-defined]
        return {key.decode(): n async for key in store.scan_iter(match=pattern) if (n := await store.zcard(key))}
    finally:
        await store.aclose()


@pytest.mark.django_db(transaction=True)
async def test_faults_connect_churn_leaves_no_group_members(install_service, staff_user, settings):
    # In process on the in-memory layer (its groups are a dict to read); Redis's groups are checked
    # on a real Daphne below.
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    await layer.flush()
    await install_service([StaticSource("static", sample_users())], interval=3600)
    client = AsyncClient()
    await client.aforce_login(staff_user)
    headers = [
        (b"host", b"testserver"),
        (b"origin", b"http://testserver"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    paths = ["/ws/monitor/", "/ws/monitor/?sort=user_id&page_size=3", "/ws/monitor/users/u01/", "/ws/nothing"]

    async def cycle(i: int) -> None:
        comm = WebsocketCommunicator(application, paths[i % len(paths)], headers=headers)
        connected, _ = await comm.connect(timeout=5)
        if connected:
            await comm.receive_from(timeout=5)
            if i % 3 == 0:  # leave while a subscription is being applied
                await comm.send_json_to({"type": "subscribe", "page": i % 5 + 1, "page_size": 2})
        await comm.disconnect()

    for i in range(50):  # warm: every code path and cache once
        await cycle(i)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(500):
            await cycle(i)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert await _group_members(layer) == {}
    assert services.face_get().registry.channels() == []
    assert grown < 2 * MiB, f"{grown} bytes still allocated after 500 cycles"


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

        def members() -> dict[bytes, int]:
            return {key: store.zcard(key) for key in store.scan_iter(match=f"{prefix}:asgi:group:*")}

        wait_until(lambda: sum(members().values()) == 0, what=f"groups to empty: {members()}", deadline=10)
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
    server = Daphne(free_port(), env, tmp_path / "daphne.log")
    server.start()
    try:

        async def idle() -> list[dict[str, object]]:
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

        messages = asyncio.run(idle())
        assert messages and messages[0]["type"] == "status"
        assert "Timeout reading" not in server.log()
    finally:
        server.stop()
        store = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in store.scan_iter(match=f"{prefix}*"):
            store.delete(key)
        store.close()

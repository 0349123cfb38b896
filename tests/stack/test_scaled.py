"""The scaled topology for real: runmonitor producers and Daphne faces on Redis, against a counting NAT.

Every process is started on free loopback ports and always stopped. Each test has a Redis prefix of
its own, so runs of other checkouts on the same Redis never meet it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
import websockets

from tests.support.daphne import Daphne, Runmonitor, http_get, manage, server_env, staff_session, wait_until
from tests.support.fake_nat import FakeNat
from tests.support.machine import free_port

pytestmark = pytest.mark.redis

TOKEN = "scaled-token-" + "q" * 24


class Topology:
    """A fake NAT, a shared SQLite, a Redis prefix, and the processes a test starts on them."""

    def __init__(self, tmp: Path, *, users: int = 40, interval: float = 0.5) -> None:
        self.tmp = tmp
        self.interval = interval
        self.nat = FakeNat(users, moving=0.2).start()
        self.prefix = f"umscaled-{uuid.uuid4().hex[:10]}"
        self.redis_url = os.environ["REDIS_URL"]
        self.redis = redis.Redis.from_url(self.redis_url)
        self.env = server_env(
            tmp,
            REDIS_URL=self.redis_url,
            USERMETRICS_REDIS_PREFIX=self.prefix,
            NAT_SOURCES=f"fake={self.nat.url}",
            USERMETRICS_DEMO="0",
            USERMETRICS_REFRESH_INTERVAL=str(interval),
            USERMETRICS_API_TOKENS=TOKEN,
        )
        manage(self.env, "migrate", "--noinput", "-v", "0")
        self.processes: list[Daphne | Runmonitor] = []

    def producer(self, name: str) -> Runmonitor:
        process = Runmonitor(self.env, self.tmp / f"{name}.log")
        process.start()
        self.processes.append(process)
        return process

    def face(self, name: str) -> Daphne:
        process = Daphne(free_port(), {**self.env, "USERMETRICS_PRODUCER": "external"}, self.tmp / f"{name}.log")
        process.start()
        self.processes.append(process)
        return process

    def published(self) -> dict[str, object] | None:
        """The meta of the board on the bus (producer, seq, published_at)."""
        raw = self.redis.get(f"{self.prefix}:board:meta")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.nat.stop()
        for key in self.redis.scan_iter(match=f"{self.prefix}*"):
            self.redis.delete(key)
        self.redis.close()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    top = Topology(tmp_path)
    try:
        yield top
    finally:
        top.close()


async def _frames(url: str, cookie: str, count: int) -> list[dict[str, object]]:
    """The first ``count`` snapshot frames a socket of ``url`` receives (statuses are left out); 30 s at most."""
    frames: list[dict[str, object]] = []
    origin = url.replace("ws://", "http://").split("/ws/")[0]
    headers = {"Cookie": f"sessionid={cookie}", "Origin": origin}
    async with websockets.connect(url, additional_headers=headers, max_size=2**22) as ws:
        async with asyncio.timeout(30):
            while len(frames) < count:
                doc = json.loads(await ws.recv())
                if doc.get("type") == "snapshot":
                    frames.append(doc)
    return frames


def test_scaled_every_client_on_both_workers_gets_every_refresh_once(topology: Topology):
    producer = topology.producer("producer")
    faces = [topology.face("face-1"), topology.face("face-2")]
    wait_until(lambda: topology.published() is not None, what="a first board", deadline=30)
    cookie = staff_session(topology.env)

    async def clients() -> list[list[dict[str, object]]]:
        urls = [f"ws://127.0.0.1:{face.port}/ws/monitor/" for face in faces for _ in range(3)]
        urls += [f"ws://127.0.0.1:{face.port}/ws/monitor/?sort=user_id&page_size=5" for face in faces]
        return await asyncio.gather(*(_frames(url, cookie, 8) for url in urls))

    received = asyncio.run(clients())
    for frames in received:
        seqs = [int(f["seq"]) for f in frames]
        assert len(set(seqs)) == len(seqs), seqs  # never a refresh twice
        # After the first frame (the face's latest board at connect time) every refresh comes, in order.
        assert all(b - a == 1 for a, b in itertools.pairwise(seqs[1:])), seqs
        assert all(f["total_active_users"] == 40 for f in frames)
    producer.stop()
    published = topology.published()
    assert published is not None
    # One fetch of the NAT server per refresh, whatever the number of workers and sockets.
    assert topology.nat.fetches == published["seq"]
    # The faces never read the source themselves.
    assert all("Source fake" not in face.log() for face in faces)


def test_scaled_standby_takes_over_after_sigkill_and_history_is_written_once(tmp_path: Path):
    top = Topology(tmp_path, interval=1.0)
    try:
        first, second = top.producer("producer-a"), top.producer("producer-b")
        wait_until(lambda: (top.published() or {}).get("seq", 0) >= 3, what="three boards", deadline=40)
        leader_name = top.redis.get(f"{top.prefix}:leader").decode()
        leader = first if leader_name in first.log() else second
        standby = second if leader is first else first
        leader.kill()
        last_of_leader = top.published()
        wait_until(
            lambda: (top.published() or {}).get("producer") != leader_name,
            what="the standby to publish",
            deadline=30,
        )
        taken = top.published()
        gap = datetime.fromisoformat(taken["published_at"]) - datetime.fromisoformat(last_of_leader["published_at"])
        # The lease lasts two intervals and a standby tries every half interval: within three intervals.
        assert gap.total_seconds() <= 3 * top.interval, (gap, leader.log(), standby.log())
        assert taken["seq"] > last_of_leader["seq"]  # it continues the numbering
        wait_until(lambda: top.published()["seq"] >= taken["seq"] + 3, what="three more boards", deadline=30)
        standby.stop()  # writes what its recorder holds
        with sqlite3.connect(top.tmp / "db.sqlite3") as db:
            stamps = [
                datetime.fromisoformat(row[0])
                for row in db.execute("SELECT ts FROM usermetrics_totalssample ORDER BY ts")
            ]
            lives = db.execute("SELECT user_id, COUNT(*) FROM usermetrics_userlife GROUP BY user_id").fetchall()
            total, distinct = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT life_id || ts) FROM usermetrics_usersample"
            ).fetchone()
        steps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        # One writer at a time: refreshes never interleave, and at most one gap, the takeover's.
        assert min(steps) >= 0.5 * top.interval, steps
        assert sum(1 for s in steps if s > 1.5 * top.interval) <= 1, steps
        assert max(steps) <= 4 * top.interval, steps
        assert len(stamps) <= top.published()["seq"]
        assert lives and all(count == 1 for _, count in lives)  # one life per user: nobody recorded twice
        assert total == distinct
    finally:
        top.close()


def test_scaled_face_without_a_producer_says_so_and_resumes(topology: Topology):
    face = topology.face("face")
    cookie = staff_session(topology.env)
    status, body = http_get(face.base + "/monitor/users", TOKEN)
    assert status == 503
    doc = json.loads(body)
    assert doc["producer"]["state"] == "absent" and doc["detail"].startswith("No producer is publishing")
    status, body = http_get(face.base + "/api/status", TOKEN)
    assert status == 503 and json.loads(body)["producer"]["last_publish"] is None
    status, body = http_get(face.base + "/", session=cookie)
    assert status == 200 and "No producer is publishing: none has published a board yet." in body.decode()

    async def watch() -> tuple[dict[str, object], dict[str, object]]:
        headers = {"Cookie": f"sessionid={cookie}", "Origin": face.base}
        async with websockets.connect(f"ws://127.0.0.1:{face.port}/ws/monitor/", additional_headers=headers) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            topology.producer("producer")  # a producer appears: the open socket resumes by itself
            async with asyncio.timeout(40):
                while True:
                    doc = json.loads(await ws.recv())
                    if doc.get("type") == "snapshot":
                        return first, doc

    status_message, frame = asyncio.run(watch())
    assert status_message["type"] == "status" and status_message["producer"]["state"] == "absent"
    assert frame["total_active_users"] == 40
    wait_until(lambda: http_get(face.base + "/monitor/users", TOKEN)[0] == 200, what="the API back", deadline=20)


def test_scaled_sockets_on_many_views_of_one_face_get_every_refresh(topology: Topology):
    # When frames went through channels_redis's one Redis inbox per face process, its capacity
    # bounded that inbox: with more views watched than the capacity, frames were dropped at random.
    # The face now gets one message per refresh and hands each socket its frame.
    topology.producer("producer")
    face = topology.face("face")
    wait_until(lambda: topology.published() is not None, what="a first board", deadline=30)
    cookie = staff_session(topology.env)
    users = [u["user_id"] for u in topology.nat.users]

    async def clients() -> list[list[dict[str, object]]]:
        urls = [f"ws://127.0.0.1:{face.port}/ws/monitor/users/{uid}/" for uid in users]
        return await asyncio.gather(*(_frames(url, cookie, 8) for url in urls))

    for uid, frames in zip(users, asyncio.run(clients()), strict=True):
        seqs = [int(f["seq"]) for f in frames]
        assert all(b - a == 1 for a, b in itertools.pairwise(seqs[1:])), (uid, seqs)
        assert [u["user_id"] for u in frames[-1]["users"]] == [uid]


def test_scaled_a_burst_of_connects_to_one_face_is_served(topology: Topology):
    # redis-py 8 bounds an asyncio pool at 100 connections and raises at once past it: 150 sockets
    # opening together made some handshakes fail inside the channel layer (close 1011, a traceback).
    topology.producer("producer")
    face = topology.face("face")
    wait_until(lambda: topology.published() is not None, what="a first board", deadline=30)
    cookie = staff_session(topology.env)

    async def clients() -> list[list[dict[str, object]]]:
        urls = [f"ws://127.0.0.1:{face.port}/ws/monitor/?page={1 + n % 4}&page_size=10" for n in range(150)]
        return await asyncio.gather(*(_frames(url, cookie, 2) for url in urls), return_exceptions=True)

    results = asyncio.run(clients())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed == [], failed[:3]
    assert "Traceback" not in face.log()

"""Fan-out on Redis: 100 websocket clients over two Daphne workers, one producer, a 10,000-user source.

Each refresh the producer publishes a board (its pub/sub message says when) and sends one frame
per watched view; every client receives it through its worker. Printed per run: how long after
publishing the median and the last client had the frame (p50 and the worst over the refreshes),
and whether every client got every refresh exactly once.

Needs Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0).
Usage: .venv/bin/python bench/fanout.py [--clients 100] [--users 10000] [--refreshes 15] [--interval 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import redis.asyncio as aioredis
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()  # the test helpers it borrows import the app

from tests.support.daphne import Daphne, Process, Runmonitor, manage, server_env, staff_session, wait_until  # noqa: E402
from tests.support.fake_nat import FakeNat  # noqa: E402
from tests.support.machine import free_port  # noqa: E402


async def client(url: str, cookie: str, origin: str, seen: dict[int, float], stop: asyncio.Event) -> None:
    """One socket: the receive time of each snapshot frame, by its refresh number."""
    headers = {"Cookie": f"sessionid={cookie}", "Origin": origin}
    async with websockets.connect(url, additional_headers=headers, max_size=2**22) as ws:
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            at = time.time()
            doc = json.loads(text)
            if doc.get("type") == "snapshot":
                seq = int(doc["seq"])
                if seq in seen:
                    seen[-seq] = at  # a second copy of the same refresh: counted below
                seen[seq] = at


async def measure(args: argparse.Namespace, faces: list[Daphne], cookie: str, prefix: str, url: str) -> None:
    """Connect the clients, follow the publishes, and print the table."""
    published: dict[int, float] = {}
    stop = asyncio.Event()
    bus = aioredis.Redis.from_url(url)
    pubsub = bus.pubsub()
    await pubsub.subscribe(f"{prefix}:board:published")
    seen: list[dict[int, float]] = [{} for _ in range(args.clients)]
    sockets = [
        asyncio.create_task(client(f"ws://127.0.0.1:{face.port}/ws/monitor/", cookie, face.base, seen[i], stop))
        for i, face in ((i, faces[i % len(faces)]) for i in range(args.clients))
    ]
    await asyncio.sleep(2 * args.interval)  # every socket connected and past its first frame
    first = None
    while first is None or len(published) < args.refreshes:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        if message:
            meta = json.loads(message["data"])
            seq = int(meta["seq"])
            first = seq if first is None else first
            published[seq] = datetime.fromisoformat(meta["published_at"]).timestamp()
    await asyncio.sleep(2)  # the last refresh's frames arrive
    stop.set()
    await asyncio.gather(*sockets, return_exceptions=True)
    await pubsub.aclose()
    await bus.aclose()
    lasts, medians, missing, twice = [], [], 0, 0
    for seq, at in published.items():
        got = [s[seq] - at for s in seen if seq in s]
        missing += args.clients - len(got)
        twice += sum(1 for s in seen if -seq in s)
        if got:
            lasts.append(max(got) * 1000)
            medians.append(statistics.median(got) * 1000)
    print()
    columns = ["clients", "workers", "users", "refreshes"]
    columns += ["median client, p50", "last client, p50", "last client, worst", "missed", "twice"]
    print("| " + " | ".join(columns) + " |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.clients} | {len(faces)} | {args.users:,} | {len(published)} | {statistics.median(medians):.0f} ms | "
        f"{statistics.median(lasts):.0f} ms | {max(lasts):.0f} ms | {missing} | {twice} |"
    )
    print("\nGoal: the last client's frame <= 250 ms after the producer publishes; every refresh exactly once.")


def main() -> None:
    """Start the topology, measure, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--refreshes", type=int, default=15)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"umfanout-{uuid.uuid4().hex[:8]}"
    nat = FakeNat(args.users, moving=0.1).start()
    processes: list[Process] = []
    with tempfile.TemporaryDirectory(prefix="usermetrics-fanout-") as tmp:
        env = server_env(
            Path(tmp),
            REDIS_URL=url,
            USERMETRICS_REDIS_PREFIX=prefix,
            NAT_SOURCES=f"nat={nat.url}",
            USERMETRICS_DEMO="0",
            USERMETRICS_REFRESH_INTERVAL=str(args.interval),
            USERMETRICS_LOG_LEVEL="WARNING",
        )
        try:
            manage(env, "migrate", "--noinput", "-v", "0")
            cookie = staff_session(env)
            producer = Runmonitor(env, Path(tmp) / "producer.log")
            producer.start()
            processes.append(producer)
            faces = []
            for n in range(2):
                face = Daphne(free_port(), {**env, "USERMETRICS_PRODUCER": "external"}, Path(tmp) / f"face-{n}.log")
                face.start()
                processes.append(face)
                faces.append(face)
            wait_until(
                lambda: (Path(tmp) / "producer.log").read_text().count("leads") > 0, what="a leader", deadline=30
            )
            asyncio.run(measure(args, faces, cookie, prefix, url))
        finally:
            for process in reversed(processes):
                process.stop()
            nat.stop()


if __name__ == "__main__":
    main()

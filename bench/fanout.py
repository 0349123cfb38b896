"""Fan-out on Redis: 100 websocket clients over two Daphne workers, one producer, a 10,000-user source.

Each refresh the producer publishes a board (its pub/sub message says when) and sends one frame
per watched view; every client receives it through its worker. Printed per run: for each refresh,
how long after publishing the median and the last client had its frame (p50, p99 and the worst
over the refreshes), and whether every client got every refresh exactly once.

Meanwhile ``--joiners`` further clients each subscribe, at a random moment of an interval, to a
view nobody held before (a page size of their own), and are watched for the refreshes published
after their first frame: printed is how many of them got the very next refresh, and how many
refreshes they missed in all (the goal: none; before a face told the producer of a new view at
once, such a view waited for the face's next renewal, up to the next refresh).

Needs Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0).
Usage: .venv/bin/python bench/fanout.py [--clients 100] [--users 10000] [--refreshes 15] [--interval 2]
       [--joiners 10] [--moving 0.1] [--sources 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import statistics
import sys
import tempfile
import threading
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

from measure import percentile  # noqa: E402  (bench/measure.py)

from tests.support.daphne import Daphne, Process, Runmonitor, manage, server_env, staff_session, wait_until  # noqa: E402
from tests.support.fake_nat import FakeNat  # noqa: E402
from tests.support.machine import free_port  # noqa: E402

SNAPSHOT_SEQ = re.compile(r'"type":\s*"snapshot",\s*"seq":\s*(\d+)')
TOTAL = re.compile(r'"total_active_users":\s*(\d+)')
totals: set[int] = set()  # the users the new subscribers' first frames counted (is the board the size asked?)


async def client(
    url: str, cookie: str, origin: str, seen: dict[int, float], stop: asyncio.Event, first: list[int] | None = None
) -> None:
    """One socket: the receive time of each snapshot frame, by its refresh number (``first``: its first frame's)."""
    headers = {"Cookie": f"sessionid={cookie}", "Origin": origin}
    async with websockets.connect(url, additional_headers=headers, max_size=2**22) as ws:
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            at = time.time()
            # Only the refresh's number is read (parsing the whole frame in this one process, for a
            # hundred clients, would time this client rather than the server).
            found = SNAPSHOT_SEQ.search(text)
            if found is not None:
                seq = int(found.group(1))
                if first is not None and not first:
                    first.append(seq)
                    if (total := TOTAL.search(text[:200])) is not None:
                        totals.add(int(total.group(1)))
                    continue  # the face's own full snapshot on subscribing, not a refresh's frame
                if seq in seen:
                    seen[-seq] = at  # a second copy of the same refresh: counted below
                seen[seq] = at


async def join(
    args: argparse.Namespace, faces: list[Daphne], cookie: str, stop: asyncio.Event
) -> list[tuple[list[int], dict[int, float]]]:
    """``--joiners`` sockets, each on a view of its own, subscribing at random moments; their first and later frames."""
    rng = random.Random(1)
    joined: list[tuple[list[int], dict[int, float]]] = []
    tasks = []
    for n in range(args.joiners):
        await asyncio.sleep(rng.uniform(0.5, 1.5) * args.interval)
        if stop.is_set():
            break
        face = faces[n % len(faces)]
        first: list[int] = []
        seen: dict[int, float] = {}
        joined.append((first, seen))
        url = f"ws://127.0.0.1:{face.port}/ws/monitor/?page_size={7 + n}"  # a view no other socket holds
        tasks.append(asyncio.create_task(client(url, cookie, face.base, seen, stop, first)))
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    return joined


async def measure(args: argparse.Namespace, faces: list[Daphne], cookie: str, prefix: str, url: str) -> None:
    """Connect the clients, follow the publishes, and print the table."""
    published: dict[int, float] = {}  # the board's stamp (the producer's clock, before flags and the bus)
    on_bus: dict[int, float] = {}  # when its pub/sub message reached us: the board is on the bus
    stop = asyncio.Event()
    bus = aioredis.Redis.from_url(url)
    pubsub = bus.pubsub()
    seen: list[dict[int, float]] = [{} for _ in range(args.clients)]
    sockets = [
        asyncio.create_task(client(f"ws://127.0.0.1:{face.port}/ws/monitor/", cookie, face.base, seen[i], stop))
        for i, face in ((i, faces[i % len(faces)]) for i in range(args.clients))
    ]
    await asyncio.sleep(2 * args.interval)  # every socket connected and past its first frame
    # Subscribed only now: a message buffered meanwhile would be read late and time its refresh wrong.
    await pubsub.subscribe(f"{prefix}:board:published")
    joiners = asyncio.create_task(join(args, faces, cookie, stop))
    first = None
    while first is None or len(published) < args.refreshes:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        if message:
            meta = json.loads(message["data"])
            seq = int(meta["seq"])
            first = seq if first is None else first
            published[seq] = datetime.fromisoformat(meta["published_at"]).timestamp()
            on_bus[seq] = time.time()
    await asyncio.sleep(2)  # the last refresh's frames arrive
    stop.set()
    await asyncio.gather(*sockets, return_exceptions=True)
    joined = await joiners
    await pubsub.aclose()
    await bus.aclose()
    lasts, medians, buses, missing, twice = [], [], [], 0, 0
    for seq, at in on_bus.items():
        got = [s[seq] - at for s in seen if seq in s]
        missing += args.clients - len(got)
        twice += sum(1 for s in seen if -seq in s)
        buses.append((at - published[seq]) * 1000)
        if got:
            lasts.append(max(got) * 1000)
            medians.append(statistics.median(got) * 1000)
    print()
    columns = ["clients", "workers", "users", "refreshes", "stamp to bus, p50 (ref.)", "median client, p50"]
    columns += ["last client, p50", "last client, p99", "last client, worst", "missed", "twice"]
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---:" for _ in columns) + " |")
    print(
        f"| {args.clients} | {len(faces)} | {args.users:,} | {len(on_bus)} | {percentile(buses, 0.5):.0f} ms | "
        f"{statistics.median(medians):.0f} ms | {percentile(lasts, 0.5):.0f} ms | {percentile(lasts, 0.99):.0f} ms | "
        f"{max(lasts):.0f} ms | {missing} | {twice} |"
    )
    print("\nClient times count from the board's arrival on the bus (its pub/sub message); the reference is how long")
    print("the producer took from stamping the board to putting it there (flags, encoding, the Redis write).")
    print("Goal: the last client's frame <= 250 ms after the producer publishes; every refresh exactly once.")
    report_joiners(joined, published)


def report_joiners(joined: list[tuple[list[int], dict[int, float]]], published: dict[int, float]) -> None:
    """How the sockets that subscribed to a new view mid-run fared with the refreshes after their first frame."""
    if not joined:
        return
    next_owed, next_ok, owed, missed = 0, 0, 0, 0
    for first, seen in joined:
        if not first:
            continue
        after = [seq for seq in published if seq > first[0]]
        owed += len(after)
        missed += sum(1 for seq in after if seq not in seen)
        if first[0] + 1 in published:  # the next refresh came within the run
            next_owed += 1
            next_ok += 1 if first[0] + 1 in seen else 0
    print("\n| new-view subscribers | got the next refresh | refreshes owed them | missed |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {len(joined)} | {next_ok} of {next_owed} | {owed} | {missed} |")
    print(f"Users in their first frames: {', '.join(f'{t:,}' for t in sorted(totals))}.")
    print("Goal: every new subscriber gets the first refresh after its first frame, and every one after.")


def nat_serve(users: int, sources: int, moving: float, answers: multiprocessing.Queue[list[str]]) -> None:
    """Serve ``sources`` fake NATs sharing ``users`` users in this child process until terminated (URLs: ``answers``).

    A NAT source's answer is capped at 64 MiB (about 190,000 users): a million users are a fleet of NAT servers.
    """
    nats = [FakeNat(users // sources, moving=moving, prefix=f"user{k}").start() for k in range(sources)]
    answers.put([nat.url for nat in nats])
    threading.Event().wait()


def main() -> None:
    """Start the topology, measure, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--refreshes", type=int, default=15)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--joiners", type=int, default=10, help="sockets subscribing to a new view mid-run")
    parser.add_argument("--moving", type=float, default=0.1, help="share of users changing per refresh")
    parser.add_argument("--sources", type=int, default=1, help="fake NAT servers sharing the users")
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"umfanout-{uuid.uuid4().hex[:8]}"
    # The fake NAT serves from a process of its own: a 1,000,000-user body (hundreds of MB) built and
    # sent in this process held its clients up, and they timed the fake NAT rather than the faces.
    answers: multiprocessing.Queue[list[str]] = multiprocessing.get_context("fork").Queue()
    nat = multiprocessing.get_context("fork").Process(
        target=nat_serve, args=(args.users, args.sources, args.moving, answers)
    )
    nat.start()
    nat_urls = answers.get(timeout=600)
    processes: list[Process] = []
    with tempfile.TemporaryDirectory(prefix="usermetrics-fanout-") as tmp:
        env = server_env(
            Path(tmp),
            REDIS_URL=url,
            USERMETRICS_REDIS_PREFIX=prefix,
            NAT_SOURCES=",".join(f"nat{k}={url}" for k, url in enumerate(nat_urls)),
            USERMETRICS_SOURCE_TIMEOUT=str(max(10.0, 2 * args.interval)),
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
            warnings = [line for line in producer.log().splitlines() if "WARNING" in line or "ERROR" in line]
            print(f"The producer's log: {len(warnings)} warnings or errors", *warnings[-3:], sep="\n  ")
        finally:
            try:
                for process in reversed(processes):
                    process.stop()
            finally:  # the fake NAT goes even when a process was slow to stop
                nat.terminate()
                nat.join()


if __name__ == "__main__":
    main()

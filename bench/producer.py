"""Producer CPU per refresh in the steady state: ``runmonitor`` polling NAT-compatible bodies, and reading companions.

``--source poll``: a NAT-compatible server (``tests/support/fake_nat.py``, in this process, so its
work is not counted) holds ``--users`` users, ``--moving`` of them changing between two reads.
``--source stream``: NAT companions of two workers (``tests/support/fake_companions.py``, in this
process) report the same users to a Redis stream every interval, the moved ones (and everyone
every 15th report). ``--source both`` (the default) runs one, then the other, in the same run. One ``runmonitor``
(history on: PostgreSQL when ``DATABASE_URL`` names one, else SQLite) publishes through Redis;
one face serves a websocket client on the list page, so every refresh also builds and sends a
frame. After the cold refreshes, the producer's CPU time (user + system, from /proc, every
thread: fetch, parse, merge, board, frames, history, flags) is read at one published board and
again ``--refreshes`` boards later. Printed: CPU per refresh (mean over the window), the
producer's own wall time per tick (p50 and max, from the boards it published), the wall time of
its source's fetch (p50: reading and parsing a body, or reading and applying the stream's reports;
the one step where the two kinds differ, and for polling it includes the fake server's answer),
and boards.
Needs Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0).
Usage: .venv/bin/python bench/producer.py [--users 10000] [--moving 0.1] [--refreshes 30] [--interval 1]
       [--source poll|stream|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import redis
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()  # the test helpers it borrows import the app

from measure import cpu_seconds  # noqa: E402  (bench/measure.py)

from tests.support.daphne import Daphne, Process, Runmonitor, manage, server_env, staff_session, wait_until  # noqa: E402
from tests.support.fake_companions import FakeCompanions  # noqa: E402
from tests.support.fake_nat import FakeNat  # noqa: E402
from tests.support.machine import free_port  # noqa: E402
from usermetrics.board_wire import board_decode  # noqa: E402


def last_tick_ms(client: redis.Redis, prefix: str) -> tuple[float, float]:
    """The wall time of the producer's tick before the published board's (the board's meta says), and
    of the published refresh's fetch of its one source (reading and parsing: where the two kinds differ)."""
    raw = client.get(f"{prefix}:board")
    if not raw:
        return 0.0, 0.0
    board = board_decode(raw)
    return float(board.meta.get("refresh_ms", 0.0)), float(board.sources[0].last_duration_ms or 0.0)


async def watch(url: str, cookie: str, origin: str, stop: asyncio.Event) -> int:
    """A list-page socket that reads every frame until ``stop``; the frames it got."""
    frames = 0
    headers = {"Cookie": f"sessionid={cookie}", "Origin": origin}
    async with websockets.connect(url, additional_headers=headers, max_size=2**24) as ws:
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.recv(), timeout=0.5)
                frames += 1
            except TimeoutError:
                continue
    return frames


async def measure(args: argparse.Namespace, face: Daphne, pid: int, cookie: str, prefix: str, url: str) -> dict:
    """CPU of the producer over ``args.refreshes`` boards, a socket watching throughout."""
    stop = asyncio.Event()
    socket = asyncio.create_task(watch(f"ws://127.0.0.1:{face.port}/ws/monitor/", cookie, face.base, stop))
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub()
    pubsub.subscribe(f"{prefix}:board:published")

    async def next_board() -> int:
        while True:
            message = await asyncio.to_thread(pubsub.get_message, ignore_subscribe_messages=True, timeout=5)
            if message:
                return int(json.loads(message["data"])["seq"])

    for _ in range(args.warmup):  # the cold refreshes: every user built, caches filled
        await next_board()
    first = await next_board()
    cpu_first = cpu_seconds(pid)
    spy = None
    if os.environ.get("BENCH_PYSPY"):  # a profile of the window (py-spy, collapsed stacks, every thread)
        record = ["py-spy", "record", "-r", "250", "-f", "raw", "-o", os.environ["BENCH_PYSPY"], "-p", str(pid)]
        spy = await asyncio.create_subprocess_exec(
            *record, "-d", str(int(args.refreshes * args.interval)), stdout=subprocess.DEVNULL
        )
    ticks: list[float] = []
    fetches: list[float] = []
    last = first
    while last - first < args.refreshes:
        last = await next_board()
        tick, fetch = last_tick_ms(client, prefix)
        ticks.append(tick)
        fetches.append(fetch)
    cpu_last = cpu_seconds(pid)
    if spy is not None:
        await asyncio.wait_for(spy.wait(), timeout=60)
    stop.set()
    frames = await socket
    pubsub.close()
    client.close()
    return {
        "cpu_ms": (cpu_last - cpu_first) * 1000 / (last - first),
        "tick_p50": statistics.median(ticks),
        "tick_max": max(ticks),
        "fetch_p50": statistics.median(fetches),
        "boards": last - first,
        "frames": frames,
    }


def run_one(kind: str, args: argparse.Namespace, url: str) -> dict:
    """Start the source of ``kind``, a producer and a face; measure; stop everything."""
    prefix = f"umcpu-{uuid.uuid4().hex[:8]}"
    if kind == "poll":
        nat = FakeNat(args.users, moving=args.moving).start()
        source = f"nat={nat.url}"
    else:
        deployment = f"bench-{uuid.uuid4().hex[:8]}"
        nat = FakeCompanions(url, users=args.users, deployment=deployment, moving=args.moving, interval=args.interval)
        nat.start()
        source = f"{deployment}={url}"
    processes: list[Process] = []
    extra = {
        "REDIS_URL": url,
        "USERMETRICS_REDIS_PREFIX": prefix,
        "NAT_SOURCES": source,
        "USERMETRICS_DEMO": "0",
        "USERMETRICS_REFRESH_INTERVAL": str(args.interval),
        "USERMETRICS_SOURCE_TIMEOUT": "30",
        "USERMETRICS_LOG_LEVEL": "WARNING",
    }
    database = f"bench_producer_{os.getpid()}_{kind}"
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        extra["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}"
        subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", f"CREATE DATABASE {database}"], check=True)
    try:
        with tempfile.TemporaryDirectory(prefix="usermetrics-producer-") as tmp:
            env = server_env(Path(tmp), **extra)
            manage(env, "migrate", "--noinput", "-v", "0")
            cookie = staff_session(env)
            producer = Runmonitor(env, Path(tmp) / "producer.log")
            producer.start()
            processes.append(producer)
            face = Daphne(free_port(), {**env, "USERMETRICS_PRODUCER": "external"}, Path(tmp) / "face.log")
            face.start()
            processes.append(face)
            wait_until(lambda: "leads" in (Path(tmp) / "producer.log").read_text(), what="a leader", deadline=60)
            result = asyncio.run(measure(args, face, producer.proc.pid, cookie, prefix, url))
            for process in reversed(processes):
                process.stop()
    finally:
        for process in processes:
            process.stop()
        nat.stop()
        if "DATABASE_URL" in extra:
            subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", f"DROP DATABASE {database}"])
    result["history"] = "PostgreSQL" if "DATABASE_URL" in extra else "SQLite"
    return result


def main() -> None:
    """Measure each source kind asked for, one after the other, and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--moving", type=float, default=0.1)
    parser.add_argument("--refreshes", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--source", choices=("poll", "stream", "both"), default="both")
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    kinds = ["poll", "stream"] if args.source == "both" else [args.source]
    results = {kind: run_one(kind, args, url) for kind in kinds}
    names = {"poll": "polling NAT-compatible bodies", "stream": "companion stream (2 workers)"}
    print()
    columns = [
        "source",
        "users",
        "moving",
        "history",
        "refreshes",
        "producer CPU / refresh",
        "tick p50 (wall)",
        "tick max",
        "source fetch p50 (wall)",
    ]
    print("| " + " | ".join(columns) + " |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for kind, r in results.items():
        print(
            f"| {names[kind]} | {args.users:,} | {args.moving:.0%} | {r['history']} | {r['boards']} | "
            f"{r['cpu_ms']:.1f} ms | {r['tick_p50']:.1f} ms | {r['tick_max']:.1f} ms | {r['fetch_p50']:.1f} ms |"
        )
    for kind, r in results.items():
        print(f"{names[kind]}: {r['frames']} frames reached the watching socket.")
    if len(results) == 2:
        print(f"stream / poll, producer CPU per refresh: {results['stream']['cpu_ms'] / results['poll']['cpu_ms']:.2f}")
    print("Goal: <= 50 ms of producer CPU per steady-state refresh at 10,000 users, 10% changing (polling).")


if __name__ == "__main__":
    main()

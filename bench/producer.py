"""Producer CPU per refresh in the steady state: ``runmonitor`` over a NAT-compatible source.

A NAT-compatible source (``tests/support/fake_nat.py``, in this process, so its work is not counted)
holds ``--users`` users, ``--moving`` of them changing between two reads. One ``runmonitor``
(history on: PostgreSQL when ``DATABASE_URL`` names one, else SQLite) publishes through Redis;
one face serves a websocket client on the list page, so every refresh also builds and sends a
frame. After the cold refreshes, the producer's CPU time (user + system, from /proc, every
thread: fetch, parse, merge, board, frames, history, flags) is read at one published board and
again ``--refreshes`` boards later. Printed: CPU per refresh (mean over the window), the
producer's own wall time per tick (p50 and max, from the boards it published), and boards.
Needs Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0).
Usage: .venv/bin/python bench/producer.py [--users 10000] [--moving 0.1] [--refreshes 30] [--interval 1]
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

from tests.support.daphne import Daphne, Process, Runmonitor, manage, server_env, staff_session, wait_until  # noqa: E402
from tests.support.fake_nat import FakeNat  # noqa: E402
from tests.support.machine import free_port  # noqa: E402
from usermetrics.board import Board  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime and stime, fields 14 and 15 of stat(5)


def last_tick_ms(client: redis.Redis, prefix: str) -> float:
    """The wall time of the producer's tick before the published board's (the board's meta says)."""
    raw = client.get(f"{prefix}:board")
    return float(Board.decode(raw).meta.get("refresh_ms", 0.0)) if raw else 0.0


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
    last = first
    while last - first < args.refreshes:
        last = await next_board()
        ticks.append(last_tick_ms(client, prefix))
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
        "boards": last - first,
        "frames": frames,
    }


def main() -> None:
    """Start the producer and a face, measure, stop everything, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--moving", type=float, default=0.1)
    parser.add_argument("--refreshes", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"umcpu-{uuid.uuid4().hex[:8]}"
    nat = FakeNat(args.users, moving=args.moving).start()
    processes: list[Process] = []
    extra = {
        "REDIS_URL": url,
        "USERMETRICS_REDIS_PREFIX": prefix,
        "NAT_SOURCES": f"nat={nat.url}",
        "USERMETRICS_DEMO": "0",
        "USERMETRICS_REFRESH_INTERVAL": str(args.interval),
        "USERMETRICS_SOURCE_TIMEOUT": "30",
        "USERMETRICS_LOG_LEVEL": "WARNING",
    }
    database = f"bench_producer_{os.getpid()}"
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
    history = "PostgreSQL" if "DATABASE_URL" in extra else "SQLite"
    print()
    columns = ["users", "moving", "history", "refreshes", "producer CPU / refresh", "tick p50 (wall)", "tick max"]
    print("| " + " | ".join(columns) + " |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.users:,} | {args.moving:.0%} | {history} | {result['boards']} | {result['cpu_ms']:.1f} ms | "
        f"{result['tick_p50']:.1f} ms | {result['tick_max']:.1f} ms |"
    )
    print(f"\n{result['frames']} frames reached the watching socket.")
    print("Goal: <= 50 ms of producer CPU per steady-state refresh at 10,000 users, 10% changing.")


if __name__ == "__main__":
    main()

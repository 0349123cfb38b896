"""The NAT companion's cost per NAT request: a real NAT 1.9.0 without it and with it, the same load, one run.

One ``nat serve`` (one worker, the test plugin's per-user workflow answering at once, so the
request is NAT's own cost) is started without the companion, loaded, stopped; then with it
(``runner_class: usermetrics_nat.CompanionWorker``, reporting every ``--interval`` to Redis), the
same load; and again, alternating ``--rounds`` times so that the machine's drift falls on both.
The load: for each number in ``--clients`` (default 1 and 4), that many threads, each on a
kept-alive connection, sending ``--requests`` requests in all for ``--users`` users: one client
leaves NAT's one worker idle between requests, four keep it saturated on this machine (the load
generator shares its cores), where any CPU the companion takes shows as queueing. Printed per
configuration: requests, p50, p90, p99 and mean latency as the clients saw them, and the
companion's p99 minus NAT's (the goal: at most 1 ms).

Then, in this process (steady, whatever the machine's load): what the meters add to one request
(a metered semaphore and a histogram count against NAT's bare ``asyncio.Semaphore``), and the
longest the reporter holds the event loop while it builds a report of ``--users`` (and 100, 1,000,
10,000) users, all of them changed, or every user listed (a full report): the most any one request
can wait on it; in the first report after start-up and over the next three, as a worker that has
run a while builds them (the first pays one-time costs, a garbage collection of the new objects).
Needs Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0) and builds ``.venv-nat/`` on first use.
Usage: .venv/bin/python bench/companion.py [--users 100] [--requests 4000] [--clients 1,4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()  # the test helpers it borrows import the app

import redis  # noqa: E402
from usermetrics_nat.meters import MeteredSemaphore, UserStats, record_latency  # noqa: E402
from usermetrics_nat.report import WorkerIdentity  # noqa: E402
from usermetrics_nat.reporter import Reporter  # noqa: E402
from usermetrics_nat.settings import CompanionSettings  # noqa: E402

from tests.support.nat_server import NatServer, ensure_nat_venv  # noqa: E402
from usermetrics.runtime import SessionManager  # noqa: E402


def load(url: str, *, users: int, requests: int, clients: int) -> list[float]:
    """Every request's latency in ms, as ``clients`` kept-alive clients saw them."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = requests // clients

    def client(n: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        for k in range(per_client):
            user = f"user-{(n * per_client + k) % users:04d}"
            body = json.dumps({"message": "hi"})
            headers = {"Content-Type": "application/json", "Cookie": f"nat-session={user}"}
            started = time.perf_counter()
            connection.request("POST", "/generate", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            assert response.status == 200, response.status
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(nat_bin: Path, work: Path, args: argparse.Namespace, *, companion: bool, url: str, stream: str) -> list[float]:
    """One server, warmed up (every user built), then loaded; its latencies."""
    env = {
        "USERMETRICS_NAT_REDIS_URL": url,
        "USERMETRICS_NAT_STREAM": stream,
        "USERMETRICS_NAT_INTERVAL": str(args.interval),
    }
    server = NatServer(nat_bin, work, name=f"bench-{uuid.uuid4().hex[:6]}", companion=env if companion else None)
    server.start()
    try:
        server.wait_ready()
        load(server.url, users=args.users, requests=args.users * 2, clients=args.clients)  # warm-up
        return load(server.url, users=args.users, requests=args.requests, clients=args.clients)
    finally:
        server.stop()


async def meter_cost(rounds: int = 200_000) -> tuple[float, float]:
    """Microseconds per request: a bare ``asyncio.Semaphore`` taken and released, then a metered one and a count."""
    bare = asyncio.Semaphore(8)
    metered = MeteredSemaphore(asyncio.Semaphore(8), UserStats(8))
    started = time.perf_counter()
    for _ in range(rounds):
        async with bare:
            pass
    plain = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        async with metered:
            pass
        record_latency(metered.stats, 12.0)
    return plain, (time.perf_counter() - started) / rounds * 1e6


async def longest_hold(users: int, *, full: bool, reports: int = 3) -> tuple[float, float]:
    """The longest the reporter kept the loop from other work (ms) while building a report of ``users`` users:
    in the first report after the one that built everyone, and the longest over ``reports`` more (each after
    every user changed), as a long-running worker builds them."""
    manager = SessionManager()
    settings = CompanionSettings.from_env({"USERMETRICS_NAT_FULL_EVERY": "1" if full else "1000"})
    identity = WorkerIdentity(host="bench", pid=1, started_at=datetime.now(UTC), nat_version="-", config="-")
    reporter = Reporter([manager], settings=settings, identity=identity, redis=None)  # type: ignore[arg-type]
    for n in range(users):
        async with manager.session(f"user-{n}"):
            pass
    await reporter.build()  # the first: everyone built once
    holds: list[float] = []
    for _ in range(1 + reports):
        for n in range(users):  # every user changed since
            async with manager.session(f"user-{n}"):
                pass
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker(gaps: list[float] = gaps, done: asyncio.Event = done) -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        await reporter.build()
        done.set()
        await task
        holds.append(max(gaps) * 1000)
    await manager.aclose()
    return holds[0], max(holds[1:])


def in_process(users: int) -> None:
    """Print the meters' cost per request and the reporter's longest hold of the loop."""
    plain, metered = asyncio.run(meter_cost())
    print(f"\nIn process: a request through a bare semaphore {plain:.2f} us, metered and counted {metered:.2f} us"
          f" (+{metered - plain:.2f} us per request)")  # fmt: skip
    print("| users in the worker | report | the reporter's longest hold of the loop: first report | next 3 |")
    print("| ---: | --- | ---: | ---: |")
    for n in sorted({100, users, 1_000, 10_000}):
        for full in (False, True):
            first, steady = asyncio.run(longest_hold(n, full=full))
            kind = "every user listed" if full else "every user changed"
            print(f"| {n:,} | {kind} | {first:.3f} ms | {steady:.3f} ms |")


def main() -> None:
    """Alternate NAT without and with the companion; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", default="1,4", help="concurrent clients, one load per number (comma-separated)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    stream = f"umbench-{uuid.uuid4().hex[:8]}"
    nat_bin = ensure_nat_venv()
    loads = [int(n) for n in str(args.clients).split(",")]
    results: dict[tuple[int, bool], list[float]] = {(n, c): [] for n in loads for c in (False, True)}
    try:
        with tempfile.TemporaryDirectory(prefix="usermetrics-companion-bench-") as tmp:
            for _ in range(args.rounds):
                for clients in loads:
                    for companion in (False, True):
                        one = argparse.Namespace(**{**vars(args), "clients": clients})
                        results[clients, companion] += run(
                            nat_bin, Path(tmp), one, companion=companion, url=url, stream=stream
                        )
    finally:
        client = redis.Redis.from_url(url)
        reports = client.xlen(stream) if client.exists(stream) else 0
        client.delete(stream)
        client.close()
    print()
    print(f"{args.users} users, {args.rounds} rounds; the companion reported {reports} times")
    print("| NAT 1.9.0, one worker | clients | requests | p50 | p90 | p99 | mean |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for clients in loads:
        for companion, name in ((False, "without the companion"), (True, "with the companion")):
            v = results[clients, companion]
            print(
                f"| {name} | {clients} | {len(v):,} | {percentile(v, 0.5):.2f} ms | {percentile(v, 0.9):.2f} ms | "
                f"{percentile(v, 0.99):.2f} ms | {statistics.fmean(v):.2f} ms |"
            )
    for clients in loads:
        cost = percentile(results[clients, True], 0.99) - percentile(results[clients, False], 0.99)
        print(f"{clients} client(s): the companion's p99 minus NAT's: {cost:+.2f} ms (goal: at most +1 ms)")
    in_process(args.users)


if __name__ == "__main__":
    main()

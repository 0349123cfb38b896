"""100,000 users under load: list-page latency, ``/monitor/users`` latency, refreshes on time, memory.

A NAT-compatible source (``tests/support/fake_nat.py``) holds the users, 10% of them moving between two
reads; refresh every 5 s. Two topologies, each for ``--seconds`` (default 60) of steady load:

- scaled: ``runmonitor`` (the producer, history on) and one Daphne face on Redis;
- embedded: the one Daphne of the default and its child producer (no Redis); its boards are
  counted from the probe's ETags (one a second, so the longest gap is to the nearest second).

Load: wrk keeps 4 list-page loads in flight (a staff session), and a probe fetches
``/monitor/users`` once a second (a bearer token, no gzip). Printed: list p50/p99 (wrk), the
probe's p50/p99, the boards published and the longest gap between two, the peak resident memory
of each process (VmHWM). Needs wrk and Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0);
the history goes to PostgreSQL when ``DATABASE_URL`` names one, else SQLite.
Usage: .venv/bin/python bench/scale.py [--users 100000] [--seconds 60] [--interval 5] [--only scaled|embedded]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()  # the test helpers it borrows import the app

from tests.support.daphne import Daphne, Process, Runmonitor, http_get, manage, server_env, staff_session, wait_until  # noqa: E402
from tests.support.fake_nat import FakeNat  # noqa: E402
from tests.support.machine import free_port  # noqa: E402

TOKEN = "bench-token-" + "s" * 30


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def wrk_latency(url: str, *, seconds: int, cookie: str) -> tuple[float, float, float]:
    """p50 and p99 latency in ms and requests per second of 4 connections on ``url`` for ``seconds``."""
    args = ["wrk", "-t2", "-c4", f"-d{seconds}s", "--timeout", "30s", "--latency", "-H", f"Cookie: sessionid={cookie}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 120).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return ms("50%"), ms("99%"), rate


def child_producer_pid(pid: int) -> int:
    """The embedded producer started by Daphne ``pid`` (its child running ``runmonitor --embedded``)."""
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"--embedded" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except (OSError, ValueError):
            continue
    raise RuntimeError(f"Daphne {pid} has no producer child")


class Probe(threading.Thread):
    """GET ``url`` once a second with the token; keeps each latency."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.errors = 0
        self.first_seen: dict[str, float] = {}  # each board's ETag, when the probe first saw it
        self.stop = threading.Event()

    def run(self) -> None:
        request = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {TOKEN}"})
        while not self.stop.is_set():
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                    self.first_seen.setdefault(response.headers.get("ETag", ""), began)
                self.latencies.append((time.perf_counter() - began) * 1000)
            except OSError:
                self.errors += 1
            self.stop.wait(max(0.0, 1.0 - (time.perf_counter() - began)))


class Boards(threading.Thread):
    """The boards published through Redis during the run (their publishing times)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__(daemon=True)
        self.pubsub = client.pubsub()
        self.pubsub.subscribe(f"{prefix}:board:published")
        self.times: list[datetime] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import json

        while not self.stop.is_set():
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message:
                self.times.append(datetime.fromisoformat(json.loads(message["data"])["published_at"]))


def run(kind: str, users: int, seconds: int, interval: float, work: Path) -> dict[str, float]:
    """One topology under load."""
    nat = FakeNat(users, moving=0.1).start()
    processes: list[Process] = []
    var = work / kind
    var.mkdir()
    prefix = f"umscale-{uuid.uuid4().hex[:8]}"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    extra = {
        "NAT_SOURCES": f"nat={nat.url}",
        "USERMETRICS_DEMO": "0",
        "USERMETRICS_REFRESH_INTERVAL": str(interval),
        "USERMETRICS_SOURCE_TIMEOUT": "30",
        "USERMETRICS_API_TOKENS": TOKEN,
        "USERMETRICS_LOG_LEVEL": "WARNING",
        "USERMETRICS_REDIS_PREFIX": prefix,
    }
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        extra["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/bench_scale_{os.getpid()}"
        subprocess.run(
            ["psql", os.environ["DATABASE_URL"], "-qc", f"CREATE DATABASE bench_scale_{os.getpid()}"], check=True
        )
    if kind == "scaled":
        extra["REDIS_URL"] = redis_url
    env = server_env(var, **extra)
    client = redis.Redis.from_url(redis_url)
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        cookie = staff_session(env)
        if kind == "scaled":
            producer = Runmonitor(env, var / "producer.log")
            producer.start()
            processes.append(producer)
            face = Daphne(free_port(), {**env, "USERMETRICS_PRODUCER": "external"}, var / "face.log")
        else:
            face = Daphne(free_port(), env, var / "daphne.log")
        face.start()
        processes.append(face)

        def serving() -> bool:
            status, body = http_get(face.base + "/api/status", TOKEN)
            return status == 200 and f'"total_users": {users}' in body.decode()

        wait_until(serving, what="every user served", deadline=300)
        time.sleep(2 * interval)  # past the first (cold) refreshes
        boards = Boards(client, prefix) if kind == "scaled" else None
        if boards:
            boards.start()
        probe = Probe(face.base + "/monitor/users")
        probe.start()
        spies = []
        if os.environ.get("BENCH_PYSPY"):  # where a profile of each process goes (py-spy, collapsed stacks)
            for name, proc in (("face", face.proc), *(("producer", p.proc) for p in processes[:-1])):
                out = Path(os.environ["BENCH_PYSPY"]) / f"{kind}-{name}.txt"
                spy = ["py-spy", "record", "-f", "raw", "-o", str(out), "-d", str(seconds), "-p", str(proc.pid)]
                spies.append(subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        p50, p99, rate = wrk_latency(face.base + "/", seconds=seconds, cookie=cookie)
        probe.stop.set()
        probe.join()
        for spy in spies:
            spy.wait(timeout=60)
        result = {
            "list_p50": p50,
            "list_p99": p99,
            "list_rate": rate,
            "api_p50": statistics.median(probe.latencies),
            "api_p99": sorted(probe.latencies)[max(0, int(len(probe.latencies) * 0.99) - 1)],
            "api_errors": probe.errors,
            "face_mb": peak_rss_mb(face.proc.pid),
            "fetches": nat.fetches,
        }
        if boards:
            boards.stop.set()
            boards.join()
            gaps = [(b - a).total_seconds() for a, b in zip(boards.times, boards.times[1:], strict=False)]
            result.update(
                boards=len(boards.times),
                longest_gap=max(gaps) if gaps else float("nan"),
                producer_mb=peak_rss_mb(processes[0].proc.pid),
            )
        else:
            seen = sorted(probe.first_seen.values())
            gaps = [b - a for a, b in pairwise(seen)]
            result.update(
                boards=len(seen) - 1,  # the board being served when the load began is not one of the run's
                longest_gap=max(gaps) if gaps else float("nan"),
                producer_mb=peak_rss_mb(child_producer_pid(face.proc.pid)),
            )
        return result
    finally:
        for process in reversed(processes):
            process.stop()
        nat.stop()
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        if "DATABASE_URL" in extra:
            subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", f"DROP DATABASE bench_scale_{os.getpid()}"])


def main() -> None:
    """Both topologies, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--only", choices=("scaled", "embedded"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    kinds = [args.only] if args.only else ["scaled", "embedded"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="usermetrics-scale-") as tmp:
        for kind in kinds:
            print(
                f"{kind}: {args.users:,} users, refresh every {args.interval:g} s, {args.seconds} s of load", flush=True
            )
            results[kind] = run(kind, args.users, args.seconds, args.interval, Path(tmp))
            print(f"  {results[kind]}", flush=True)
    print()
    columns = ["topology", "list p50", "list p99", "list req/s", "/monitor/users p50"]
    columns += ["p99", "boards (due)", "longest gap", "producer RSS", "face RSS"]
    print("| " + " | ".join(columns) + " |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, r in results.items():
        due = int(args.seconds / args.interval)
        boards = f"{r['boards']} ({due})" if "boards" in r else "n/a"
        gap = f"{r['longest_gap']:.1f} s" if "longest_gap" in r else "n/a"
        producer = f"{r['producer_mb']:.0f} MB"
        print(
            f"| {kind} | {r['list_p50']:.0f} ms | {r['list_p99']:.0f} ms | {r['list_rate']:.1f} | "
            f"{r['api_p50']:.0f} ms | {r['api_p99']:.0f} ms | {boards} | {gap} | {producer} | {r['face_mb']:.0f} MB |"
        )
    print("\nGoals: list p50 <= 150 ms and p99 <= 500 ms; /monitor/users p99 <= 1 s; every refresh on time;")
    print("producer <= 1 GB, each face <= 400 MB.")


if __name__ == "__main__":
    main()

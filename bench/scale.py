"""Sources x users under load: list-page and per-user latency, refreshes on time, producer CPU, memory.

``--sources`` NAT-compatible sources (``tests/support/fake_nat.py``) hold ``--users`` distinct users
each, ``--moving`` of them (default 10%) changing between two reads; refresh every 5 s. Two
topologies, each for ``--seconds`` (default 60) of steady load:

- scaled: ``runmonitor`` (the producer, history on) and one Daphne face on Redis;
- embedded: the one Daphne of the default and its child producer (no Redis); its boards are
  counted from the probe's ETags (one a second, so the longest gap is to the nearest second).

Load: wrk keeps 4 list-page loads in flight (a staff session); one loader asks for random users
one after another, alternating ``/monitor/users?user_id=`` (a bearer token) and the user's page
(the staff session); a probe fetches the whole ``/monitor/users`` once a second (gzip, as a client
that asks for it). Printed: list p50/p99 (wrk), the per-user p50/p99 and how many were not 200,
the probe's p50/p99 and errors, the boards published and the longest gap between two, the
producer's CPU per board published (user + system, over the run; in brackets, the share of one
core it used), the peak resident memory of each
process (VmHWM). Needs wrk and Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0); the
history goes to PostgreSQL when ``DATABASE_URL`` names one, else SQLite.
Usage: .venv/bin/python bench/scale.py [--sources 1] [--users 100000] [--moving 0.1] [--seconds 60]
       [--interval 5] [--only scaled|embedded] [--no-history] [--settle SECONDS]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
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

from measure import cpu_seconds, peak_rss_mb, percentile  # noqa: E402  (bench/measure.py)

from tests.support.daphne import Daphne, Process, Runmonitor, http_get, manage, server_env, staff_session, wait_until  # noqa: E402
from tests.support.fake_nat import FakeNat  # noqa: E402
from tests.support.machine import free_port  # noqa: E402

TOKEN = "bench-token-" + "s" * 30


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
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "gzip"}
        request = urllib.request.Request(self.url, headers=headers)
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


class UserLoader(threading.Thread):
    """Random users one after another: ``/monitor/users?user_id=`` (the token), then the user's page (the cookie)."""

    def __init__(self, base: str, ids: list[str], cookie: str) -> None:
        super().__init__(daemon=True)
        self.base, self.ids, self.cookie = base, ids, cookie
        self.latencies: dict[str, list[float]] = {"api": [], "page": []}
        self.failures: dict[str, int] = {"api": 0, "page": 0}
        self.stop = threading.Event()
        self.rng = random.Random(1)

    def run(self) -> None:
        while not self.stop.is_set():
            user = self.rng.choice(self.ids)
            quoted = urllib.parse.quote(user, safe="")
            for kind, url, headers in (
                ("api", f"{self.base}/monitor/users?user_id={quoted}", {"Authorization": f"Bearer {TOKEN}"}),
                ("page", f"{self.base}/users/{quoted}/", {"Cookie": f"sessionid={self.cookie}"}),
            ):
                began = time.perf_counter()
                try:
                    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
                        response.read()
                        ok = response.status == 200
                except OSError:  # HTTPError included: anything but a 200 is a failure
                    ok = False
                self.latencies[kind].append((time.perf_counter() - began) * 1000)
                self.failures[kind] += 0 if ok else 1


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


def run(kind: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    """One topology under load."""
    users, seconds, interval = args.sources * args.users, args.seconds, args.interval
    nats = [FakeNat(args.users, moving=args.moving, seed=n, prefix=f"s{n}-user").start() for n in range(args.sources)]
    processes: list[Process] = []
    var = work
    var.mkdir()
    prefix = f"umscale-{uuid.uuid4().hex[:8]}"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    extra = {
        "NAT_SOURCES": ",".join(f"nat{n}={nat.url}" for n, nat in enumerate(nats)),
        "USERMETRICS_DEMO": "0",
        "USERMETRICS_REFRESH_INTERVAL": str(interval),
        "USERMETRICS_SOURCE_TIMEOUT": "30",
        "USERMETRICS_API_TOKENS": TOKEN,
        "USERMETRICS_LOG_LEVEL": "WARNING",
        "USERMETRICS_REDIS_PREFIX": prefix,
    }
    if args.no_history:  # the producer's own work alone: no recorder thread beside the refresh
        extra["USERMETRICS_HISTORY"] = "0"
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

        began = time.perf_counter()
        wait_until(serving, what="every user served", deadline=600)
        ready_s = time.perf_counter() - began
        time.sleep(args.settle if args.settle is not None else 2 * interval)  # past the first (cold) refreshes
        boards = Boards(client, prefix) if kind == "scaled" else None
        if boards:
            boards.start()
        producer_pid = processes[0].proc.pid if kind == "scaled" else child_producer_pid(face.proc.pid)
        cpu_first = cpu_seconds(producer_pid)
        probe = Probe(face.base + "/monitor/users")
        probe.start()
        loader = UserLoader(face.base, [u["user_id"] for nat in nats for u in nat.users], cookie)
        loader.start()
        spies = []
        if os.environ.get("BENCH_PYSPY"):  # where a profile of each process goes (py-spy, collapsed stacks)
            for name, proc in (("face", face.proc), *(("producer", p.proc) for p in processes[:-1])):
                out = Path(os.environ["BENCH_PYSPY"]) / f"{kind}-{name}.txt"
                spy = ["py-spy", "record", "-f", "raw", "-o", str(out), "-d", str(seconds), "-p", str(proc.pid)]
                spies.append(subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        p50, p99, rate = wrk_latency(face.base + "/", seconds=seconds, cookie=cookie)
        cpu_ms = (cpu_seconds(producer_pid) - cpu_first) * 1000
        probe.stop.set()
        loader.stop.set()
        probe.join()
        loader.join()
        for spy in spies:
            spy.wait(timeout=60)
        result = {
            "list_p50": p50,
            "list_p99": p99,
            "list_rate": rate,
            "ready_s": ready_s,
            "whole_p50": statistics.median(probe.latencies) if probe.latencies else float("nan"),
            "whole_p99": percentile(probe.latencies, 0.99),
            "whole_ok": len(probe.latencies),
            "whole_errors": probe.errors,
            "user_p50": statistics.median(loader.latencies["api"]),
            "user_p99": percentile(loader.latencies["api"], 0.99),
            "user_n": len(loader.latencies["api"]),
            "user_failed": loader.failures["api"],
            "page_p50": statistics.median(loader.latencies["page"]),
            "page_p99": percentile(loader.latencies["page"], 0.99),
            "page_n": len(loader.latencies["page"]),
            "page_failed": loader.failures["page"],
            "face_mb": peak_rss_mb(face.proc.pid),
            "producer_mb": peak_rss_mb(producer_pid),
            "fetches": sum(nat.fetches for nat in nats),
        }
        if boards:
            boards.stop.set()
            boards.join()
            gaps = [(b - a).total_seconds() for a, b in zip(boards.times, boards.times[1:], strict=False)]
            result.update(boards=len(boards.times), longest_gap=max(gaps) if gaps else float("nan"))
        else:
            seen = sorted(probe.first_seen.values())
            gaps = [b - a for a, b in pairwise(seen)]
            result.update(
                boards=len(seen) - 1,  # the board being served when the load began is not one of the run's
                longest_gap=max(gaps) if gaps else float("nan"),
            )
        # Per board published (a producer that falls behind publishes fewer than are due), and its share of the run.
        result["cpu_per_refresh_ms"] = cpu_ms / max(1, result["boards"])
        result["cpu_share"] = cpu_ms / 1000 / seconds
        return result
    finally:
        for process in reversed(processes):
            try:
                process.stop()
            except AssertionError as slow:  # killed after the wait: say so, keep the run's figures
                print(f"  (warning: {slow})", flush=True)
        for nat in nats:
            nat.stop()
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        if "DATABASE_URL" in extra:
            subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", f"DROP DATABASE bench_scale_{os.getpid()}"])


def main() -> None:
    """Each scale (sources x users) and topology, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1x100000", help="sources x users per source, comma-separated")
    parser.add_argument("--moving", type=float, default=0.1, help="the share of each source's users changing per read")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--only", choices=("scaled", "embedded"))
    parser.add_argument("--no-history", action="store_true", help="run the producer without recording history")
    parser.add_argument("--settle", type=float, help="seconds from all users served to the load (default: 2 refreshes)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    kinds = [args.only] if args.only else ["scaled", "embedded"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="usermetrics-scale-") as tmp:
        for scale in args.scales.split(","):
            args.sources, args.users = map(int, scale.split("x"))
            for kind in kinds:
                total = args.sources * args.users
                print(
                    f"{kind}: {args.sources} x {args.users:,} = {total:,} users, {args.moving:.0%} moving, "
                    f"refresh every {args.interval:g} s, {args.seconds} s of load",
                    flush=True,
                )
                results[kind, scale] = run(kind, args, Path(tmp) / f"{kind}-{scale}")
                print(f"  {results[kind, scale]}", flush=True)
    print()
    columns = ["topology", "sources x users", "ready", "list p50", "list p99", "?user_id= p50", "p99", "not 200"]
    columns += ["user page p50", "p99", "not 200", "whole (gzip) p50", "p99", "errors", "boards (due)", "longest gap"]
    columns += ["producer CPU / board (of a core)", "producer RSS", "face RSS"]
    print("| " + " | ".join(columns) + " |")
    print("| --- | --- |" + " ---: |" * (len(columns) - 2))
    for (kind, scale), r in results.items():
        due = int(args.seconds / args.interval)
        cells = [kind, scale.replace("x", " x "), f"{r['ready_s']:.0f} s", f"{r['list_p50']:.0f} ms"]
        cells += [f"{r['list_p99']:.0f} ms", f"{r['user_p50']:.0f} ms", f"{r['user_p99']:.0f} ms"]
        cells += [f"{r['user_failed']} of {r['user_n']}", f"{r['page_p50']:.0f} ms", f"{r['page_p99']:.0f} ms"]
        cells += [f"{r['page_failed']} of {r['page_n']}", f"{r['whole_p50']:.0f} ms", f"{r['whole_p99']:.0f} ms"]
        cells += [str(r["whole_errors"]), f"{r['boards']} ({due})", f"{r['longest_gap']:.1f} s"]
        cells += [f"{r['cpu_per_refresh_ms']:.0f} ms ({r['cpu_share']:.0%})"]
        cells += [f"{r['producer_mb']:.0f} MB", f"{r['face_mb']:.0f} MB"]
        print("| " + " | ".join(cells) + " |")
    print("\nGoals at 1M users: list p50 <= 150 ms and p99 <= 500 ms; a user (API and page) p99 <= 200 ms, all 200;")
    print("every refresh on time; producer <= 2 GB, each face <= 1 GB.")


if __name__ == "__main__":
    main()

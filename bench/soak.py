"""Soak: websocket and API clients for minutes on the scaled topology; errors, frames missed, memory.

The scaled topology on free loopback ports: a Redis of its own (``redis-server``, DB 7), one
``runmonitor`` producer (history on: PostgreSQL when ``DATABASE_URL`` names one, else SQLite), two
Daphne faces (``USERMETRICS_PRODUCER=external``), and a NAT-compatible source
(``tests/support/fake_nat.py``) holding ``--users`` users, 10% of them moving between two reads, read
every ``--interval`` seconds. Everything is stopped at the end, on Ctrl+C and on an error.

Load, for ``--seconds`` after ``--warmup`` seconds of warm-up:

- ``--clients`` websocket clients (a staff session), half on each face; a quarter watch a list
  page (ten distinct views: five pages, two sorts), the others one user each (two sockets per
  user, one on each face, so the same view is fanned out through both). Each counts its frames by
  refresh number against the refreshes the producer published (its pub/sub says when): a refresh
  it did not get is a frame missed, one it got twice is a duplicate; and its reconnects (the
  socket closed by the server, then opened again) and errors (a refused handshake, a frame that
  is not the subscribed view);
- ``--api-clients`` API clients (a bearer token, one keep-alive connection each, alternating
  faces) looping over ``/api/status``, ``/api/sources``, ``/api/users/<id>``, a user's and the
  overview's history, ``/api/list/window``, ``/monitor/users?user_id=`` and the whole
  ``/monitor/users`` (gzip, ``If-None-Match``); anything but 2xx or 304 is an error, and so is an
  exception (a timeout, a reset).

Memory: the resident set (VmRSS) of the producer, each face and redis-server, sampled every 5 s:
the median of the soak's first and of its last minute (one sample may catch a refresh half-done),
the peak, and a timeline at every sixth of the soak (every 10 minutes of an hour's: the median,
lowest and highest of the samples within 30 s of each mark). ``--rss-log FILE`` writes every
sample as CSV (seconds into the soak, then MB per process), line by line, so a long soak can be
read while it runs.
Usage: .venv/bin/python bench/soak.py [--seconds 600] [--clients 200] [--api-clients 20] [--users 10000]
       [--interval 1] [--warmup 30] [--rss-log FILE] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import redis
import redis.asyncio as aioredis
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()  # the test helpers it borrows import the app

from measure import cpu_seconds  # noqa: E402  (bench/measure.py)

from tests.support.daphne import Daphne, Process, Runmonitor, http_get, manage, server_env, staff_session, wait_until  # noqa: E402
from tests.support.fake_nat import FakeNat  # noqa: E402
from tests.support.machine import free_port  # noqa: E402
from usermetrics.converters import user_id_to_segment  # noqa: E402

TOKEN = "bench-token-" + "k" * 30
REDIS_DB = 7
# Server log lines worth reading (Daphne's access log and the readiness probes' 401s are not), and
# the time stamp and process-specific names that keep equal lines apart.
WORTH_READING = re.compile(r"^(?!.*Unauthorized: /api/status).*(WARNING|ERROR|CRITICAL|Traceback|Error:)")
NOTABLE = re.compile(r"^[\d-]+ [\d:,]+ |producer-[0-9a-f]+ ")
LIST_VIEWS = [f"?page={page}&sort={sort}" for page in range(1, 6) for sort in ("-last_activity", "user_id")]
Timeline = list[tuple[float, dict[str, float]]]  # (seconds into the soak, MB per process), one row per sample


def user_id(n: int) -> str:
    """The id FakeNat gives its ``n``-th user."""
    return f"user-{n:06d}@example.com"


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident memory now (VmRSS) and its peak so far (VmHWM), in MB."""
    text = Path(f"/proc/{pid}/status").read_text()
    now, peak = (int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) / 1024 for key in ("VmRSS", "VmHWM"))
    return now, peak


class RedisServer(Process):
    """A ``redis-server`` of the soak's own on a free loopback port: nothing else shares its memory."""

    def __init__(self, work: Path) -> None:
        """No persistence: the soak measures serving, not snapshots to disk."""
        self.port = free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        super().__init__([*args, "--dir", str(work)], dict(os.environ), work / "redis.log")
        self.url = f"redis://127.0.0.1:{self.port}/{REDIS_DB}"

    def start(self) -> None:
        """Start and wait until it answers PING."""
        super().start()
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, what="redis-server", proc=self.proc)
        client.close()


class Source(Process):
    """The NAT-compatible source (``FakeNat``) in a process of its own, so the clients' work does not slow it."""

    def __init__(self, users: int, work: Path) -> None:
        """``users`` users, 10% of them moving between two reads, on a free loopback port."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, __file__, "--serve-source", str(self.port), "--users", str(users)]
        super().__init__(args, dict(os.environ), work / "source.log")

    def start(self) -> None:
        """Start and wait until it answers."""
        super().start()
        wait_until(lambda: http_get(self.url + "/monitor/users")[0] == 200, what="the source", proc=self.proc)


def serve_source(port: int, users: int) -> None:
    """The body of ``Source``: serve until killed."""
    nat = FakeNat(users, moving=0.1)
    nat.port, nat.url = port, f"http://127.0.0.1:{port}"
    nat.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    nat.stop()


@dataclass
class Socket:
    """One websocket client's counts."""

    path: str
    expect: str | None  # the one user a user socket must be sent, None for a list page
    seqs: dict[int, float] = field(default_factory=dict)  # refresh number -> when its frame came
    duplicates: int = 0
    frames: int = 0
    statuses: int = 0
    connects: int = 0
    closes: Counter[str] = field(default_factory=Counter)  # why the server ended the socket
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Api:
    """One API client's counts."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


async def watch(face: Daphne, cookie: str, sock: Socket, stop: asyncio.Event) -> None:
    """Keep one socket open until ``stop``, reconnecting after a close; count what it gets."""
    headers = {"Cookie": f"sessionid={cookie}", "Origin": face.base}
    url = f"ws://127.0.0.1:{face.port}{sock.path}"
    while not stop.is_set():
        try:
            async with websockets.connect(url, additional_headers=headers, max_size=2**22, open_timeout=30) as ws:
                sock.connects += 1
                while not stop.is_set():
                    try:
                        text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    at = time.time()
                    doc = orjson.loads(text)
                    if doc.get("type") == "status":
                        sock.statuses += 1
                        continue
                    if doc.get("type") != "snapshot":
                        sock.errors[f"frame type {doc.get('type')!r}"] += 1
                        continue
                    ids = [u["user_id"] for u in doc["users"]]
                    if (sock.expect is not None and ids != [sock.expect]) or (sock.expect is None and len(ids) != 100):
                        sock.errors["frame not the subscribed view"] += 1
                    sock.frames += 1
                    seq = int(doc["seq"])
                    if seq in sock.seqs:
                        sock.duplicates += 1
                    sock.seqs[seq] = at
        except websockets.ConnectionClosed as closed:
            if not stop.is_set():
                sock.closes[f"closed {closed.rcvd.code if closed.rcvd else 'without a close frame'}"] += 1
        except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
            if not stop.is_set():
                sock.errors[f"connect: {type(error).__name__}: {error}"[:120]] += 1
                await asyncio.sleep(1)  # as a browser backs off


def api_routes(n: int) -> list[tuple[str, dict[str, str]]]:
    """What API client ``n`` asks for, in a loop: paths with their extra headers."""
    uid = user_id((n * 397) % 10_000)
    segment = quote(user_id_to_segment(uid), safe="@")
    page = "&".join(f"user_id={quote(user_id(i))}" for i in range(n, n + 100))
    return [
        ("/api/status", {}),
        ("/api/sources", {}),
        (f"/api/users/{segment}", {}),
        (f"/monitor/users?user_id={quote(uid)}", {}),
        (f"/api/users/{segment}/history?window=15m", {}),
        ("/api/overview/history?window=15m", {}),
        (f"/api/list/window?window=5m&{page}", {}),
        ("/monitor/users", {"Accept-Encoding": "gzip"}),
    ]


async def poll(face: Daphne, n: int, api: Api, stop: asyncio.Event, pause: float) -> None:
    """Loop over the API routes until ``stop``; count statuses, errors and latencies."""
    etag = ""
    routes = api_routes(n)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=face.base, headers=headers, timeout=30) as client:
        while not stop.is_set():
            for path, extra in routes:
                if stop.is_set():
                    break
                if path == "/monitor/users" and etag:
                    extra = {**extra, "If-None-Match": etag}
                began = time.perf_counter()
                try:
                    response = await client.get(path, headers=extra)
                    await response.aread()
                except httpx.HTTPError as error:
                    api.errors[f"{path.split('?')[0]}: {type(error).__name__}"] += 1
                    continue
                api.latencies.append((time.perf_counter() - began) * 1000)
                api.requests += 1
                api.statuses[response.status_code] += 1
                if response.status_code >= 300 and response.status_code != 304:
                    api.errors[f"{path.split('?')[0]}: {response.status_code}"] += 1
                if path == "/monitor/users":
                    etag = response.headers.get("ETag", etag)
                if pause:
                    await asyncio.sleep(pause)


async def follow(url: str, prefix: str, published: dict[int, float], lost: Counter[str]) -> None:
    """Every board the producer publishes: its refresh number and publishing time (reconnecting after an error)."""
    while True:
        bus = aioredis.Redis.from_url(url)
        pubsub = bus.pubsub()
        try:
            await pubsub.subscribe(f"{prefix}:board:published")
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message:
                    meta = orjson.loads(message["data"])
                    published[int(meta["seq"])] = datetime.fromisoformat(meta["published_at"]).timestamp()
        except redis.RedisError as error:  # the machine is loaded: say so, and listen again
            lost[f"the script's pub/sub: {type(error).__name__}"] += 1
        finally:
            await pubsub.aclose()
            await bus.aclose()


async def soak(
    args: argparse.Namespace, faces: list[Daphne], pids: dict[str, int], others: dict[str, int], cookie: str, env: dict
) -> dict:
    """Connect every client, warm up, run the load for ``args.seconds``, and count.

    ``pids``: the servers, whose memory and CPU are measured; ``others``: processes whose CPU only is.
    """
    stop = asyncio.Event()
    published: dict[int, float] = {}
    lost: Counter[str] = Counter()
    follower = asyncio.create_task(follow(env["REDIS_URL"], env["USERMETRICS_REDIS_PREFIX"], published, lost))
    sockets = []
    for i in range(args.clients):
        if (i // 2) % 4 == 0:  # a quarter on list pages, each view on both faces
            sockets.append(Socket(f"/ws/monitor/{LIST_VIEWS[(i // 8) % len(LIST_VIEWS)]}", None))
        else:
            uid = user_id((i // 2) * 37 % args.users)
            sockets.append(Socket(f"/ws/monitor/users/{quote(user_id_to_segment(uid), safe='@')}/", uid))
    tasks = [asyncio.create_task(watch(faces[i % 2], cookie, s, stop)) for i, s in enumerate(sockets)]
    apis = [Api() for _ in range(args.api_clients)]
    tasks += [asyncio.create_task(poll(faces[n % 2], n, a, stop, args.api_pause)) for n, a in enumerate(apis)]
    await asyncio.sleep(args.warmup)
    start_mb = {name: rss_mb(pid)[0] for name, pid in pids.items()}
    peak_mb = dict(start_mb)
    timeline: Timeline = [(0.0, start_mb)]
    rss_log = args.rss_log.open("w", buffering=1) if args.rss_log else None
    if rss_log:
        rss_log.write(",".join(["seconds", *pids]) + "\n")
        rss_log.write(",".join(["0", *(f"{mb:.1f}" for mb in start_mb.values())]) + "\n")
    start_cpu = {name: cpu_seconds(pid) for name, pid in {**pids, **others}.items()}
    began = time.time()
    counts_at_start = (sum(a.requests for a in apis), sum(sum(a.errors.values()) for a in apis))
    print(f"  warmed up ({len(published)} boards so far); soaking for {args.seconds} s", flush=True)
    while time.time() < began + args.seconds:
        await asyncio.sleep(min(5, began + args.seconds - time.time()))
        elapsed = time.time() - began
        sample = {name: rss_mb(pid)[0] for name, pid in pids.items()}
        timeline.append((elapsed, sample))
        for name, mb in sample.items():
            peak_mb[name] = max(peak_mb[name], mb)
        if rss_log:
            rss_log.write(",".join([f"{elapsed:.0f}", *(f"{mb:.1f}" for mb in sample.values())]) + "\n")
        if int(elapsed) % 60 < 5:
            print(f"  {elapsed:.0f} s: {len(published)} boards, {sum(s.frames for s in sockets):,} frames", flush=True)
    ended = time.time()
    if rss_log:
        rss_log.close()
    cpu = {name: (cpu_seconds(pid) - start_cpu[name]) / (ended - began) for name, pid in {**pids, **others}.items()}
    await asyncio.sleep(3)  # the frames of the last refreshes arrive
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)
    # Every refresh published inside the soak is due to every socket.
    # Refresh numbers go up by one per board, so the ones due are every number between the first and
    # the last board published inside the soak (even one the script's pub/sub did not hear of).
    inside = [seq for seq, at in published.items() if began <= at <= ended]
    if not inside:
        raise RuntimeError("no board was published during the soak: see the producer's log")
    due = list(range(min(inside), max(inside) + 1))
    heard = [seq for seq in due if seq in published]
    missed = sum(1 for s in sockets for seq in due if seq not in s.seqs)
    frames = sum(1 for s in sockets for seq in due if seq in s.seqs)
    delays = sorted(s.seqs[seq] - published[seq] for s in sockets for seq in heard if seq in s.seqs)
    gaps = [published[b] - published[a] for a, b in itertools.pairwise(heard)]
    latencies = sorted(x for a in apis for x in a.latencies)
    if args.logs:  # which refreshes each socket missed, for reading the pattern afterwards
        args.logs.mkdir(parents=True, exist_ok=True)
        missing = [
            {"path": s.path, "face": i % 2 + 1, "missed": [seq for seq in due if seq not in s.seqs]}
            for i, s in enumerate(sockets)
        ]
        published_at = {seq: published[seq] for seq in due}
        (args.logs / "sockets.json").write_bytes(
            orjson.dumps({"published": published_at, "sockets": missing}, option=orjson.OPT_NON_STR_KEYS)
        )
    return {
        "boards": len(due),
        "longest_gap": max(gaps) if gaps else float("nan"),
        "frames": frames,
        "lost": lost,
        "frames_due": len(due) * len(sockets),
        "missed": missed,
        "duplicates": sum(s.duplicates for s in sockets),
        "reconnects": sum(max(0, s.connects - 1) for s in sockets),
        "closes": sum((s.closes for s in sockets), Counter()),
        "ws_errors": sum((s.errors for s in sockets), Counter()),
        "statuses": sum(s.statuses for s in sockets),
        "frame_p50": delays[len(delays) // 2] * 1000 if delays else float("nan"),
        "frame_p99": delays[int(len(delays) * 0.99)] * 1000 if delays else float("nan"),
        "api_requests": sum(a.requests for a in apis) - counts_at_start[0],
        "api_statuses": sum((a.statuses for a in apis), Counter()),
        "api_errors": sum((a.errors for a in apis), Counter()),
        "api_errors_in_soak": sum(sum(a.errors.values()) for a in apis) - counts_at_start[1],
        "api_p50": statistics.median(latencies) if latencies else float("nan"),
        "api_p99": latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "peak_mb": peak_mb,
        "timeline": timeline,
        "cpu": cpu,
    }


def report(args: argparse.Namespace, r: dict, history: str) -> None:
    """The one table, then what the errors were."""
    ws_errors = sum(r["ws_errors"].values())
    due = int(args.seconds / args.interval)
    rows = [
        ("errors: websocket (refused, wrong frame)", ws_errors, "0"),
        ("errors: API (non-2xx/304, exceptions)", r["api_errors_in_soak"], "0"),
        ("frames missed (seq gaps)", f"{r['missed']:,}", "0"),
        ("frames twice", r["duplicates"], "0"),
        ("reconnects (server closed the socket)", r["reconnects"], "0"),
        ("frames delivered (due)", f"{r['frames']:,} ({r['frames_due']:,})", ""),
        ("frame after publish, p50 / p99", f"{r['frame_p50']:.0f} / {r['frame_p99']:.0f} ms", ""),
        (f"refreshes published (due: one every {args.interval:g} s)", f"{r['boards']} ({due})", ""),
        ("longest gap between two refreshes", f"{r['longest_gap']:.2f} s", ""),
        ("API requests done", f"{r['api_requests']:,}", ""),
        ("API latency p50 / p99", f"{r['api_p50']:.0f} / {r['api_p99']:.0f} ms", ""),
    ]
    first, last = near(r["timeline"], 30), near(r["timeline"], args.seconds - 30)
    for name in r["peak_mb"]:
        start, end, peak = statistics.median(first[name]), statistics.median(last[name]), r["peak_mb"][name]
        rows.append(
            (
                f"memory: {name}, first / last minute's median (peak)",
                f"{start:.0f} / {end:.0f} MB ({peak:.0f}), {(end - start) / start:+.1%}",
                "within 10%",
            )
        )
    cpu = ", ".join(f"{name} {share:.0%}" for name, share in r["cpu"].items())
    rows.append(("CPU during the soak (one core = 100%)", cpu, ""))
    print()
    print(
        f"Soak: {args.seconds} s after {args.warmup} s of warm-up; {args.clients} websocket clients, "
        f"{args.api_clients} API clients; {args.users:,} users, refresh every {args.interval:g} s; "
        f"history on {history}."
    )
    print()
    print("| measure | figure | goal |")
    print("| --- | ---: | --- |")
    for name, value, goal in rows:
        print(f"| {name} | {value} | {goal} |")
    for title, counter in (
        ("sockets closed by the server", r["closes"]),
        ("websocket errors", r["ws_errors"]),
        ("the script itself", r["lost"]),
        ("API errors (whole run, warm-up included)", r["api_errors"]),
    ):
        if counter:
            print(f"\n{title}: " + ", ".join(f"{k} x{v}" for k, v in counter.most_common()))
    for name, lines in r["logs"].items():
        notable = Counter(NOTABLE.sub("", line)[:200] for line in lines if WORTH_READING.search(line))
        if notable:
            print(f"\n{name}: " + "; ".join(f"{line} x{n}" for line, n in notable.most_common(8)))
    print(f"\nAPI statuses: {dict(sorted(r['api_statuses'].items()))}; status messages on sockets: {r['statuses']}")
    print_timeline(args.seconds, r["timeline"])


def near(timeline: Timeline, mark: float) -> dict[str, list[float]]:
    """Each process's samples within 30 s of ``mark`` (seconds into the soak), sorted; else its last sample.

    One sample says little: a refresh allocates and frees its board (at 10,000 users the
    producer's RSS swings by about 14 MB within each refresh), so a mark is read off a minute.
    """
    rows = [mb for at, mb in timeline if abs(at - mark) <= 30] or [timeline[-1][1]]
    return {name: sorted(mb[name] for mb in rows) for name in timeline[0][1]}


def print_timeline(seconds: int, timeline: Timeline) -> None:
    """Each process's resident memory at every sixth of the soak: does it level off or keep growing?"""
    names = list(timeline[0][1])
    print("\nResident memory (VmRSS, MB): median (lowest-highest) of the samples within 30 s of each mark\n")
    print("| minute | " + " | ".join(names) + " |")
    print("| ---: |" + " ---: |" * len(names))
    for mark in (seconds * k / 6 for k in range(7)):
        cells = [f"{statistics.median(v):.0f} ({v[0]:.0f}-{v[-1]:.0f})" for v in near(timeline, mark).values()]
        print(f"| {mark / 60:.3g} | " + " | ".join(cells) + " |")


def main() -> None:
    """Start the topology, soak, stop everything (also on Ctrl+C, SIGTERM or an error), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600, help="how long the load runs after the warm-up")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--api-clients", type=int, default=20)
    parser.add_argument("--api-pause", type=float, default=0.0, help="seconds each API client waits between requests")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--logs", type=Path, help="a directory to copy the servers' logs to at the end")
    parser.add_argument("--rss-log", type=Path, help="a CSV file for every memory sample (every 5 s) of the soak")
    parser.add_argument("--serve-source", type=int, help=argparse.SUPPRESS)  # the Source process, on this port
    args = parser.parse_args()
    if args.serve_source:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        serve_source(args.serve_source, args.users)
        return
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed: apt-get install redis-server")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill stops the processes as Ctrl+C does
    prefix = f"umsoak-{uuid.uuid4().hex[:8]}"
    database = f"bench_soak_{os.getpid()}"
    processes: list[Process] = []
    extra: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="usermetrics-soak-") as tmp:
        work = Path(tmp)
        try:
            nat = Source(args.users, work)
            nat.start()
            processes.append(nat)
            store = RedisServer(work)
            store.start()
            processes.append(store)
            extra = {
                "REDIS_URL": store.url,
                "USERMETRICS_REDIS_PREFIX": prefix,
                "NAT_SOURCES": f"nat={nat.url}",
                "USERMETRICS_DEMO": "0",
                "USERMETRICS_REFRESH_INTERVAL": str(args.interval),
                "USERMETRICS_SOURCE_TIMEOUT": "30",
                "USERMETRICS_API_TOKENS": TOKEN,
                "USERMETRICS_LOG_LEVEL": "WARNING",
            }
            if os.environ.get("DATABASE_URL", "").startswith("postgres"):
                extra["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}"
                subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", f"CREATE DATABASE {database}"], check=True)
            env = server_env(work, **extra)
            manage(env, "migrate", "--noinput", "-v", "0")
            cookie = staff_session(env)
            producer = Runmonitor(env, work / "producer.log")
            producer.start()
            processes.append(producer)
            faces = []
            for n in range(2):
                face = Daphne(free_port(), {**env, "USERMETRICS_PRODUCER": "external"}, work / f"face-{n}.log")
                face.start()
                processes.append(face)
                faces.append(face)

            def serving(face: Daphne) -> bool:
                status, body = http_get(face.base + "/api/status", TOKEN)
                return status == 200 and f'"total_users": {args.users}' in body.decode()

            for face in faces:
                wait_until(lambda face=face: serving(face), what="every user served", deadline=120)
            pids = {"producer": producer.proc.pid, "face 1": faces[0].proc.pid, "face 2": faces[1].proc.pid}
            pids["redis-server"] = store.proc.pid
            ports = f"Redis on port {store.port}, DB {REDIS_DB}; faces on {faces[0].port} and {faces[1].port}"
            print(f"soak: topology up ({ports})", flush=True)
            others = {"source": nat.proc.pid, "this script (the clients)": os.getpid()}
            result = asyncio.run(soak(args, faces, pids, others, cookie, env))
            result["logs"] = {p.log_path.name: p.log().splitlines() for p in processes if p is not nat}
        except BaseException:
            for process in processes:
                print(f"\n--- the end of {process.log_path.name}:\n{process.log()[-2000:]}", file=sys.stderr)
            raise
        finally:
            for process in reversed(processes):
                process.stop()
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for process in processes:
                    shutil.copy(process.log_path, args.logs / process.log_path.name)
            if "DATABASE_URL" in extra:
                subprocess.run(["psql", os.environ["DATABASE_URL"], "-qc", f"DROP DATABASE {database}"])
    report(args, result, "PostgreSQL" if "DATABASE_URL" in extra else "SQLite")


if __name__ == "__main__":
    main()

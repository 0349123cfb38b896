"""Where a tiny request's time goes (sync script, part of ``bench/api_throughput.py --request-path``).

``/api/status`` with a bearer token through our whole stack, beside a bare Daphne app
(``bench/floor_app.py``) that sends the same body with the same headers: their ratio is what our
stack keeps of what Daphne alone can do. Then the same request with parts taken away (the ASGI
wrappers in front of Django, groups of middleware), each a Daphne of its own, to say where the
difference goes; and with a staff session cookie instead of the token (what every page pays on
top). Several checkouts (before and after a change) are measured in turn in each round, every
figure beside a floor measured in the same round.
"""

from __future__ import annotations

import collections
import json
import os
import re
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import NamedTuple

import httpx
from measure import cpu_seconds

from tests.support.daphne import Process, http_get, manage, server_env, staff_session, wait_until
from tests.support.machine import free_port

TOKEN = "bench-token-" + "t" * 30
DEMO_USERS = "50"

# A Daphne of a checkout's stack, with some middleware or the ASGI wrappers taken away: the settings
# module is edited before Django reads it, and the application handed to Daphne's own command line.
LAUNCH = r"""
import os, sys, types
root = os.environ["BENCH_ROOT"]
sys.path.insert(0, root)
os.chdir(root)
drop = set(filter(None, os.environ.get("BENCH_DROP", "").split(",")))
import monitor_site.settings as settings
settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "*" not in drop and m.rsplit(".", 1)[-1] not in drop]
from monitor_site import asgi
app = asgi.application
if os.environ.get("BENCH_BARE"):
    app = asgi.StartFaceOnFirstScope(asgi.django_asgi_app)
module = types.ModuleType("bench_stack")
module.application = app
sys.modules["bench_stack"] = module
from daphne.cli import CommandLineInterface
CommandLineInterface().run(sys.argv[1:])
"""

# (label, middleware class names taken away, without the ASGI wrappers)
VARIANTS: list[tuple[str, tuple[str, ...], bool]] = [
    ("without the ASGI wrappers (fast path, nosniff, %2F, static files)", (), True),
    (
        "without sessions, auth and messages",
        ("SessionMiddleware", "AuthenticationMiddleware", "MessageMiddleware"),
        False,
    ),
    ("without CSRF", ("CsrfViewMiddleware",), False),
    ("without CSP", ("WebsocketCSPMiddleware",), False),
    ("without axes", ("AxesMiddleware",), False),
    (
        "without Security, Common, XFrameOptions",
        ("SecurityMiddleware", "CommonMiddleware", "XFrameOptionsMiddleware"),
        False,
    ),
    (
        "without our two (database unreachable, API JSON errors)",
        ("DatabaseUnreachableMiddleware", "ApiJsonErrorsMiddleware"),
        False,
    ),
    ("no middleware, no wrappers (Django, ninja, the view)", ("*",), True),
]


def wrk_run(url: str, *, seconds: int, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """Requests answered and requests per second, 16 connections for ``seconds`` (wrk, 2 threads); a non-2xx fails."""
    args = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "30s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rate is None or count is None or errors is not None:
        raise RuntimeError(f"wrk on {url} failed:\n{out}")
    return int(count.group(1)), float(rate.group(1))


def wrk(url: str, *, seconds: int, headers: dict[str, str] | None = None) -> float:
    """Requests per second with 16 connections for ``seconds`` (``wrk_run``)."""
    return wrk_run(url, seconds=seconds, headers=headers)[1]


def loaded(pid: int, url: str, *, seconds: int, headers: dict[str, str] | None = None) -> Figure:
    """``url`` under wrk for ``seconds`` after one to warm up: requests/s, and the CPU ms the server spent on each."""
    wrk(url, seconds=1, headers=headers)
    before = cpu_seconds(pid)
    count, rate = wrk_run(url, seconds=seconds, headers=headers)
    return Figure(rate, 1000 * (cpu_seconds(pid) - before) / max(count, 1))


class Figure(NamedTuple):
    """One measurement: requests per second and the server's CPU milliseconds per request."""

    rate: float
    cpu_ms: float


class Checkout:
    """One checkout's stack: its own database, and the board a producer of its own left in Redis."""

    def __init__(self, root: Path, work: Path) -> None:
        """Prepare ``root``'s database under ``work``."""
        self.root = root
        self.var = work / f"var-{uuid.uuid4().hex[:8]}"
        self.var.mkdir()
        self.env = server_env(
            self.var,
            REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            USERMETRICS_REDIS_PREFIX=f"umbench-{uuid.uuid4().hex[:8]}",
            USERMETRICS_DEMO="1",
            USERMETRICS_DEMO_USERS=DEMO_USERS,
            USERMETRICS_HISTORY="0",
            USERMETRICS_API_TOKENS=TOKEN,
            USERMETRICS_PRODUCER="external",
            USERMETRICS_PRODUCER_TIMEOUT="3600",
            USERMETRICS_LOG_LEVEL="WARNING",
            PYTHONPATH=str(root / "companion"),
            BENCH_ROOT=str(root),
        )
        manage(self.env, "migrate", "--noinput", "-v", "0")
        self.session = staff_session(self.env, "bench-staff")

    def serve(self, *, drop: tuple[str, ...] = (), bare: bool = False) -> tuple[Process, str]:
        """A Daphne of this stack (less ``drop``), answering ``/api/status`` with 200: the process and its base URL."""
        port = free_port()
        env = {**self.env, "BENCH_DROP": ",".join(drop), "BENCH_BARE": "1" if bare else ""}
        args = [sys.executable, "-c", LAUNCH, "-b", "127.0.0.1", "-p", str(port), "bench_stack:application"]
        server = Process(args, env, self.var / f"daphne-{port}.log")
        server.start()
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: http_get(base + "/api/status", TOKEN)[0] == 200, what="the stack", proc=server.proc)
        except BaseException:
            server.stop()
            raise
        return server, base

    def publish(self) -> None:
        """Run this checkout's producer until a face serves the demo's users, then stop it (the board stays)."""
        producer = Process(
            [sys.executable, str(self.root / "manage.py"), "runmonitor"], self.env, self.var / "producer.log"
        )
        producer.start()
        try:
            server, base = self.serve()
            try:
                wait_until(lambda: self._users(base) > 0, what="the demo users", deadline=120)
                self.answer = httpx.get(base + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
            finally:
                server.stop()
        finally:
            producer.stop()

    @staticmethod
    def _users(base: str) -> int:
        status, body = http_get(base + "/api/status", TOKEN)
        return json.loads(body)["total_users"] if status == 200 else 0


def measure(
    checkout: Checkout, seconds: int, *, drop: tuple[str, ...] = (), bare: bool = False, **wrk_headers: str
) -> Figure:
    """``/api/status`` on a fresh Daphne of ``checkout`` (less ``drop``; without the ASGI wrappers when ``bare``)."""
    server, base = checkout.serve(drop=drop, bare=bare)
    try:
        headers = wrk_headers or {"Authorization": f"Bearer {TOKEN}"}
        return loaded(server.proc.pid, base + "/api/status", seconds=seconds, headers=headers)  # type: ignore[union-attr]
    finally:
        server.stop()


def floor_of(checkout: Checkout, work: Path) -> tuple[Process, str]:
    """A bare Daphne app sending ``checkout``'s ``/api/status`` answer: its body and its headers, byte for byte."""
    answer = checkout.answer
    (work / "status.json").write_bytes(answer.content)
    # Daphne adds its own Server header (and no Date), as it does to ours.
    headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in answer.headers.raw if n.lower() != b"server"]
    (work / "status-headers.json").write_text(json.dumps(headers))
    port = free_port()
    env = {**os.environ, "FLOOR_BODY": str(work / "status.json"), "FLOOR_HEADERS": str(work / "status-headers.json")}
    daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "bench.floor_app:application"]
    floor = Process(daphne, env, work / "floor.log")
    floor.start()
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_get(base + "/")[0] == 200, what="the floor app", proc=floor.proc)
    print(f"  floor: {len(answer.content)} bytes of body, {sum(len(n) + len(v) + 4 for n, v in headers)} of headers")
    return floor, base


def profile(checkout: Checkout, seconds: int, work: Path) -> None:
    """py-spy of ``checkout``'s whole stack under the load: each frame's share of the samples, inclusive and own."""
    server, base = checkout.serve()
    out = work / "profile.txt"
    try:
        spy_bin = Path(sys.executable).parent / "py-spy"
        pid = server.proc.pid  # type: ignore[union-attr]
        command = (
            f"{spy_bin} record --pid {pid} --format raw --output {out} --duration {seconds} --rate 250 --nonblocking"
        )
        spy = subprocess.Popen(command.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wrk(base + "/api/status", seconds=seconds, headers={"Authorization": f"Bearer {TOKEN}"})
        spy.wait(timeout=60)
    finally:
        server.stop()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \((?:.*/)?(site-packages/|usermetrics/)?", " (", f) for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    for title, shares in (("inclusive", inclusive), ("own time", own)):
        print(f"\nWhere the samples of {checkout.root} go (py-spy, {total} samples, {title}, top 25):")
        for frame, count in shares.most_common(25):
            print(f"  {100 * count / total:5.1f}%  {frame}")


def median(figures: list[Figure]) -> Figure:
    """The median rate and the median CPU per request of ``figures``."""
    return Figure(statistics.median(f.rate for f in figures), statistics.median(f.cpu_ms for f in figures))


STAFF = "with a staff session, no token"


def request_path_main(
    roots: list[Path], *, seconds: int, rounds: int, parts_too: bool, profile_it: bool, work: Path
) -> None:
    """Measure ``roots`` in ``rounds`` rounds, each beside its floor, the checkouts' order alternating; print tables."""
    checkouts = [Checkout(root, work) for root in roots]
    for checkout in checkouts:
        checkout.publish()
    floors: list[Figure] = []
    full: dict[Path, list[Figure]] = collections.defaultdict(list)
    parts: dict[tuple[Path, str], list[Figure]] = collections.defaultdict(list)
    variants = [(STAFF, (), False), *VARIANTS] if parts_too else []
    for r in range(rounds):
        print(f"round {r + 1}:", flush=True)
        floor, base = floor_of(checkouts[-1], work)
        try:
            floors.append(loaded(floor.proc.pid, base + "/", seconds=seconds))  # type: ignore[union-attr]
        finally:
            floor.stop()
        print(f"  floor {floors[-1].rate:.0f}/s, {floors[-1].cpu_ms:.2f} CPU ms a request", flush=True)
        for checkout in checkouts if r % 2 == 0 else checkouts[::-1]:
            full[checkout.root].append(measure(checkout, seconds))
            print(
                f"  {checkout.root}: {full[checkout.root][-1].rate:.0f}/s, {full[checkout.root][-1].cpu_ms:.2f} CPU ms"
            )
            for label, drop, bare in variants:
                headers = {"Cookie": f"sessionid={checkout.session}"} if label == STAFF else {}
                parts[(checkout.root, label)].append(measure(checkout, seconds, drop=drop, bare=bare, **headers))
    floor_m = median(floors)
    print(
        f"\n/api/status with a bearer token, median of {rounds} rounds (16 connections, {seconds} s each); the floor:"
    )
    print("a bare Daphne app sending the same body and headers, measured in the same round. CPU: the server process's")
    print("user + system time over the requests it answered (what the load of other processes moves least).")
    print("\n| checkout | /api/status req/s | floor req/s | status / floor | CPU ms | floor's | floor / status |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for checkout in checkouts:
        m = median(full[checkout.root])
        ratio = statistics.median(f.rate / fl.rate for f, fl in zip(full[checkout.root], floors, strict=True))
        cpu = statistics.median(fl.cpu_ms / f.cpu_ms for f, fl in zip(full[checkout.root], floors, strict=True))
        print(
            f"| {checkout.root} | {m.rate:.0f} | {floor_m.rate:.0f} | {ratio:.3f} | {m.cpu_ms:.2f} | "
            f"{floor_m.cpu_ms:.2f} | {cpu:.3f} |"
        )
    for checkout in checkouts if variants else []:
        m = median(full[checkout.root])
        print(f"\nWhere it goes, {checkout.root} (the whole stack: {m.rate:.0f}/s, {m.cpu_ms:.2f} CPU ms a request):")
        print("\n| the same request | req/s | CPU ms a request | CPU ms saved |")
        print("| --- | ---: | ---: | ---: |")
        for label, _, _ in variants:
            part = median(parts[(checkout.root, label)])
            print(f"| {label} | {part.rate:.0f} | {part.cpu_ms:.2f} | {m.cpu_ms - part.cpu_ms:+.2f} |")
    if profile_it:
        profile(checkouts[-1], seconds, work)

"""``/monitor/users`` throughput with 16 connections (wrk, loopback): NAT, ours, the floor and our ceiling.

For each size (default 1,000 and 10,000 users), in one run:

- a real NAT 1.9.0 server (``nat serve`` from the NAT tests' virtualenv, ``.venv-nat``) holding
  that many users, made by one workflow request per user (a ``nat-session`` cookie each);
- ours: a face (Daphne, ``USERMETRICS_PRODUCER=external``) serving the board a ``runmonitor``
  published from that NAT server; the producer is stopped before the load (the face keeps the
  last board: ``USERMETRICS_PRODUCER_TIMEOUT`` is set long), so NAT and the producer do not
  compete for the two cores while the face is measured; plain and with ``Accept-Encoding: gzip``;
- the floor: a bare Daphne ASGI app (``bench/floor_app.py``) that sends the same bytes;
- the ceiling: our ``/api/status``, a tiny response through our whole stack.

``--request-path`` measures, instead, what our stack costs per request (no NAT: the demo's users):
``/api/status`` with a token through the whole stack beside the floor sending the same bytes and
headers, and their ratio; then the same request with parts of the stack taken away (the ASGI
wrappers, groups of middleware), and with a staff session instead of a token. ``--checkouts
/work/main,.`` measures several checkouts' stacks in the same run, alternating, each round beside
its own floor (before and after a change). ``--profile`` adds a py-spy profile of the last
checkout's Daphne under that load.

Needs wrk (``apt-get install wrk``) and Redis (``REDIS_URL``, default redis://127.0.0.1:6379/0).
Usage: .venv/bin/python bench/api_throughput.py [--sizes 1000,10000] [--seconds 10]
       .venv/bin/python bench/api_throughput.py --request-path [--checkouts /work/main,.] [--rounds 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()  # the test helpers it borrows import the app

from bench.request_path import request_path_main, wrk  # noqa: E402
from tests.support.daphne import Daphne, Process, Runmonitor, http_get, manage, server_env, wait_until  # noqa: E402
from tests.support.machine import free_port  # noqa: E402
from tests.support.nat_server import NatServer, ensure_nat_venv  # noqa: E402

TOKEN = "bench-token-" + "t" * 30


async def make_users(base: str, count: int) -> None:
    """One workflow request per user (its own nat-session cookie), 32 at a time."""
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(i: int) -> None:
            async with limit:
                response = await client.post(
                    "/v1/workflow", json={"message": "quick"}, cookies={"nat-session": f"bench-{i}"}
                )
                response.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))


def measure(users: int, seconds: int, work: Path, nat_bin: Path) -> dict[str, float]:
    """One size: every server measured in turn."""
    nat = NatServer(nat_bin, work, name=f"nat-{users}")
    nat.start()
    processes: list[Process] = []
    try:
        nat.wait_ready()
        began = time.monotonic()
        asyncio.run(make_users(nat.url, users))
        print(f"  NAT holds {users} users (made in {time.monotonic() - began:.0f} s)", flush=True)
        results = {"nat": wrk(nat.url + "/monitor/users", seconds=seconds)}
        if results["nat"] == 0:
            # 16 concurrent requests behind NAT's one collector lock can each outlast a short run:
            # measure it for longer rather than divide by nothing.
            results["nat"] = wrk(nat.url + "/monitor/users", seconds=max(60, 4 * seconds))
        prefix = f"umbench-{uuid.uuid4().hex[:8]}"
        var = work / f"var-{users}"
        var.mkdir()
        env = server_env(
            var,
            REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            USERMETRICS_REDIS_PREFIX=prefix,
            NAT_SOURCES=f"nat={nat.url}",
            USERMETRICS_DEMO="0",
            USERMETRICS_HISTORY="0",
            USERMETRICS_API_TOKENS=TOKEN,
            USERMETRICS_PRODUCER_TIMEOUT="3600",
            USERMETRICS_LOG_LEVEL="WARNING",
        )
        manage(env, "migrate", "--noinput", "-v", "0")
        producer = Runmonitor(env, var / "producer.log")
        producer.start()
        processes.append(producer)
        face = Daphne(free_port(), {**env, "USERMETRICS_PRODUCER": "external"}, var / "face.log")
        face.start()
        processes.append(face)

        def has_all() -> bool:
            status, body = http_get(face.base + "/api/status", TOKEN)
            return status == 200 and json.loads(body)["total_users"] >= users

        wait_until(has_all, what="the face to serve every user", deadline=120)
        producer.stop()
        nat.stop()  # nothing else on the machine while the face is measured
        url = face.base + "/monitor/users"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        results["ours"] = wrk(url, seconds=seconds, headers=auth)
        results["ours_gzip"] = wrk(url, seconds=seconds, headers={**auth, "Accept-Encoding": "gzip"})
        results["status"] = wrk(face.base + "/api/status", seconds=seconds, headers=auth)
        body = httpx.get(url, headers=auth, timeout=60).content
        (var / "body.json").write_bytes(body)
        results["bytes"] = len(body)
        floor = Daphne(free_port(), {**os.environ, "FLOOR_BODY": str(var / "body.json")}, var / "floor.log")
        floor.args[-1] = "bench.floor_app:application"
        floor_start_check = floor.base + "/"
        Process.start(floor)
        processes.append(floor)
        wait_until(lambda: http_get(floor_start_check)[0] == 200, what="the floor app", proc=floor.proc)
        results["floor"] = wrk(floor_start_check, seconds=seconds)
        return results
    finally:
        for process in reversed(processes):
            process.stop()
        nat.stop()


def main() -> None:
    """Measure each size and print the table with the goals (or the request path's tables)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--request-path", action="store_true", help="where a tiny request's time goes")
    parser.add_argument("--checkouts", default=".", help="comma-separated checkouts to measure (--request-path)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the checkouts (--request-path)")
    parser.add_argument("--profile", action="store_true", help="py-spy the last checkout (--request-path)")
    parser.add_argument(
        "--parts", action=argparse.BooleanOptionalAction, default=True, help="the stack less each part (--request-path)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    if args.request_path:
        roots = [Path(c).resolve() for c in args.checkouts.split(",")]
        with tempfile.TemporaryDirectory(prefix="usermetrics-bench-") as tmp:
            request_path_main(
                roots,
                seconds=args.seconds,
                rounds=args.rounds,
                parts_too=args.parts,
                profile_it=args.profile,
                work=Path(tmp),
            )
        return
    nat_bin = ensure_nat_venv()
    rows = []
    with tempfile.TemporaryDirectory(prefix="usermetrics-bench-") as tmp:
        for users in (int(s) for s in args.sizes.split(",")):
            print(f"{users} users:", flush=True)
            rows.append((users, measure(users, args.seconds, Path(tmp), nat_bin)))
    print()
    columns = ["users", "body", "NAT", "ours", "ours, gzip", "floor (bare Daphne)", "/api/status"]
    columns += ["ours / NAT", "ours / floor", "ours / status"]
    print("| " + " | ".join(columns) + " |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for users, r in rows:
        print(
            f"| {users:,} | {r['bytes'] / 1e6:.2f} MB | {r['nat']:.1f} | {r['ours']:.0f} | {r['ours_gzip']:.0f} | "
            f"{r['floor']:.0f} | {r['status']:.0f} | {r['ours'] / r['nat']:.1f}x | {r['ours'] / r['floor']:.2f} | "
            f"{r['ours'] / r['status']:.2f} |"
        )
    print("\nGoals: >= 10x NAT at 1,000 users and >= 25x at 10,000; at 10,000 >= 0.5 of the floor;")
    print("at 1,000 >= 0.8 of our own /api/status. Requests per second, 16 connections (wrk -t2 -c16), loopback.")


if __name__ == "__main__":
    main()

"""Alert evaluation cost per refresh (sync script): 1,000, 10,000 and 100,000 users, 1% of them stuck.

Runs the real engine (``usermetrics.alerts.engine.AlertEngine.evaluate``: rules and silences read,
incidents stepped, changes written) on synthetic snapshots in a scratch database, with the seeded
default rules (source down, source stale, user stuck on). Columns:

- hand-off: what the producer's loop pays per refresh (``await engine(snapshot, flags)``); everything
  else runs in the engine's worker thread;
- steady: one evaluation in the worker thread while the same 1% stay stuck (nothing to write);
- churn: the same with 0.1% of users getting stuck and as many clearing each refresh;
- first: the refresh where all 1% fire at once (one incident, its members written, one notification queued);
- flags: ``flagged()``, the lifecycle flags the producer already works out each refresh (for scale; not alerts).

SQLite by default (a scratch file); with ``DATABASE_URL=postgres://...`` a scratch PostgreSQL database.

    .venv/bin/python bench/alerts.py [--users 1000 10000 100000] [--refreshes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitor_site.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("USERMETRICS_DEMO", "0")
os.environ.setdefault("USERMETRICS_ALERT_URLS", "json://127.0.0.1:9/never-sent")  # queued, never delivered here
os.environ.setdefault("USERMETRICS_VAR_DIR", tempfile.mkdtemp(prefix="usermetrics-bench-"))

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from usermetrics.alerts.delivery import route_label  # noqa: E402
from usermetrics.alerts.engine import AlertEngine  # noqa: E402
from usermetrics.alerts.rules import Reading  # noqa: E402
from usermetrics.board import Board  # noqa: E402
from usermetrics.conf import get_config  # noqa: E402
from usermetrics.history.flags import flagged  # noqa: E402
from usermetrics.merging import merge  # noqa: E402
from usermetrics.metrics import (  # noqa: E402
    PerUserMemoryMetrics,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.models import Delivery, Incident, IncidentMember  # noqa: E402
from usermetrics.packing import BoardCache, board_build  # noqa: E402
from usermetrics.selection import FLAG_STATES  # noqa: E402
from usermetrics.snapshot import Snapshot, SourceHealth  # noqa: E402

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REFRESH = 2.0


def user(i: int, *, stuck: bool, now: datetime) -> PerUserResourceUsage:
    """One user: in flight and quiet for an hour when ``stuck``, else idle and recent."""
    last = now - timedelta(hours=1) if stuck else now - timedelta(seconds=i % 50)
    ref = 1 if stuck else 0
    return PerUserResourceUsage.model_construct(
        user_id=f"{i:08x}-5f2c-5d8e-9a3b-user{i:06d}",
        session=PerUserSessionMetrics.model_construct(
            created_at=START - timedelta(hours=2), last_activity=last, ref_count=ref, is_active=bool(ref)
        ),
        requests=PerUserRequestMetrics.model_construct(
            total_requests=10, active_requests=ref, avg_latency_ms=120.0, error_count=0
        ),
        memory=PerUserMemoryMetrics.model_construct(
            per_user_functions_count=2, per_user_function_groups_count=1, exit_stack_size=3
        ),
    )


def snapshot(n: int, stuck: set[int], now: datetime, seq: int) -> Snapshot:
    """``n`` users from two healthy sources, those in ``stuck`` stuck; totals worked out (as ``board_build`` does)."""
    users = [user(i, stuck=i in stuck, now=now) for i in range(n)]
    health = [SourceHealth(name=s, kind="nat", state="ok", last_success=now, users=n // 2) for s in ("nat-a", "nat-b")]
    snap = merge([("nat-a", users[: n // 2]), ("nat-b", users[n // 2 :])], seq=seq, timestamp=now, sources=health)
    assert snap.totals.users == n
    return snap


def clear_store() -> None:
    """Forget every incident and delivery of the previous size."""
    Delivery.objects.all().delete()
    IncidentMember.objects.all().delete()
    Incident.objects.all().delete()


def board_of(snap: Snapshot, now: datetime) -> Board:
    """The board the producer packs of ``snap`` (its flags are found from the board's columns)."""
    return board_build(snap, producer="bench", published_at=now, cache=BoardCache(), flag_names=FLAG_STATES)


def run(n: int, refreshes: int) -> dict[str, float]:
    """Time one size."""
    clear_store()
    engine = AlertEngine(get_config().alerts)
    engine.courier.wake = lambda: None  # queued notifications stay in the outbox: the bench times evaluation only
    route_label(get_config().alerts.urls[0])  # Apprise loads its plugins once per process
    share = max(1, n // 100)
    stuck = set(range(0, n, n // share))
    now = START
    calm = snapshot(n, set(), now, 1)
    # Loads the (empty) book; Apprise warms up.
    engine.evaluate(Reading.of(calm, flagged(calm, board_of(calm, now), None, now=now)))

    now += timedelta(seconds=REFRESH)
    snap = snapshot(n, stuck, now, 2)
    board = board_of(snap, now)
    flags_ms = []
    started = time.perf_counter()
    names = flagged(snap, board, None, now=now)
    flags_ms.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    engine.evaluate(Reading.of(snap, names))
    first = (time.perf_counter() - started) * 1000
    assert engine.book is not None and engine.book.counts.by_rule["user-stuck"] == len(stuck), engine.book.counts

    steady, handoff = [], []
    for k in range(refreshes):
        now += timedelta(seconds=REFRESH)
        snap = snapshot(n, stuck, now, 3 + k)
        board = board_of(snap, now)
        started = time.perf_counter()
        names = flagged(snap, board, None, now=now)
        flags_ms.append((time.perf_counter() - started) * 1000)
        handoff.append(asyncio.run(_handoff(engine, snap, names)))
        started = time.perf_counter()
        engine.evaluate(Reading.of(snap, names))
        steady.append((time.perf_counter() - started) * 1000)

    churn = []
    moving = max(1, n // 1000)
    pool = [i for i in range(n) if i not in stuck]
    for k in range(refreshes):
        now += timedelta(seconds=REFRESH)
        gone = set(sorted(stuck)[:moving])
        stuck = (stuck - gone) | set(pool[k * moving : (k + 1) * moving])
        snap = snapshot(n, stuck, now, 100 + k)
        names = flagged(snap, board_of(snap, now), None, now=now)
        started = time.perf_counter()
        engine.evaluate(Reading.of(snap, names))
        churn.append((time.perf_counter() - started) * 1000)
    return {
        "flagged": len(names),
        "handoff_us": statistics.median(handoff),
        "steady_ms": statistics.median(steady),
        "churn_ms": statistics.median(churn),
        "first_ms": first,
        "flags_ms": statistics.median(flags_ms),
    }


async def _handoff(engine: AlertEngine, snap: Snapshot, names: dict[str, list[str]]) -> float:
    """Microseconds the producer's loop spends handing one refresh to the engine (its worker looks busy)."""
    handoff = engine._evaluator
    handoff._task = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
    started = time.perf_counter()
    await engine(snap, names)
    spent = (time.perf_counter() - started) * 1e6
    handoff._task.cancel()
    handoff._task, handoff._pending = None, None
    return spent


def main() -> None:
    """Parse arguments, create a scratch database, time each size, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--refreshes", type=int, default=20)
    args = parser.parse_args()
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    print(f"scratch database: {name} ({connection.vendor}); 1% of users stuck, refreshes every {REFRESH:g} s")
    try:
        print(f"{'users':>8} {'flagged':>8} {'hand-off':>10} {'steady':>9} {'churn':>9} {'first':>9} {'flags':>9}")
        for n in args.users:
            r = run(n, args.refreshes)
            print(
                f"{n:>8,} {r['flagged']:>8,} {r['handoff_us']:>7.1f} us {r['steady_ms']:>6.2f} ms"
                f" {r['churn_ms']:>6.2f} ms {r['first_ms']:>6.1f} ms {r['flags_ms']:>6.2f} ms",
                flush=True,
            )
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()

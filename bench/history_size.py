"""Bytes per hour of the history store (sync script): 1,000 and 10,000 active users for one simulated hour.

Runs the real recorder (``usermetrics.history.recorder.Recorder.record``) over synthetic snapshots in a
scratch database, then prints the store's size. Every user is *active*: its counters change at
every refresh, the worst case for the store (an idle user writes nothing). Per-user samples are
written at most once per ``SAMPLE_INTERVAL`` (15 s by default), totals once per refresh (2 s).

SQLite by default (a scratch file); with ``DATABASE_URL=postgres://...`` a scratch PostgreSQL
database ``bench_usermetrics_<pid>`` is created and dropped.

    .venv/bin/python bench/history_size.py [--users 1000 10000] [--minutes 60] [--extras]

``--extras``: every user is reported by NAT companions too (``extras.Extras``): each sample then
also holds its latency histogram's change (three requests over two or three buckets), its queue
and its waiting and running time (``history.latency``).
``--tokens`` (with ``--extras``): every request also makes LLM calls on two models, one priced
and one not: each sample then holds its tokens' change per model and its cost (``history.tokens``).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
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
SCRATCH = Path(tempfile.mkdtemp(prefix="usermetrics-bench-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)  # the scratch SQLite file's directory, and its var/
os.environ.setdefault("USERMETRICS_VAR_DIR", str(SCRATCH))
# --tokens: one of the two models has a price (the other is counted as unpriced tokens).
os.environ.setdefault("USERMETRICS_PRICES", '{"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6, "cached": 0.075}}')

import django  # noqa: E402
from usermetrics_nat.histogram import BUCKETS  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from usermetrics.conf import get_config  # noqa: E402
from usermetrics.extras import Extras  # noqa: E402
from usermetrics.history.query import window_stats  # noqa: E402
from usermetrics.history.recorder import Recorder  # noqa: E402
from usermetrics.history.rollup import rollup  # noqa: E402
from usermetrics.history.samples import totals_row  # noqa: E402
from usermetrics.metrics import (  # noqa: E402
    PerUserMemoryMetrics,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.models import TotalsSample  # noqa: E402
from usermetrics.snapshot import Snapshot, SourceHealth  # noqa: E402

TABLES = ("usermetrics_userlife", "usermetrics_usersample", "usermetrics_totalssample")
REFRESH = 2.0  # seconds, the default refresh interval


def make_users(n: int, step: int, created: datetime, now: datetime) -> list[PerUserResourceUsage]:
    """``n`` users, each with one more request (and an error every 10th) than at ``step - 1``."""
    users = []
    for i in range(n):
        total = step * 3 + i % 7
        users.append(
            PerUserResourceUsage.model_construct(
                user_id=f"{i:08x}-5f2c-5d8e-9a3b-user{i:06d}",  # NAT-like uuid5-sized ids
                session=PerUserSessionMetrics.model_construct(
                    created_at=created, last_activity=now, ref_count=step % 3, is_active=step % 3 > 0
                ),
                requests=PerUserRequestMetrics.model_construct(
                    total_requests=total,
                    active_requests=step % 3,
                    avg_latency_ms=round(800 + (i * 37 + step * 11) % 900 / 3, 2),
                    error_count=total // 10,
                ),
                memory=PerUserMemoryMetrics.model_construct(
                    per_user_functions_count=3, per_user_function_groups_count=1, exit_stack_size=4 + step % 2
                ),
            )
        )
    return users


def make_extras(users: list[PerUserResourceUsage], step: int, *, tokens: bool = False) -> dict[str, Extras]:
    """Each user's companion figures at ``step``: its requests so far spread over three buckets of its own.

    ``tokens``: each request made two calls to one model (about 1,800 prompt and 250 completion
    tokens) and one to another, with a tool call.
    """
    out = {}
    for i, u in enumerate(users):
        counts = [0] * BUCKETS
        total = u.requests.total_requests
        low = 12 + i % 9  # 50 ms and up: a few neighbouring buckets per user
        counts[low], counts[low + 2], counts[low + 5] = total - total // 3 - total // 9, total // 3, total // 9
        llm: tuple[tuple[str, tuple[int, ...]], ...] = ()
        if tokens:
            prompt, completion = total * (1800 + i % 50), total * (250 + i % 30)
            llm = (
                ("gpt-4o-mini", (2 * total, prompt, completion, total * 512, 0, prompt + completion)),
                ("local-llama", (total, total * 300, total * 40, 0, 0, total * 340)),
            )
        out[u.user_id] = Extras(
            latency=tuple(counts),
            queued=step % 2,
            max_concurrency=8,
            wait_ms=step * 1.5,
            run_ms=step * 2400.0,
            llm=llm,
            tool_calls=total if tokens else 0,
        )
    return out


def snapshot(
    ts: datetime, users: list[PerUserResourceUsage], seq: int, extras: dict[str, Extras] | None = None
) -> Snapshot:
    """A one-source snapshot of ``users`` (with ``extras``: what NAT companions say of them)."""
    health = SourceHealth(name="nat", kind="nat", state="ok", last_success=ts, users=len(users))
    return Snapshot(
        timestamp=ts,
        seq=seq,
        users=users,
        by_id={u.user_id: u for u in users},
        origins={u.user_id: ("nat",) for u in users},
        parts={},
        sources=[health],
        extras=extras or {},
    )


def store_bytes(tables: tuple[str, ...] = (*TABLES, "usermetrics_userhourly", "usermetrics_totalshourly")) -> int:
    """Bytes used by ``tables`` (default: every history table) and their indexes."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE") if connection.connection.autocommit else None
            total = 0
            for table in tables:
                cursor.execute("SELECT pg_total_relation_size(%s)", [table])
                total += cursor.fetchone()[0]
            return total
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            marks = ", ".join(["%s"] * len(tables))
            cursor.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                f"(SELECT name FROM sqlite_master WHERE tbl_name IN ({marks}))",
                list(tables),
            )
            return int(cursor.fetchone()[0] or 0)
        except Exception:  # SQLite built without dbstat: the whole file
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return pages * cursor.fetchone()[0]


def run(users: int, minutes: int, *, extras: bool = False, tokens: bool = False) -> None:
    """Fill the store for ``users`` active users over ``minutes`` simulated minutes and print its size."""
    for model in ("UserSample", "TotalsSample", "UserLife", "UserHourly", "TotalsHourly"):
        from django.apps import apps

        apps.get_model("usermetrics", model).objects.all().delete()
    base = store_bytes()
    recorder = Recorder(get_config().history)
    sample_every = recorder.config.sample_interval or REFRESH
    start = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    created = start - timedelta(hours=1)
    steps = int(minutes * 60 / sample_every)
    record_ms: list[float] = []
    # One snapshot per sample interval: every user has changed, so every user writes a sample,
    # exactly as with a snapshot every 2 s where the recorder skips the ones in between.
    for step in range(steps):
        ts = start + timedelta(seconds=step * sample_every)
        people = make_users(users, step, created, ts)
        snap = snapshot(ts, people, step + 1, make_extras(people, step, tokens=tokens) if extras else None)
        began = time.perf_counter()
        recorder.record(snap)
        record_ms.append((time.perf_counter() - began) * 1000)
    # The refreshes in between still write their totals row: add them.
    extra = []
    for i in range(int(minutes * 60 / REFRESH)):
        ts = start + timedelta(seconds=i * REFRESH + 0.5)
        extra.append(totals_row(snapshot(ts, [], 0), d_requests=0, d_errors=0, d_latency_ms=0.0))
    TotalsSample.objects.bulk_create(extra[: max(0, len(extra) - steps)], batch_size=1000)
    used = store_bytes() - base
    per_hour = used * 60 / minutes
    from usermetrics.models import UserSample

    samples = UserSample.objects.count()
    # What the flags (and the p95 alerts) read every 30 s: every user's stats over a 15-minute window.
    began = time.perf_counter()
    window_stats(window=timedelta(minutes=15), now=start + timedelta(minutes=minutes))
    window_ms = (time.perf_counter() - began) * 1000
    # The hourly roll-up of the same data (kept 90 days after the raw rows are pruned).
    hourly_tables = ("usermetrics_userhourly", "usermetrics_totalshourly")
    hourly_base = store_bytes(hourly_tables)
    rollup(now=start + timedelta(minutes=minutes, hours=1))
    from usermetrics.models import UserHourly

    user_hours = UserHourly.objects.count()
    hourly = store_bytes(hourly_tables) - hourly_base
    steady = sorted(record_ms[1:]) or record_ms
    kind = (" with extras and tokens" if tokens else " with extras") if extras else ""
    print(
        f"{connection.vendor:10} {users:>7,} active users{kind}: {per_hour / 1e6:8.1f} MB/hour "
        f"({per_hour * 24 * 7 / 1e9:6.2f} GB for 7 days raw), {samples * 60 / minutes:>10,.0f} samples/hour, "
        f"{used / max(samples, 1):5.0f} B/sample; record() median {steady[len(steady) // 2]:7.1f} ms, "
        f"max {max(steady):7.1f} ms per refresh; hourly roll-up {hourly / max(user_hours, 1):4.0f} B per user-hour; "
        f"everyone's 15 min window stats {window_ms:6.0f} ms",
        flush=True,
    )


def scratch_database() -> str:
    """Create and migrate the scratch database (a file on SQLite, ``bench_usermetrics_<pid>`` on PostgreSQL)."""
    if connection.vendor == "sqlite":
        connection.settings_dict["TEST"]["NAME"] = str(SCRATCH / "bench.sqlite3")
    else:
        # Its own name: test_<name> may be another checkout's test suite, running right now.
        connection.settings_dict["TEST"]["NAME"] = f"bench_usermetrics_{os.getpid()}"
    return connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)


def main() -> None:
    """Parse arguments, create a scratch database, run each size, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--minutes", type=int, default=60, help="simulated minutes (bytes are scaled to an hour)")
    parser.add_argument("--extras", action="store_true", help="users reported by NAT companions (histograms, queue)")
    parser.add_argument("--tokens", action="store_true", help="with --extras: LLM calls on two models, one priced")
    args = parser.parse_args()
    name = scratch_database()
    print(f"scratch database: {name}; sample interval {get_config().history.sample_interval:g} s", flush=True)
    try:
        for users in args.users:
            run(users, args.minutes, extras=args.extras, tokens=args.tokens)
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()

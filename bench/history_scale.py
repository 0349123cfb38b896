"""History at a million users (sync script): the recorder's ingestion, and a user's 7-day chart query.

``ingest``: the real recorder (``Recorder.record``) over a population of users of which a number change
per refresh (1% of a million per 5 s refresh: 10,000). Prints its time per refresh and the samples per
second it writes, at each number of changed users in the same run (the first, 1,000, is the reference).

``chart``: fills the scratch database with 7 days of history for ``--users`` users in a mix (10% busy,
active 16 hours a day and reported by companions with tokens; 40% regular, 3 hours a day; 50% now and then,
2 hours a week), rolled up by the hour, and raw samples of the last ``--raw-hours`` at 1% of the users per
5 s refresh; then times the history part of a user's page with the 7-day chart (``user_series``,
``user_token_series``, ``window_tokens``, ``window_stats``) for random users, p50 and p99. The same rows in
plain tables (a schema ``ref`` first on the search path) are the reference.

SQLite by default (a scratch file); with ``DATABASE_URL=postgres://...`` a scratch PostgreSQL database
``bench_usermetrics_<pid>`` is created and dropped (its tables partitioned by day: migration 0010).

    .venv/bin/python bench/history_scale.py ingest [--population 100000] [--changed 1000 10000] [--refreshes 6]
    .venv/bin/python bench/history_scale.py chart [--users 1000000] [--raw-hours 2] [--queries 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Max
from history_size import connection, get_config, scratch_database, snapshot  # django is set up there

from usermetrics.history.partitions import ensure_days
from usermetrics.history.query import window_stats
from usermetrics.history.recorder import Recorder
from usermetrics.history.series import user_series
from usermetrics.history.spend import window_tokens
from usermetrics.history.token_series import user_token_series
from usermetrics.metrics import (
    PerUserMemoryMetrics,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.models import TotalsSample, UserHourly, UserLife, UserSample, user_key

REFRESH = timedelta(seconds=5)
WEEK = timedelta(days=7)


def person(i: int, step: int, shared: tuple[PerUserSessionMetrics, PerUserMemoryMetrics]) -> PerUserResourceUsage:
    """User ``i`` after ``step`` changes: session and memory shared by everyone (only the requests change)."""
    total = step * 3 + i % 7
    return PerUserResourceUsage.model_construct(
        user_id=f"{i:08x}-5f2c-5d8e-9a3b-user{i:06d}",
        session=shared[0],
        requests=PerUserRequestMetrics.model_construct(
            total_requests=total, active_requests=0, avg_latency_ms=800.0 + i % 300, error_count=total // 10
        ),
        memory=shared[1],
    )


def ingest(population: int, changed: list[int], refreshes: int) -> None:
    """Time the recorder per refresh with ``changed`` users of ``population`` changing, each size in turn."""
    start = datetime.now(UTC).replace(microsecond=0)
    shared = (
        PerUserSessionMetrics.model_construct(
            created_at=start - WEEK, last_activity=start, ref_count=0, is_active=False
        ),
        PerUserMemoryMetrics.model_construct(
            per_user_functions_count=3, per_user_function_groups_count=1, exit_stack_size=4
        ),
    )
    users = [person(i, 0, shared) for i in range(population)]
    steps = [0] * population
    # Every changed user writes (at 1% a refresh a user changes every 500 s, far over the 15 s sample interval).
    recorder = Recorder(replace(get_config().history, sample_interval=0.0))
    ts, seq = start, 1
    began = time.perf_counter()
    recorder.record(snapshot(ts, users, seq))
    print(f"{connection.vendor}: {population:,} users, first record (every life and sample) "
          f"{time.perf_counter() - began:.1f} s", flush=True)  # fmt: skip
    cursor = 0
    for n in changed:
        took: list[float] = []
        for _ in range(refreshes):
            ts, seq = ts + REFRESH, seq + 1
            for k in range(n):  # the next n users in turn: each changes once per population / n refreshes
                i = (cursor + k) % population
                steps[i] += 1
                users[i] = person(i, steps[i], shared)
            cursor = (cursor + n) % population
            snap = snapshot(ts, users, seq)
            _ = snap.totals  # the producer's work (its board adopts them), not the recorder's: out of the timing
            began = time.perf_counter()
            result = recorder.record(snap)
            took.append(time.perf_counter() - began)
            written = result.samples
        median = statistics.median(took)
        print(
            f"{connection.vendor:10} {population:>9,} users, {n:>7,} changed per refresh: record() median "
            f"{median * 1000:8.1f} ms (max {max(took) * 1000:8.1f} ms) = {n / median:>9,.0f} samples/s; "
            f"{median / REFRESH.total_seconds():6.1%} of a 5 s refresh ({written:,} samples in the last)",
            flush=True,
        )


# -- chart -------------------------------------------------------------------------------------------------------

# Per user class (i % 10): hours a day active (on how many of the 7 days), companions with tokens.
BUSY, REGULAR = (0,), (1, 2, 3, 4)


def _fill(cursor: object, sql: str, label: str) -> None:
    began = time.perf_counter()
    cursor.execute(sql)  # type: ignore[attr-defined]
    print(f"  {label}: {cursor.rowcount:,} rows in {time.perf_counter() - began:.0f} s", flush=True)  # type: ignore[attr-defined]


def fill(users: int, raw_hours: int, now: datetime) -> int:
    """Fill ``ref`` (plain tables) with the mix, then the real (partitioned) tables from it; the first life's id."""
    week, hour0 = now - WEEK, now.replace(minute=0, second=0, microsecond=0)
    life0 = 1
    with connection.cursor() as c:
        _fill(c, f"""INSERT INTO usermetrics_userlife (id, user_id, user_key, life, created_at, first_seen, sources,
            from_zero, ref_count, total_requests, error_count, avg_latency_ms, functions, groups, exit_stack)
            SELECT {life0} + i, u, encode(sha256(convert_to(u, 'UTF8')), 'hex'),
            1, '{week.isoformat()}', '{week.isoformat()}', 'nat', true, 0, 0, 0, 0, 3, 1, 4
            FROM (SELECT i, lpad(to_hex(i), 8, '0') || '-5f2c-5d8e-9a3b-user' || lpad(i::text, 6, '0') AS u
                  FROM generate_series(0, {users - 1}) i) s""", "lives")  # fmt: skip
        c.execute("CREATE SCHEMA ref")
        for model in (UserHourly, UserSample):
            table = model._meta.db_table
            c.execute(f"CREATE TABLE ref.{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING IDENTITY)")
        # Hourly rows: busy users 16 h a day, regular ones 3 h a day (hours picked by user), others 2 h a week.
        _fill(c, f"""INSERT INTO ref.usermetrics_userhourly (hour, life_id, d_requests, d_errors, d_latency_ms,
            d_exit_stack, d_functions, max_ref_count, max_exit_stack, d_tokens, d_cost, llm)
            SELECT '{hour0.isoformat()}'::timestamptz - h * interval '1 hour', {life0} + i, 20, 1, 16000.0, 0, 0, 1, 4,
                   CASE WHEN i % 10 = 0 THEN 40000 END, CASE WHEN i % 10 = 0 THEN 9000000 END, NULL
            FROM generate_series(0, {users - 1}) i, generate_series(1, 168) h
            WHERE CASE WHEN i % 10 = 0 THEN (h + i) % 24 < 16
                       WHEN i % 10 < 5 THEN (h + i) % 24 < 3
                       ELSE (h + i) % 84 = 0 END""", "hourly (ref)")  # fmt: skip
        refreshes = raw_hours * 720
        per = max(1, users // 100)
        _fill(c, f"""INSERT INTO ref.usermetrics_usersample SELECT
            '{now.isoformat()}'::timestamptz - (r * interval '5 seconds'), 1, 100, 10, 800.0, 3, 1, 4, 3, 0, 2400.0,
            0, 0, {life0} + (r * {per} + k) % {users}, NULL, NULL, NULL, NULL
            FROM generate_series(0, {refreshes - 1}) r, generate_series(0, {per - 1}) k""",
              "raw samples (ref)")  # fmt: skip
        for model, column in ((UserHourly, "hour"), (UserSample, "ts")):
            table = model._meta.db_table
            began = time.perf_counter()
            c.execute(f"CREATE INDEX ON ref.{table} (life_id, {column})")
            c.execute(f"CREATE INDEX ON ref.{table} ({column})")
            print(f"  ref {table} indexes in {time.perf_counter() - began:.0f} s", flush=True)
            ensure_days(model, week - timedelta(days=1), now)
            # The fill skips the foreign-key triggers (each row's check of its life, which the lives above pass).
            c.execute("SET session_replication_role = replica")
            _fill(c, f"INSERT INTO {table} SELECT * FROM ref.{table} ORDER BY life_id, {column}", f"{table}")
            c.execute("SET session_replication_role = DEFAULT")
        _fill(c, f"""INSERT INTO usermetrics_totalshourly (hour, samples, d_requests, d_errors, d_latency_ms,
            max_users, max_active, max_in_flight, max_exit_stack)
            SELECT '{hour0.isoformat()}'::timestamptz - h * interval '1 hour', 720, 1, 0, 1.0, {users}, 1, 1, 1
            FROM generate_series(1, 168) h""", "totals hourly")  # fmt: skip
        _fill(c, f"""INSERT INTO usermetrics_totalssample (ts, users, active, in_flight, requests, errors,
            avg_latency_ms, exit_stack, d_requests, d_errors, d_latency_ms, sources_up, sources_total)
            SELECT '{now.isoformat()}'::timestamptz - r * interval '5 seconds', {users}, 1, 1, 1, 0, 1.0, 1, 1, 0,
            1.0, 1, 1 FROM generate_series(0, {refreshes - 1}) r""", "totals")  # fmt: skip
        c.execute("ANALYZE")
    return life0


def active(i: int, h: int) -> bool:
    """Whether user ``i`` had traffic in the hour ``h`` hours ago: the mix of ``fill``, for SQLite's fill."""
    if i % 10 == 0:
        return (h + i) % 24 < 16
    return (h + i) % 24 < 3 if i % 10 < 5 else (h + i) % 84 == 0


def fill_sqlite(users: int, raw_hours: int, now: datetime) -> None:
    """The mix of ``fill`` written row by row (SQLite has no generate_series): plain tables only."""
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    stamp = connection.ops.adapt_datetimefield_value
    names = [f"{i:08x}-5f2c-5d8e-9a3b-user{i:06d}" for i in range(users)]
    born = stamp(now - WEEK)
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as c:
        c.executemany(
            "INSERT INTO usermetrics_userlife (id, user_id, user_key, life, created_at, first_seen, sources, from_zero,"
            " ref_count, total_requests, error_count, avg_latency_ms, functions, groups, exit_stack)"
            " VALUES (%s, %s, %s, 1, %s, %s, 'nat', 1, 0, 0, 0, 0, 3, 1, 4)",
            [(i + 1, u, user_key(u), born, born) for i, u in enumerate(names)],
        )
        hours = [stamp(hour0 - timedelta(hours=h)) for h in range(169)]
        c.executemany(
            "INSERT INTO usermetrics_userhourly (hour, life_id, d_requests, d_errors, d_latency_ms, d_exit_stack,"
            " d_functions, max_ref_count, max_exit_stack, d_tokens, d_cost)"
            " VALUES (%s, %s, 20, 1, 16000.0, 0, 0, 1, 4, %s, %s)",
            (
                (hours[h], i + 1, *((40000, 9000000) if i % 10 == 0 else (None, None)))
                for i in range(users)
                for h in range(1, 169)
                if active(i, h)
            ),
        )
        per = max(1, users // 100)
        c.executemany(
            "INSERT INTO usermetrics_usersample (ts, ref_count, total_requests, error_count, avg_latency_ms,"
            " functions, groups, exit_stack, d_requests, d_errors, d_latency_ms, d_exit_stack, d_functions, life_id)"
            " VALUES (%s, 1, 100, 10, 800.0, 3, 1, 4, 3, 0, 2400.0, 0, 0, %s)",
            ((stamp(now - r * REFRESH), (r * per + k) % users + 1) for r in range(raw_hours * 720) for k in range(per)),
        )
        c.executemany(
            "INSERT INTO usermetrics_totalshourly (hour, samples, d_requests, d_errors, d_latency_ms, max_users,"
            " max_active, max_in_flight, max_exit_stack) VALUES (%s, 720, 1, 0, 1.0, %s, 1, 1, 1)",
            [(hours[h], users) for h in range(1, 169)],
        )
        c.executemany(
            "INSERT INTO usermetrics_totalssample (ts, users, active, in_flight, requests, errors, avg_latency_ms,"
            " exit_stack, d_requests, d_errors, d_latency_ms, sources_up, sources_total)"
            " VALUES (%s, %s, 1, 1, 1, 0, 1.0, 1, 1, 0, 1.0, 1, 1)",
            [(stamp(now - r * REFRESH), users) for r in range(raw_hours * 720)],
        )
    with connection.cursor() as c:
        c.execute("ANALYZE")
    print(f"  filled in {time.perf_counter() - began:.0f} s", flush=True)


def chart_query(user_id: str, now: datetime) -> None:
    """The history part of a user's page with the 7-day chart (services.history_docs.user_history_doc)."""
    user_series(user_id=user_id, window=WEEK, now=now)
    user_token_series(user_id=user_id, window=WEEK, now=now)
    window_tokens(window=WEEK, user_ids=[user_id], now=now)
    window_stats(window=WEEK, user_ids=[user_id], now=now)


def percentiles(took: list[float]) -> str:
    """p50 and p99 of ``took`` (ms), as printed."""
    took = sorted(took)
    return f"p50 {took[len(took) // 2]:6.1f} ms, p99 {took[min(len(took) - 1, int(len(took) * 0.99))]:6.1f} ms"


def chart(users: int, raw_hours: int, queries: int, existing: str | None) -> None:
    """Fill (or take ``existing``'s fill), then time the 7-day chart for random users, each on both table kinds in turn.

    Interleaved user by user, so that the load of the machine and the cache weigh on both alike.
    """
    postgres = connection.vendor == "postgresql"
    if existing is None:
        now = datetime.now(UTC).replace(microsecond=0)
        print(f"filling {users:,} users, 7 days hourly, {raw_hours} h raw:", flush=True)
        fill(users, raw_hours, now) if postgres else fill_sqlite(users, raw_hours, now)
    else:  # the fill's own clock: its newest totals row
        now = TotalsSample.objects.aggregate(m=Max("ts"))["m"]
        users = UserLife.objects.count()
    rng = random.Random(18)
    picks = [f"{i:08x}-5f2c-5d8e-9a3b-user{i:06d}" for i in (rng.randrange(users) for _ in range(queries))]
    busy = [f"{i:08x}-5f2c-5d8e-9a3b-user{i:06d}" for i in (rng.randrange(0, users, 10) for _ in range(queries))]
    paths = {"partitioned by day": "public", "plain tables (reference)": "ref, public"} if postgres else {"SQLite": ""}
    with connection.cursor() as c:
        for who, chosen in (("random users", picks), ("busy users", busy)):
            took: dict[str, list[float]] = {label: [] for label in paths}
            for n, uid in enumerate(chosen[:20] + chosen):  # the first 20 warm the connection and the catalogs
                for label, path in paths.items():
                    if path:
                        c.execute(f"SET search_path TO {path}")
                    began = time.perf_counter()
                    chart_query(uid, now)
                    if n >= 20:
                        took[label].append((time.perf_counter() - began) * 1000)
            for label, values in took.items():
                print(f"7-day chart, {users:,} users, {label:26} {who:12}: {percentiles(values)} "
                      f"({len(values)} users)", flush=True)  # fmt: skip
        if postgres:
            c.execute("SET search_path TO public")
            c.execute("SELECT pg_database_size(current_database())")
            print(f"scratch database {c.fetchone()[0] / 1e9:.1f} GB", flush=True)


def main() -> None:
    """Parse arguments, create a scratch database, run, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("ingest")
    one.add_argument("--population", type=int, default=100_000)
    one.add_argument("--changed", type=int, nargs="+", default=[1000, 10000])
    one.add_argument("--refreshes", type=int, default=6)
    two = sub.add_parser("chart")
    two.add_argument("--users", type=int, default=1_000_000)
    two.add_argument("--raw-hours", type=int, default=2)
    two.add_argument("--queries", type=int, default=200)
    two.add_argument(
        "--existing", help="time an already filled scratch database (bench_usermetrics_<pid>), then drop it"
    )
    args = parser.parse_args()
    existing = getattr(args, "existing", None)
    if existing:  # a scratch database an earlier run filled and left (interrupted): timed, then dropped
        connection.settings_dict["NAME"] = connection.settings_dict["TEST"]["NAME"] = name = existing
    else:
        name = scratch_database()
    print(f"scratch database: {name}", flush=True)
    try:
        if args.what == "ingest":
            ingest(args.population, args.changed, args.refreshes)
        else:
            chart(args.users, args.raw_hours, args.queries, existing)
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()

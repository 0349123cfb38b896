"""History store: the snapshot recorder (async listener, sync writes in one thread) and its queries (sync).

NAT keeps nothing: idle users vanish with their counters and a restart clears everything. The
``Recorder`` listens to the monitor service and writes, per refresh, one ``TotalsSample`` and a
``UserSample`` for each user whose counters changed (at most one per ``SAMPLE_INTERVAL``). It tells
lives apart: a user that disappears is *ended* with its last values kept; a user whose
``created_at`` changed or whose counters went backwards starts a *new life* (never negative
traffic). Every sample carries its change since the previous one, so windowed rates are sums.

The query functions (``window_stats``, ``user_series``, ``overview_series``, ``ended_users``,
``user_flags`` ...) are sync ORM code; async callers wrap them in ``sync_to_async``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections, connections, transaction
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncHour

from usermetrics.conf import get_config
from usermetrics.metrics import (
    PerUserMemoryMetrics,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.models import TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample

if TYPE_CHECKING:
    from usermetrics.services import MonitorService, Snapshot

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)

# Windows accepted by the API and the pages, and how many points a chart of each gets.
WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
CHART_POINTS: dict[str, int] = {"5m": 60, "15m": 90, "1h": 120, "24h": 144, "7d": 168}
RATE_WINDOWS = ("5m", "1h", "24h")
CHART_WINDOWS = ("15m", "1h", "24h", "7d")


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


def window_parse(value: str | None, *, default: str = "1h") -> timedelta:
    """The timedelta of a window name (``5m``, ``15m``, ``1h``, ``24h``, ``7d``); ValueError otherwise."""
    name = value or default
    if name not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}; got {name!r}")
    return WINDOWS[name]


# --- the recorder --------------------------------------------------------------------------------

# (ref_count, total_requests, error_count, avg_latency_ms, functions, groups, exit_stack)
Counters = tuple[int, int, int, float, int, int, int]


def _counters(usage: PerUserResourceUsage) -> Counters:
    r, m = usage.requests, usage.memory
    return (
        usage.session.ref_count,
        r.total_requests,
        r.error_count,
        r.avg_latency_ms,
        m.per_user_functions_count,
        m.per_user_function_groups_count,
        m.exit_stack_size,
    )


@dataclass
class _Life:
    """What the recorder remembers of one open life between refreshes."""

    pk: int
    life: int
    created_at: datetime
    sources: str
    counters: Counters  # as of the latest snapshot
    last_activity: datetime | None
    written: Counters  # as of the latest sample written
    written_ts: datetime | None


@dataclass
class RecordResult:
    """What one ``record`` call did (for tests and logs)."""

    samples: int = 0
    new_lives: int = 0
    ended: int = 0
    reopened: int = 0
    d_requests: int = 0
    d_errors: int = 0
    d_latency_ms: float = 0.0


def _is_new_life(old_created: datetime, old: Counters, created: datetime, new: Counters) -> bool:
    """A different workflow under the same user id: created again, or a counter went backwards."""
    return created != old_created or new[1] < old[1] or new[2] < old[2]


def _delta(new: Counters, old: Counters | None) -> tuple[int, int, float, int, int]:
    """(requests, errors, latency x count, exit stack, functions + groups) from ``old`` to ``new``."""
    if old is None:  # first sample of a life counted from zero; resources start as a baseline
        return new[1], new[2], new[3] * new[1], 0, 0
    return (
        new[1] - old[1],
        new[2] - old[2],
        new[3] * new[1] - old[3] * old[1],
        new[6] - old[6],
        (new[4] + new[5]) - (old[4] + old[5]),
    )


class Recorder:
    """Snapshot listener that writes the history; writes run in one worker thread, never on the loop."""

    def __init__(self, *, config: Mapping[str, Any] | None = None) -> None:
        """Record with the ``HISTORY`` settings (default: from ``get_config()``)."""
        cfg = dict(config if config is not None else get_config()["HISTORY"])
        self.sample_interval = timedelta(seconds=float(cfg["SAMPLE_INTERVAL"]))
        self.raw_retention = timedelta(days=float(cfg["RAW_RETENTION_DAYS"]))
        self.rollup_retention = timedelta(days=float(cfg["ROLLUP_RETENTION_DAYS"]))
        self.maintenance_interval = timedelta(seconds=float(cfg["MAINTENANCE_INTERVAL"]))
        self.batch_size = int(cfg["BATCH_SIZE"])
        self._open: dict[str, _Life] | None = None  # None until loaded from the database
        self._last_maintenance: datetime | None = None
        # Process totals of the recorded deltas: monotonic counters for Prometheus.
        self.observed_requests = 0
        self.observed_errors = 0
        self.observed_latency_ms = 0.0
        self.records = 0
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Snapshot | None = None
        self._worker: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    # -- async side ----------------------------------------------------------------------------

    async def __call__(self, snapshot: Snapshot) -> None:
        """The service listener: hand the snapshot to the writer and return at once.

        When the writer is still busy with an earlier snapshot, only the newest one waits: the
        counters are cumulative, so a skipped snapshot loses no traffic.
        """
        self._pending = snapshot
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name="usermetrics-history")

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            # One thread: one database connection, and records applied in order.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usermetrics-history")
        while self._pending is not None:
            snapshot, self._pending = self._pending, None
            try:
                await loop.run_in_executor(self._executor, self._record_in_thread, snapshot)
            except Exception as exc:
                # Log each new kind of failure once (a missing migration would fail every refresh).
                message = f"{type(exc).__name__}: {exc}"
                if message != self._last_error:
                    logger.exception("Recording history failed (logged again only when the error changes)")
                self._last_error = message
            else:
                self._last_error = None

    def _record_in_thread(self, snapshot: Snapshot) -> None:
        close_old_connections()  # a connection broken since the last record is replaced
        try:
            self.record(snapshot)
        finally:
            close_old_connections()

    async def flush(self) -> None:
        """Wait until every snapshot handed over so far is written."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def aclose(self) -> None:
        """Write what is pending, close the worker thread's database connection, stop the thread."""
        await self.flush()
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, connections.close_all)
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- sync side -----------------------------------------------------------------------------

    def record(self, snapshot: Snapshot) -> RecordResult:
        """Write one snapshot: totals, changed users, new lives, ended users; maintain now and then."""
        try:
            return self._record(snapshot)
        except Exception:
            # The memory of open lives may no longer match the rolled-back database: read it again.
            self._open = None
            raise

    def _record(self, snapshot: Snapshot) -> RecordResult:
        ts = snapshot.timestamp
        cold = self._open is None
        if self._open is None:
            self._open = self._load_open()
        result = RecordResult()
        present = snapshot.by_id
        new_lives: list[tuple[UserLife, PerUserResourceUsage]] = []
        samples: list[tuple[Any, ...]] = []
        ended: list[_Life] = []
        reopened: list[int] = []
        unknown = [uid for uid in present if uid not in self._open]
        latest = self._latest_lives(unknown) if unknown else {}
        for uid, usage in present.items():
            counters = _counters(usage)
            created = usage.session.created_at
            sources = ",".join(snapshot.origins.get(uid, ()))
            life = self._open.get(uid)
            if life is None:
                row = latest.get(uid)
                if row is not None and not _is_new_life(row.created_at, _life_counters(row), created, counters):
                    # The same workflow back after a gap (a source that failed, then answered again).
                    life = _Life(
                        row.pk,
                        row.life,
                        row.created_at,
                        sources,
                        counters,
                        usage.session.last_activity,
                        _life_counters(row),
                        row.ended_at,
                    )
                    self._open[uid] = life
                    reopened.append(row.pk)
                else:
                    number = row.life + 1 if row is not None else 1
                    new_lives.append((self._new_life(uid, number, usage, ts, sources, from_zero=not cold), usage))
                    continue
            elif _is_new_life(life.created_at, life.counters, created, counters):
                ended.append(life)
                del self._open[uid]
                new_lives.append((self._new_life(uid, life.life + 1, usage, ts, sources, from_zero=True), usage))
                continue
            life.counters, life.last_activity, life.sources = counters, usage.session.last_activity, sources
            if counters != life.written and (life.written_ts is None or ts - life.written_ts >= self.sample_interval):
                samples.append(self._sample(life, ts, result))
        for uid in [uid for uid in self._open if uid not in present]:
            ended.append(self._open.pop(uid))
        # A user that left with changes not yet written gets its last sample now.
        for life in ended:
            if life.counters != life.written:
                samples.append(self._sample(life, ts, result))
        with transaction.atomic():
            if reopened:
                UserLife.objects.filter(pk__in=reopened).update(ended_at=None)
            if new_lives:
                rows = UserLife.objects.bulk_create([row for row, _ in new_lives], batch_size=self.batch_size)
                for row, usage in zip(rows, new_lives, strict=True):
                    life = _Life(
                        row.pk,
                        row.life,
                        row.created_at,
                        row.sources,
                        _counters(usage[1]),
                        usage[1].session.last_activity,
                        (0, 0, 0, 0.0, 0, 0, 0),
                        None,
                    )
                    self._open[row.user_id] = life
                    samples.append(self._sample(life, ts, result, first=True, from_zero=row.from_zero))
            _insert_samples(samples, ts=ts, batch_size=self.batch_size)
            if ended:
                self._end(ended, ended_at=self._cold_end_time(ts) if cold else ts)
            TotalsSample.objects.create(**_totals(snapshot, result))
        result.samples, result.new_lives, result.ended, result.reopened = (
            len(samples),
            len(new_lives),
            len(ended),
            len(reopened),
        )
        self.observed_requests += result.d_requests
        self.observed_errors += result.d_errors
        self.observed_latency_ms += result.d_latency_ms
        self.records += 1
        if self._last_maintenance is None or ts - self._last_maintenance >= self.maintenance_interval:
            self._last_maintenance = ts
            self.maintain(now=ts)
        return result

    def _sample(
        self, life: _Life, ts: datetime, result: RecordResult, *, first: bool = False, from_zero: bool = True
    ) -> tuple[Any, ...]:
        c = life.counters
        if first:
            d = _delta(c, None) if from_zero else (0, 0, 0.0, 0, 0)
        else:
            d = _delta(c, life.written)
        life.written, life.written_ts = c, ts
        result.d_requests += d[0]
        result.d_errors += d[1]
        result.d_latency_ms += d[2]
        # A plain row in SAMPLE_COLUMNS order (see _insert_samples): no model instance per sample.
        return (life.pk, ts, *c, d[0], d[1], round(d[2], 3), d[3], d[4])

    @staticmethod
    def _new_life(
        uid: str, number: int, usage: PerUserResourceUsage, ts: datetime, sources: str, *, from_zero: bool
    ) -> UserLife:
        return UserLife(
            user_id=uid,
            life=number,
            created_at=usage.session.created_at,
            first_seen=ts,
            sources=sources,
            from_zero=from_zero,
        )

    def _end(self, lives: list[_Life], *, ended_at: datetime) -> None:
        rows = []
        for life in lives:
            c = life.counters
            rows.append(
                UserLife(
                    pk=life.pk,
                    ended_at=ended_at,
                    last_activity=life.last_activity,
                    sources=life.sources,
                    ref_count=c[0],
                    total_requests=c[1],
                    error_count=c[2],
                    avg_latency_ms=c[3],
                    functions=c[4],
                    groups=c[5],
                    exit_stack=c[6],
                )
            )
        fields = ["ended_at", "last_activity", "sources", "ref_count", "total_requests", "error_count"]
        fields += ["avg_latency_ms", "functions", "groups", "exit_stack"]
        UserLife.objects.bulk_update(rows, fields, batch_size=200)

    def _cold_end_time(self, ts: datetime) -> datetime:
        """When users that vanished while the dashboard was down were last seen: its last refresh."""
        last = TotalsSample.objects.filter(ts__lt=ts).aggregate(m=Max("ts"))["m"]
        return last or ts

    def _load_open(self) -> dict[str, _Life]:
        """Open lives with their newest sample: the state a restarted dashboard continues from."""
        open_lives: dict[str, _Life] = {}
        for row in UserLife.objects.filter(ended_at__isnull=True).iterator(chunk_size=2000):
            open_lives[row.user_id] = _Life(
                row.pk,
                row.life,
                row.created_at,
                row.sources,
                _life_counters(row),
                row.last_activity,
                _life_counters(row),
                None,
            )
        if not open_lives:
            return open_lives
        by_pk = {life.pk: life for life in open_lives.values()}
        # Only the newest sample of each life (a correlated lookup on the (life, ts) index), not
        # a week of samples per user.
        newest_ts = UserSample.objects.filter(life_id=OuterRef("life_id")).order_by("-ts").values("ts")[:1]
        for pk_chunk in _chunks(list(by_pk), 500):
            newest = UserSample.objects.filter(life_id__in=pk_chunk, ts=Subquery(newest_ts))
            for s in newest.only(*_SAMPLE_COUNTERS, "life_id", "ts"):
                life = by_pk[s.life_id]
                life.counters = life.written = _life_counters(s)
                life.written_ts = s.ts
        return open_lives

    def _latest_lives(self, user_ids: list[str]) -> dict[str, UserLife]:
        """The newest life of each of ``user_ids`` that has one (ended, since open ones are in memory)."""
        latest: dict[str, UserLife] = {}
        for chunk in _chunks(user_ids, 500):
            for row in UserLife.objects.filter(user_id__in=chunk).order_by("user_id", "life"):
                latest[row.user_id] = row  # ordered by life: the last one wins
        return latest

    # -- maintenance ---------------------------------------------------------------------------

    def maintain(self, *, now: datetime | None = None) -> dict[str, int]:
        """Roll up complete hours, then prune what is older than the retention periods."""
        now = now or utcnow()
        rolled = rollup(now=now, batch_size=self.batch_size)
        pruned = prune(now=now, raw_retention=self.raw_retention, rollup_retention=self.rollup_retention)
        return {"rolled_hours": rolled, **pruned}


# UserSample's columns in the order _sample() builds its rows.
SAMPLE_COLUMNS = (
    "life_id", "ts", "ref_count", "total_requests", "error_count", "avg_latency_ms", "functions", "groups",
    "exit_stack", "d_requests", "d_errors", "d_latency_ms", "d_exit_stack", "d_functions",
)  # fmt: skip


def _insert_samples(rows: list[tuple[Any, ...]], *, ts: datetime, batch_size: int) -> None:
    """Write sample rows, all stamped ``ts``: COPY on PostgreSQL, ``executemany`` elsewhere.

    ``bulk_create`` compiles every value of every row through the ORM and, on SQLite, splits the
    rows into statements of 999 parameters: about ten times slower at 10,000 users
    (bench/history_size.py). The values are plain ints and floats; only the shared timestamp needs
    the backend's form.
    """
    if not rows:
        return
    connection = connections[UserSample.objects.db]
    db_ts = UserSample._meta.get_field("ts").get_db_prep_save(ts, connection)
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(UserSample._meta.db_table),
        ", ".join(quote(c) for c in SAMPLE_COLUMNS),
        ", ".join(["%s"] * len(SAMPLE_COLUMNS)),
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY streams the rows in one command; executemany and long VALUES lists spend
            # their time in the driver's client-side parameter binding instead.
            copy_sql = "COPY {} ({}) FROM STDIN".format(
                quote(UserSample._meta.db_table), ", ".join(quote(c) for c in SAMPLE_COLUMNS)
            )
            # The driver's cursor, so its errors are wrapped into Django's (IntegrityError ...) here.
            with connection.wrap_database_errors, cursor.cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row((row[0], db_ts, *row[2:]))
            return
        # SQLite runs executemany in C over one prepared statement: the fast way there.
        for chunk in _chunks(rows, batch_size):
            cursor.executemany(sql, [(row[0], db_ts, *row[2:]) for row in chunk])


_SAMPLE_COUNTERS = ("ref_count", "total_requests", "error_count", "avg_latency_ms", "functions", "groups", "exit_stack")


def _life_counters(row: UserLife | UserSample) -> Counters:
    return (
        row.ref_count,
        row.total_requests,
        row.error_count,
        row.avg_latency_ms,
        row.functions,
        row.groups,
        row.exit_stack,
    )


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _totals(snapshot: Snapshot, result: RecordResult) -> dict[str, Any]:
    users = snapshot.users
    requests = sum(u.requests.total_requests for u in users)
    weighted = sum(u.requests.avg_latency_ms * u.requests.total_requests for u in users)
    return {
        "ts": snapshot.timestamp,
        "users": len(users),
        "active": sum(1 for u in users if u.session.ref_count > 0),
        "in_flight": sum(u.session.ref_count for u in users),
        "requests": requests,
        "errors": sum(u.requests.error_count for u in users),
        "avg_latency_ms": round(weighted / requests, 3) if requests else 0.0,
        "exit_stack": sum(u.memory.exit_stack_size for u in users),
        "d_requests": result.d_requests,
        "d_errors": result.d_errors,
        "d_latency_ms": round(result.d_latency_ms, 3),
        "sources_up": sum(1 for s in snapshot.sources if s.state == "ok"),
        "sources_total": len(snapshot.sources),
    }


def _floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def rollup(*, now: datetime, batch_size: int = 1000) -> int:
    """Aggregate every complete UTC hour not rolled up yet into the hourly tables; return how many hours."""
    end = _floor_hour(now)
    done = TotalsHourly.objects.aggregate(m=Max("hour"))["m"]
    start = done + HOUR if done is not None else None
    if start is None:
        first = TotalsSample.objects.aggregate(m=Min("ts"))["m"]
        if first is None:
            return 0
        start = _floor_hour(first)
    if start >= end:
        return 0
    window = {"ts__gte": start, "ts__lt": end}
    totals = (
        TotalsSample.objects.filter(**window)
        .annotate(hour=TruncHour("ts", tzinfo=UTC))
        .values("hour")
        .annotate(
            n=Count("id"),
            dr=Sum("d_requests"),
            de=Sum("d_errors"),
            dl=Sum("d_latency_ms"),
            mu=Max("users"),
            ma=Max("active"),
            mi=Max("in_flight"),
            mx=Max("exit_stack"),
        )
    )
    per_user = (
        UserSample.objects.filter(**window)
        .annotate(hour=TruncHour("ts", tzinfo=UTC))
        .values("life_id", "hour")
        .annotate(
            dr=Sum("d_requests"),
            de=Sum("d_errors"),
            dl=Sum("d_latency_ms"),
            dx=Sum("d_exit_stack"),
            df=Sum("d_functions"),
            mr=Max("ref_count"),
            mx=Max("exit_stack"),
        )
    )
    with transaction.atomic():
        hours = [
            TotalsHourly(
                hour=t["hour"],
                samples=t["n"],
                d_requests=t["dr"],
                d_errors=t["de"],
                d_latency_ms=t["dl"] or 0.0,
                max_users=t["mu"],
                max_active=t["ma"],
                max_in_flight=t["mi"],
                max_exit_stack=t["mx"],
            )
            for t in totals
        ]
        TotalsHourly.objects.bulk_create(hours, batch_size=batch_size, ignore_conflicts=True)
        batch: list[UserHourly] = []
        for u in per_user.iterator(chunk_size=batch_size):
            batch.append(
                UserHourly(
                    life_id=u["life_id"],
                    hour=u["hour"],
                    d_requests=u["dr"],
                    d_errors=u["de"],
                    d_latency_ms=u["dl"] or 0.0,
                    d_exit_stack=u["dx"],
                    d_functions=u["df"],
                    max_ref_count=u["mr"],
                    max_exit_stack=u["mx"],
                )
            )
            if len(batch) >= batch_size:
                UserHourly.objects.bulk_create(batch, ignore_conflicts=True)
                batch = []
        UserHourly.objects.bulk_create(batch, ignore_conflicts=True)
        if not hours:
            # No totals in these hours (the dashboard was down): mark them done so they are not scanned again.
            TotalsHourly.objects.bulk_create([_empty_hour(end - HOUR)], ignore_conflicts=True)
    return len(hours)


def _empty_hour(hour: datetime) -> TotalsHourly:
    return TotalsHourly(
        hour=hour,
        samples=0,
        d_requests=0,
        d_errors=0,
        d_latency_ms=0.0,
        max_users=0,
        max_active=0,
        max_in_flight=0,
        max_exit_stack=0,
    )


def prune(*, now: datetime, raw_retention: timedelta, rollup_retention: timedelta) -> dict[str, int]:
    """Delete raw samples older than ``raw_retention`` and roll-ups and ended lives older than ``rollup_retention``."""
    raw_cut, rollup_cut = now - raw_retention, now - rollup_retention
    # Raw rows go only once their hour is rolled up (a dashboard down for days rolls up first).
    rolled = TotalsHourly.objects.aggregate(m=Max("hour"))["m"]
    raw_cut = min(raw_cut, rolled + HOUR) if rolled is not None else raw_cut
    out = {
        "samples": UserSample.objects.filter(ts__lt=raw_cut).delete()[0],
        "totals": TotalsSample.objects.filter(ts__lt=raw_cut).delete()[0],
        "user_hours": UserHourly.objects.filter(hour__lt=rollup_cut).delete()[0],
        "total_hours": TotalsHourly.objects.filter(hour__lt=rollup_cut).delete()[0],
    }
    out["lives"] = UserLife.objects.filter(ended_at__lt=rollup_cut).delete()[0]
    return out


# --- queries -------------------------------------------------------------------------------------


@dataclass
class WindowStats:
    """One user's (or everyone's) traffic over a window, from the recorded deltas."""

    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    exit_stack_growth: int = 0
    functions_growth: int = 0
    seconds: float = 0.0

    @property
    def requests_per_min(self) -> float:
        """Requests per minute over the window."""
        return round(self.requests * 60 / self.seconds, 3) if self.seconds else 0.0

    @property
    def error_rate(self) -> float | None:
        """Failed share of the window's requests (None without requests)."""
        return round(self.errors / self.requests, 4) if self.requests > 0 else None

    @property
    def latency_ms(self) -> float | None:
        """Mean latency of the window's requests: change of (avg x count) over change of count."""
        return round(self.latency_sum_ms / self.requests, 2) if self.requests > 0 else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_min": self.requests_per_min,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "exit_stack_growth": self.exit_stack_growth,
            "functions_growth": self.functions_growth,
        }


def _split(start: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The part [a, b) of the window that the hourly roll-ups cover, or None."""
    rolled = TotalsHourly.objects.aggregate(m=Max("hour"))["m"]
    if rolled is None:
        return None
    a = _floor_hour(start) + (HOUR if _floor_hour(start) != start else timedelta(0))
    b = min(_floor_hour(now), rolled + HOUR)
    return (a, b) if b - a >= HOUR else None


def window_stats(
    *, window: timedelta, now: datetime | None = None, user_ids: Iterable[str] | None = None
) -> dict[str, WindowStats]:
    """Per user id: requests, errors, latency and resource growth over the last ``window``.

    Sums the recorded deltas, so evictions and counter resets are handled (a new life counts
    from zero). Complete hours come from the roll-ups when they exist; the rest from raw samples.
    """
    now = now or utcnow()
    start = now - window
    split = _split(start, now)
    out: dict[str, WindowStats] = {}
    ranges: list[tuple[Any, dict[str, Any]]] = []
    if split is None:
        ranges.append((UserSample, {"ts__gt": start, "ts__lte": now}))
    else:
        a, b = split
        ranges.append((UserSample, {"ts__gt": start, "ts__lt": a}))
        ranges.append((UserHourly, {"hour__gte": a, "hour__lt": b}))
        ranges.append((UserSample, {"ts__gte": b, "ts__lte": now}))
    wanted = list(user_ids) if user_ids is not None else None
    for model, lookup in ranges:
        qs = model.objects.filter(**lookup)
        if wanted is not None:
            qs = qs.filter(life__user_id__in=wanted)
        rows = qs.values("life__user_id").annotate(
            r=Sum("d_requests"),
            e=Sum("d_errors"),
            lat=Sum("d_latency_ms"),
            x=Sum("d_exit_stack"),
            f=Sum("d_functions"),
        )
        for row in rows:
            stats = out.setdefault(row["life__user_id"], WindowStats(seconds=window.total_seconds()))
            stats.requests += row["r"] or 0
            stats.errors += row["e"] or 0
            stats.latency_sum_ms += row["lat"] or 0.0
            stats.exit_stack_growth += row["x"] or 0
            stats.functions_growth += row["f"] or 0
    return out


def overview_stats(*, window: timedelta, now: datetime | None = None) -> WindowStats:
    """Everyone's requests, errors and latency over the last ``window``."""
    now = now or utcnow()
    start = now - window
    split = _split(start, now)
    stats = WindowStats(seconds=window.total_seconds())
    ranges: list[tuple[Any, dict[str, Any]]] = []
    if split is None:
        ranges.append((TotalsSample, {"ts__gt": start, "ts__lte": now}))
    else:
        a, b = split
        ranges += [
            (TotalsSample, {"ts__gt": start, "ts__lt": a}),
            (TotalsHourly, {"hour__gte": a, "hour__lt": b}),
            (TotalsSample, {"ts__gte": b, "ts__lte": now}),
        ]
    for model, lookup in ranges:
        row = model.objects.filter(**lookup).aggregate(r=Sum("d_requests"), e=Sum("d_errors"), lat=Sum("d_latency_ms"))
        stats.requests += row["r"] or 0
        stats.errors += row["e"] or 0
        stats.latency_sum_ms += row["lat"] or 0.0
    return stats


def _epoch(value: datetime) -> float:
    return round(value.timestamp(), 3)


@dataclass
class _Bucket:
    requests: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    gauges: dict[str, float] = field(default_factory=dict)


def _buckets(window: timedelta, points: int, now: datetime) -> tuple[datetime, float]:
    step = window.total_seconds() / points
    # Align to the step so that two calls a second apart give the same buckets.
    end_epoch = math.ceil(now.timestamp() / step) * step
    return datetime.fromtimestamp(end_epoch - step * points, UTC), step


def _series_doc(start: datetime, step: float, buckets: list[_Bucket], gauges: tuple[str, ...]) -> dict[str, Any]:
    per_min = 60 / step
    doc: dict[str, Any] = {
        "step": step,
        "t": [_epoch(start) + step * (i + 1) for i in range(len(buckets))],
        "requests_per_min": [round(b.requests * per_min, 3) for b in buckets],
        "errors_per_min": [round(b.errors * per_min, 3) for b in buckets],
        "latency_ms": [round(b.latency_sum / b.requests, 2) if b.requests > 0 else None for b in buckets],
    }
    for name in gauges:
        doc[name] = [b.gauges.get(name) for b in buckets]
    return doc


def user_series(
    *, user_id: str, window: timedelta, now: datetime | None = None, points: int | None = None
) -> dict[str, Any]:
    """One user's chart series over ``window``: requests/min, errors/min, window latency, in-flight, exit stack.

    Arrays share the time axis ``t`` (epoch seconds, the end of each bucket). Gauges (in-flight,
    exit stack) carry the last known value forward while the life is open, and are null when the
    user had no open life.
    """
    now = now or utcnow()
    points = points or _points_for(window)
    start, step = _buckets(window, points, now)
    buckets = [_Bucket() for _ in range(points)]
    lives = list(UserLife.objects.filter(user_id=user_id).order_by("life"))
    use_hourly = window > timedelta(days=1)
    for life in lives:
        if life.ended_at is not None and life.ended_at < start:
            continue
        last_gauges: dict[str, float] | None = None
        if not use_hourly:
            before = UserSample.objects.filter(life=life, ts__lte=start).order_by("-ts").first()
            if before is not None:
                last_gauges = {"in_flight": before.ref_count, "exit_stack": before.exit_stack}
            rows = UserSample.objects.filter(life=life, ts__gt=start, ts__lte=now).order_by("ts")
            marks = [(s.ts, s.d_requests, s.d_errors, s.d_latency_ms, s.ref_count, s.exit_stack) for s in rows]
        else:
            # An hourly row covers [hour, hour + 1 h): it is placed by its start, like a bucket.
            rows_h = UserHourly.objects.filter(life=life, hour__gte=start).order_by("hour")
            marks = [
                (h.hour, h.d_requests, h.d_errors, h.d_latency_ms, h.max_ref_count, h.max_exit_stack) for h in rows_h
            ]
            rolled = max((h.hour + HOUR for h in rows_h), default=start)
            rows = UserSample.objects.filter(life=life, ts__gte=max(start, rolled), ts__lte=now).order_by("ts")
            marks += [(s.ts, s.d_requests, s.d_errors, s.d_latency_ms, s.ref_count, s.exit_stack) for s in rows]
        index_of = {m[0]: min(points - 1, max(0, int((m[0] - start).total_seconds() // step))) for m in marks}
        filled: dict[int, dict[str, float]] = {}
        for ts, dr, de, dl, ref, stack in marks:
            if ts < start:
                continue
            b = buckets[index_of[ts]]
            b.requests += dr
            b.errors += de
            b.latency_sum += dl
            g = filled.setdefault(index_of[ts], {"in_flight": 0, "exit_stack": 0})
            g["in_flight"] = max(g["in_flight"], ref)
            g["exit_stack"] = stack
        begin = 0 if life.first_seen <= start else int((life.first_seen - start).total_seconds() // step)
        end = points - 1 if life.ended_at is None else int((life.ended_at - start).total_seconds() // step)
        for i in range(max(0, begin), min(points - 1, end) + 1):
            if i in filled:
                last_gauges = filled[i]
            if last_gauges is not None:
                for name, value in last_gauges.items():
                    buckets[i].gauges[name] = buckets[i].gauges.get(name, 0) + value
    doc = _series_doc(start, step, buckets, ("in_flight", "exit_stack"))
    doc.update(
        user_id=user_id,
        window=_window_name(window),
        lives=[
            {
                "life": life.life,
                "created_at": life.created_at.isoformat(),
                "first_seen": life.first_seen.isoformat(),
                "ended_at": life.ended_at.isoformat() if life.ended_at else None,
            }
            for life in lives
        ],
    )
    return doc


def overview_series(*, window: timedelta, now: datetime | None = None, points: int | None = None) -> dict[str, Any]:
    """Everyone's chart series over ``window``: users, active, in-flight, requests/min, errors/min, latency."""
    now = now or utcnow()
    points = points or _points_for(window)
    start, step = _buckets(window, points, now)
    buckets = [_Bucket() for _ in range(points)]
    marks: list[tuple[datetime, int, int, float, dict[str, float]]] = []
    rolled_to = start
    if window > timedelta(days=1):
        # An hourly row covers [hour, hour + 1 h): it is placed by its start, like a bucket.
        for h in TotalsHourly.objects.filter(hour__gte=start, hour__lt=now).order_by("hour"):
            gauges = {"users": h.max_users, "active": h.max_active, "in_flight": h.max_in_flight}
            marks.append((h.hour, h.d_requests, h.d_errors, h.d_latency_ms, gauges))
            rolled_to = h.hour + HOUR
    rows = TotalsSample.objects.filter(ts__gte=max(start, rolled_to), ts__lte=now).order_by("ts")
    for t in rows.values_list("ts", "d_requests", "d_errors", "d_latency_ms", "users", "active", "in_flight"):
        marks.append((t[0], t[1], t[2], t[3], {"users": t[4], "active": t[5], "in_flight": t[6]}))
    for ts, dr, de, dl, gauges in marks:
        if ts < start:
            continue
        i = min(points - 1, int((ts - start).total_seconds() // step))
        b = buckets[i]
        b.requests += dr
        b.errors += de
        b.latency_sum += dl
        for name, value in gauges.items():
            b.gauges[name] = max(b.gauges.get(name, 0), value)
    doc = _series_doc(start, step, buckets, ("users", "active", "in_flight"))
    doc["window"] = _window_name(window)
    return doc


def sparklines(
    *, user_ids: Iterable[str], window: timedelta, now: datetime | None = None, points: int = 30
) -> dict[str, list[float]]:
    """Requests per minute of each of ``user_ids`` in ``points`` buckets over ``window`` (one query).

    For the list's small activity charts: a page of users at once, zeros for a user without traffic.
    """
    now = now or utcnow()
    ids = list(dict.fromkeys(user_ids))
    start, step = _buckets(window, points, now)
    out = {uid: [0.0] * points for uid in ids}
    per_min = 60 / step
    for chunk in _chunks(ids, 500):
        rows = UserSample.objects.filter(life__user_id__in=chunk, ts__gt=start, ts__lte=now, d_requests__gt=0)
        for uid, ts, requests in rows.values_list("life__user_id", "ts", "d_requests").iterator(chunk_size=2000):
            i = min(points - 1, int((ts - start).total_seconds() // step))
            out[uid][i] += requests * per_min
    return {uid: [round(v, 3) for v in values] for uid, values in out.items()}


def _points_for(window: timedelta) -> int:
    return CHART_POINTS.get(_window_name(window), 120)


def _window_name(window: timedelta) -> str:
    for name, value in WINDOWS.items():
        if value == window:
            return name
    return f"{int(window.total_seconds())}s"


@dataclass
class EndedUser:
    """A user whose last life ended: when, and its last known values."""

    user_id: str
    life: int
    ended_at: datetime
    sources: tuple[str, ...]
    usage: PerUserResourceUsage

    def ended_ago(self, now: datetime | None = None) -> str:
        """``ended N min ago`` (the phrase the list shows)."""
        minutes = int(((now or utcnow()) - self.ended_at).total_seconds() // 60)
        return f"ended {minutes} min ago"


def life_usage(row: UserLife) -> PerUserResourceUsage:
    """A life's last known values as a NAT-shaped record (no validation: the values came from one)."""
    last = row.last_activity or row.ended_at or row.first_seen
    return PerUserResourceUsage.model_construct(
        user_id=row.user_id,
        session=PerUserSessionMetrics.model_construct(
            created_at=row.created_at, last_activity=last, ref_count=row.ref_count, is_active=row.ref_count > 0
        ),
        requests=PerUserRequestMetrics.model_construct(
            total_requests=row.total_requests,
            active_requests=row.ref_count,
            avg_latency_ms=row.avg_latency_ms,
            error_count=row.error_count,
        ),
        memory=PerUserMemoryMetrics.model_construct(
            per_user_functions_count=row.functions,
            per_user_function_groups_count=row.groups,
            exit_stack_size=row.exit_stack,
        ),
    )


def ended_users_qs(*, since: datetime | None = None, exclude: Iterable[str] = ()) -> Any:
    """Newest ended life of every user that has no open life, newest first (a lazy queryset)."""
    cut = since or (utcnow() - WINDOWS["7d"])
    open_ids = UserLife.objects.filter(ended_at__isnull=True).values("user_id")
    newest = UserLife.objects.filter(user_id=OuterRef("user_id")).order_by("-life").values("pk")[:1]
    qs = (
        UserLife.objects.filter(ended_at__gte=cut)
        .exclude(user_id__in=open_ids)
        .filter(pk=Subquery(newest))
        .order_by("-ended_at", "user_id")
    )
    excluded = list(exclude)
    return qs.exclude(user_id__in=excluded) if excluded else qs


# The list's sort keys (feed.SORT_KEYS) as database orderings, for ended users (read from the store).
ENDED_ORDER = {
    "user_id": "user_id",
    "created_at": "created_at",
    "last_activity": "last_activity",
    "ref_count": "ref_count",
    "is_active": "ref_count",
    "total_requests": "total_requests",
    "active_requests": "ref_count",
    "avg_latency_ms": "avg_latency_ms",
    "error_count": "error_count",
    "per_user_functions_count": "functions",
    "per_user_function_groups_count": "groups",
    "exit_stack_size": "exit_stack",
}


def ended_users_view(*, q: str, sort: str, labels: Mapping[str, str] | None = None) -> Any:
    """The ended users whose id or label holds ``q`` (as the list's search), sorted by a list sort key.

    A lazy queryset of UserLife rows, kept as long as the store keeps lives (the roll-up
    retention); ``sort`` is a key of ``ENDED_ORDER``, ``-`` in front for descending.
    """
    since = utcnow() - timedelta(days=float(get_config()["HISTORY"]["ROLLUP_RETENTION_DAYS"]))
    qs = ended_users_qs(since=since)
    if q:
        needle = q.casefold()
        named = [uid for uid, label in (labels or {}).items() if needle in label.casefold()]
        qs = qs.filter(Q(user_id__icontains=q) | Q(user_id__in=named))
    field_name = ENDED_ORDER[sort.removeprefix("-")]
    return qs.order_by(("-" if sort.startswith("-") else "") + field_name, "user_id")


def ended_user(row: UserLife) -> EndedUser:
    """An ``EndedUser`` from its life row."""
    assert row.ended_at is not None
    return EndedUser(
        user_id=row.user_id,
        life=row.life,
        ended_at=row.ended_at,
        sources=tuple(s for s in row.sources.split(",") if s),
        usage=life_usage(row),
    )


def ended_users(*, since: datetime | None = None, exclude: Iterable[str] = ()) -> list[EndedUser]:
    """Users that left (evicted, or their server restarted) since ``since`` (default: the raw retention)."""
    if since is None:
        since = utcnow() - timedelta(days=float(get_config()["HISTORY"]["RAW_RETENTION_DAYS"]))
    return [ended_user(row) for row in ended_users_qs(since=since, exclude=exclude)]


# --- lifecycle flags -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One lifecycle flag: a short name for filters, a label for the list, and why (for the detail page)."""

    name: str  # idle | stuck | rising | erroring
    label: str
    detail: str


def _minutes(seconds: float) -> str:
    return f"{max(0, int(seconds // 60))} min"


def user_flags(
    usage: PerUserResourceUsage,
    *,
    stats: WindowStats | None = None,
    timeout: timedelta | None = None,
    now: datetime | None = None,
    config: Mapping[str, Any] | None = None,
) -> list[Flag]:
    """The lifecycle flags of one user now.

    ``stats`` are the user's window stats (rising and erroring need them; without history the
    lifetime error share is used); ``timeout`` is its source's per-user workflow timeout, which
    turns "idle" into "evicted in N min".
    """
    cfg = config if config is not None else get_config()["FLAGS"]
    now = now or utcnow()
    flags: list[Flag] = []
    quiet = (now - usage.session.last_activity).total_seconds()
    in_flight = usage.session.ref_count
    if in_flight == 0 and quiet >= float(cfg["IDLE_AFTER"]):
        label = f"idle {_minutes(quiet)}"
        detail = f"No request in flight and no activity for {_minutes(quiet)}."
        if timeout is not None:
            left = timeout.total_seconds() - quiet
            label += f", evicted in {_minutes(left)}"
            detail += (
                f" The source evicts workflows idle for {_minutes(timeout.total_seconds())}:"
                f" this one goes in about {_minutes(left)}, with its counters."
            )
        flags.append(Flag("idle", label, detail))
    if in_flight > 0 and quiet >= float(cfg["STUCK_AFTER"]):
        flags.append(
            Flag(
                "stuck",
                f"stuck {_minutes(quiet)}",
                f"{in_flight} request(s) in flight but no activity for {_minutes(quiet)}"
                f" (threshold {_minutes(float(cfg['STUCK_AFTER']))}).",
            )
        )
    rising_min = int(cfg["RISING_MIN"])
    if stats is not None and (stats.exit_stack_growth >= rising_min or stats.functions_growth >= rising_min):
        flags.append(
            Flag(
                "rising",
                "resources rising",
                f"Over the last {cfg['WINDOW']} the exit stack grew by {stats.exit_stack_growth} and functions"
                f" + groups by {stats.functions_growth} (threshold {rising_min}): resources are not released.",
            )
        )
    if stats is not None:
        requests, errors = stats.requests, stats.errors
        scope = f"the last {cfg['WINDOW']}"
    else:
        requests, errors = usage.requests.total_requests, usage.requests.error_count
        scope = "its lifetime"
    if requests >= int(cfg["ERROR_MIN_REQUESTS"]) and errors / requests >= float(cfg["ERROR_RATE"]):
        flags.append(
            Flag(
                "erroring",
                f"erroring {errors / requests:.0%}",
                f"{errors} of {requests} requests failed over {scope}"
                f" (threshold {float(cfg['ERROR_RATE']):.0%} of at least {int(cfg['ERROR_MIN_REQUESTS'])}).",
            )
        )
    return flags


def source_timeouts(service: MonitorService) -> dict[str, timedelta]:
    """Source name -> its per-user workflow timeout, for the sources that know it."""
    out: dict[str, timedelta] = {}
    for source in service.sources:
        timeout = getattr(source, "per_user_workflow_timeout", None)
        if isinstance(timeout, timedelta):
            out[source.name] = timeout
    return out


def user_timeout(origins: Iterable[str], timeouts: Mapping[str, timedelta]) -> timedelta | None:
    """The soonest eviction timeout among the sources that report a user (None when none knows it)."""
    known = [timeouts[name] for name in origins if name in timeouts]
    return min(known) if known else None


def users_flags(
    snapshot: Snapshot,
    *,
    timeouts: Mapping[str, timedelta],
    window: timedelta | None = None,
    now: datetime | None = None,
    stats: Mapping[str, WindowStats] | None = None,
) -> dict[str, list[Flag]]:
    """Flags of every user of ``snapshot`` (window stats read from the history unless given)."""
    now = now or utcnow()
    if stats is None:
        window = window or window_parse(get_config()["FLAGS"]["WINDOW"])
        stats = window_stats(window=window, now=now)
    empty = WindowStats()
    return {
        u.user_id: user_flags(
            u,
            stats=stats.get(u.user_id, empty),
            timeout=user_timeout(snapshot.origins.get(u.user_id, ()), timeouts),
            now=now,
        )
        for u in snapshot.users
    }


def user_window(
    *,
    user_id: str,
    usage: PerUserResourceUsage | None,
    window: timedelta,
    timeout: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[WindowStats, list[Flag]]:
    """One user's stats over ``window`` and its lifecycle flags now (sync; the detail page and its JSON).

    Flags look at their own window (``FLAGS["WINDOW"]``), whatever window the charts show; a user
    no source reports (``usage`` None) has no flags.
    """
    now = now or utcnow()
    empty = WindowStats(seconds=window.total_seconds())
    stats = window_stats(window=window, user_ids=[user_id], now=now).get(user_id, empty)
    if usage is None:
        return stats, []
    flag_window = window_parse(get_config()["FLAGS"]["WINDOW"])
    flag_stats = stats
    if flag_window != window:
        flag_empty = WindowStats(seconds=flag_window.total_seconds())
        flag_stats = window_stats(window=flag_window, user_ids=[user_id], now=now).get(user_id, flag_empty)
    return stats, user_flags(usage, stats=flag_stats, timeout=timeout, now=now)


@dataclass
class RowWindow:
    """What the list shows of one user's window: its rates, its flags and its activity sparkline."""

    stats: WindowStats
    flags: list[Flag]
    sparkline: list[float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"stats": self.stats.as_dict(), "flags": [asdict(f) for f in self.flags], "sparkline": self.sparkline}


def rows_window(
    snapshot: Snapshot,
    *,
    user_ids: Sequence[str],
    window: timedelta,
    timeouts: Mapping[str, timedelta],
    now: datetime | None = None,
) -> dict[str, RowWindow]:
    """Rates, flags and sparklines of a page of users (sync; three queries whatever the page size).

    Only ``user_ids`` are read, never every user: the list computes this for the rows it shows.
    Flags look at their own window (``FLAGS["WINDOW"]``); users ``snapshot`` does not hold (ended
    users) get rates and a sparkline but no flags.
    """
    now = now or utcnow()
    ids = list(dict.fromkeys(user_ids))
    stats = window_stats(window=window, user_ids=ids, now=now)
    flag_window = window_parse(get_config()["FLAGS"]["WINDOW"])
    flag_stats = stats if flag_window == window else window_stats(window=flag_window, user_ids=ids, now=now)
    lines = sparklines(user_ids=ids, window=window, now=now)
    out: dict[str, RowWindow] = {}
    for uid in ids:
        usage = snapshot.by_id.get(uid)
        flags: list[Flag] = []
        if usage is not None:
            timeout = user_timeout(snapshot.origins.get(uid, ()), timeouts)
            own = flag_stats.get(uid, WindowStats(seconds=flag_window.total_seconds()))
            flags = user_flags(usage, stats=own, timeout=timeout, now=now)
        out[uid] = RowWindow(
            stats=stats.get(uid, WindowStats(seconds=window.total_seconds())), flags=flags, sparkline=lines[uid]
        )
    return out


def ended_user_get(*, user_id: str) -> EndedUser | None:
    """The user's last ended life while it has no open one and the store keeps it (None: never seen or live)."""
    since = utcnow() - timedelta(days=float(get_config()["HISTORY"]["ROLLUP_RETENTION_DAYS"]))
    row = ended_users_qs(since=since).filter(user_id=user_id).first()
    return ended_user(row) if row is not None else None


def history_enabled() -> bool:
    """True when the settings turn the history store on."""
    return bool(get_config()["HISTORY"]["ENABLED"])


_recorder: Recorder | None = None


def recorder_get() -> Recorder | None:
    """The process's recorder, once ``recorder_install`` ran."""
    return _recorder


def recorder_install(service: MonitorService) -> Recorder:
    """Create the process's recorder and make it listen to ``service``."""
    global _recorder
    _recorder = Recorder()
    service.add_listener(_recorder)
    return _recorder

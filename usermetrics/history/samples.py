"""Sample rows (sync ORM): a user's counters, what the recorder keeps of an open life, samples and totals in bulk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections

from usermetrics.metrics import PerUserResourceUsage
from usermetrics.models import TotalsSample, UserLife, UserSample, user_key
from usermetrics.snapshot import Snapshot

from .latency import Cumulative, ExtrasSum, encode_sum
from .partitions import ensure_days
from .tokens import LlmCumulative, TokenSum
from .tokens import encode_sum as encode_tokens


class Counters(NamedTuple):
    """A user's counters as one life or sample row keeps them: named, and still a tuple (compared in C,
    spliced into a sample row as it is)."""

    ref_count: int
    total_requests: int
    error_count: int
    avg_latency_ms: float
    functions: int
    groups: int
    exit_stack: int


ZERO = Counters(0, 0, 0, 0.0, 0, 0, 0)

# The model fields that hold the counters, in their order (UserLife and UserSample alike): their names.
COUNTER_FIELDS: tuple[str, ...] = Counters._fields

# UserSample's columns in the order a sample row is built (see lives.LifeBook._sample).
SAMPLE_COLUMNS = (
    "life_id", "ts", *COUNTER_FIELDS, "d_requests", "d_errors", "d_latency_ms", "d_exit_stack", "d_functions",
    "extras", "d_tokens", "d_cost", "llm",
)  # fmt: skip


class Delta(NamedTuple):
    """What changed between two samples of a life: the ``d_*`` columns of the newer one."""

    requests: int
    errors: int
    latency_ms: float  # the change of avg latency x requests: the latency summed over the new requests
    exit_stack: int
    functions: int  # functions and function groups


NO_CHANGE = Delta(0, 0, 0.0, 0, 0)


def delta(new: Counters, old: Counters | None) -> Delta:
    """The change from ``old`` to ``new`` (``old`` None: the first sample of a life counted from zero)."""
    if old is None:  # resources start as a baseline
        return Delta(new.total_requests, new.error_count, new.avg_latency_ms * new.total_requests, 0, 0)
    return Delta(
        new.total_requests - old.total_requests,
        new.error_count - old.error_count,
        new.avg_latency_ms * new.total_requests - old.avg_latency_ms * old.total_requests,
        new.exit_stack - old.exit_stack,
        (new.functions + new.groups) - (old.functions + old.groups),
    )


@dataclass
class OpenLife:
    """What the recorder remembers of one open life between refreshes."""

    pk: int
    life: int
    created_at: datetime
    sources: str
    counters: Counters  # as of the latest snapshot
    last_activity: datetime | None
    written: Counters  # as of the latest sample written
    written_ts: datetime | None
    # The companions' figures (``history.latency``), for users that have them: as of the latest
    # snapshot, and as of the latest sample written (None: not known, the next one is a baseline).
    extras: Cumulative | None = None
    queued: int = 0
    written_extras: Cumulative | None = None
    written_queued: int = 0
    # Its LLM calls and tokens per model (``history.tokens``), likewise.
    llm: LlmCumulative | None = None
    written_llm: LlmCumulative | None = None

    def unwritten(self) -> bool:
        """Whether the latest snapshot says something the latest sample does not."""
        return self.counters != self.written or (
            self.extras is not None
            and (
                self.extras != self.written_extras or self.queued != self.written_queued or self.llm != self.written_llm
            )
        )


@dataclass
class RecordResult:
    """What one ``record`` call did (for tests, logs and the process totals)."""

    samples: int = 0
    new_lives: int = 0
    ended: int = 0
    reopened: int = 0
    d_requests: int = 0
    d_errors: int = 0
    d_latency_ms: float = 0.0
    # The sum of the extras written (None: nobody's): the totals row's, and the process's histogram.
    extras: ExtrasSum | None = None
    # NAT's latency sum (Δ avg x count) of the requests that the written histograms count.
    d_latency_ms_counted: float = 0.0
    # The sum of the tokens and costs written (None: nobody's), models by id: the totals row's.
    tokens: TokenSum | None = None

    def add_tokens(self, written: TokenSum) -> None:
        """Count one sample's tokens and cost."""
        if self.tokens is None:
            self.tokens = TokenSum()
        self.tokens.add(written)

    def add_extras(self, counted: ExtrasSum, d_latency_ms: float) -> None:
        """Count one sample's extras (``d_latency_ms``: its NAT latency sum)."""
        if self.extras is None:
            self.extras = ExtrasSum.empty()
        self.extras.add(counted)
        if counted.requests:
            self.d_latency_ms_counted += d_latency_ms


def counters_of(usage: PerUserResourceUsage) -> Counters:
    """The counters of a live record."""
    r, m = usage.requests, usage.memory
    return Counters(
        usage.session.ref_count,
        r.total_requests,
        r.error_count,
        r.avg_latency_ms,
        m.per_user_functions_count,
        m.per_user_function_groups_count,
        m.exit_stack_size,
    )


def counters_stored(row: UserLife | UserSample) -> Counters:
    """The counters kept in a life or sample row."""
    return Counters._make(getattr(row, name) for name in COUNTER_FIELDS)


# Up to this many lives (a user's page), a query's rows come in one round trip; more (a page of the list,
# everyone) stream through a server-side cursor, which costs three or four round trips on PostgreSQL.
FEW_LIVES = 20


def rows_of(query: Any, *, lives: int | None) -> Iterable[Any]:
    """The rows of ``query`` (a ``values_list``), fetched at once for ``lives`` up to ``FEW_LIVES``, else streamed."""
    return iter(query) if lives is not None and lives <= FEW_LIVES else query.iterator(chunk_size=2000)


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    """``items`` in lists of at most ``size`` (bounds the parameters of one query)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_samples(rows: list[tuple[Any, ...]], *, ts: datetime, batch_size: int) -> None:
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
    table = quote(UserSample._meta.db_table)
    columns = ", ".join(quote(c) for c in SAMPLE_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            ensure_days(UserSample, ts, ts)  # the day's partition, should the maintenance pass not have made it
            # COPY streams the rows in one command; executemany and long VALUES lists spend
            # their time in the driver's client-side parameter binding instead.
            # The driver's cursor, so its errors are wrapped into Django's (IntegrityError ...) here.
            with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((row[0], db_ts, *row[2:]))
            return
        # SQLite runs executemany in C over one prepared statement: the fast way there.
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(SAMPLE_COLUMNS))})"
        for chunk in chunks(rows, batch_size):
            cursor.executemany(sql, [(row[0], db_ts, *row[2:]) for row in chunk])


def totals_row(
    snapshot: Snapshot,
    *,
    d_requests: int,
    d_errors: int,
    d_latency_ms: float,
    extras: ExtrasSum | None = None,
    tokens: TokenSum | None = None,
) -> TotalsSample:
    """The totals row of one refresh: the snapshot's totals and the sums of the deltas written.

    ``extras``: the sum of the extras written in this refresh; with it, or with any user of the
    snapshot reporting extras, the row's ``extras`` holds that sum and every user's queue now.
    ``tokens``: the sum of the tokens and costs written (models by id), for its ``d_tokens``,
    ``d_cost`` and ``llm``.
    """
    t = snapshot.totals
    if extras is not None or snapshot.extras:
        queued = sum(x.queued for x in snapshot.extras.values())
        total = replace(extras if extras is not None else ExtrasSum.empty(), queued=queued)
        extras_column: bytes | None = encode_sum(total)
    else:
        extras_column = None
    return TotalsSample(
        ts=snapshot.timestamp,
        users=t.users,
        active=t.active,
        in_flight=t.in_flight,
        requests=t.requests,
        errors=t.errors,
        avg_latency_ms=t.avg_latency_ms,
        exit_stack=t.exit_stack,
        d_requests=d_requests,
        d_errors=d_errors,
        d_latency_ms=round(d_latency_ms, 3),
        extras=extras_column,
        d_tokens=tokens.total if tokens is not None else None,
        d_cost=tokens.cost_nano if tokens is not None else None,
        llm=encode_tokens(tokens) if tokens is not None else None,
        sources_up=sum(1 for s in snapshot.sources if s.state == "ok"),
        sources_total=len(snapshot.sources),
    )


def lives_of(user_ids: Iterable[str]) -> dict[int, str]:
    """Life key -> user id of every life of ``user_ids`` (one indexed lookup per 500 ids).

    Queries of a page of users go through these keys: the samples' primary key is (life, ts), so
    each user's samples are one index range, where a join on the user id would scan the window.
    """
    out: dict[int, str] = {}
    for chunk in chunks(list(dict.fromkeys(user_ids)), 500):
        keys = [user_key(u) for u in chunk]
        out.update(UserLife.objects.filter(user_key__in=keys).values_list("pk", "user_id"))
    return out

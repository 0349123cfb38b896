"""Day partitions (sync, PostgreSQL only): the per-user history tables split by UTC day, made ahead and dropped whole.

At a million users the raw samples grow by tens of millions of rows a day, and the hourly roll-ups by
24 rows per user a day; deleting expired rows one by one would cost more than writing them. On
PostgreSQL (from migration 0010) ``UserSample`` is partitioned by range of ``ts`` and ``UserHourly``
by range of ``hour``, one partition per UTC day, named ``<table>_pYYYYMMDD``; a table that held rows
when it was converted became the partition of everything up to a day, ``<table>_uptoYYYYMMDD``.
Retention drops the partitions whose whole range is older than the cut (rows are kept up to a day
longer than the retention, never shorter). Partitions are made ahead by the maintenance pass and on
demand before an insert, so an insert never meets a missing day. On SQLite (and on a PostgreSQL table
that is not partitioned) every function here does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from usermetrics.models import UserHourly, UserSample

DAY = timedelta(days=1)
# How many days after today the maintenance pass makes partitions for.
AHEAD = 2
# The tables partitioned by day, and the column that picks the partition.
PARTITIONED = {UserSample: "ts", UserHourly: "hour"}
_NAME = re.compile(r"_(p|upto)(\d{8})$")


def day_of(value: datetime) -> date:
    """The UTC day ``value`` falls in."""
    return value.astimezone(UTC).date()


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


def partition_name(table: str, day: date) -> str:
    """The name of ``table``'s partition of one UTC day."""
    return f"{table}_p{day:%Y%m%d}"


def legacy_name(table: str, day: date) -> str:
    """The name of the partition that holds a converted table's rows: everything up to the end of ``day``."""
    return f"{table}_upto{day:%Y%m%d}"


def _active(connection: BaseDatabaseWrapper, table: str) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def partitions(connection: BaseDatabaseWrapper, table: str) -> dict[str, tuple[str, date]]:
    """``table``'s partitions by name: each one's kind (``p`` one day, ``upto`` every day through) and day."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            [table],
        )
        names = [name for (name,) in cursor.fetchall()]
    out: dict[str, tuple[str, date]] = {}
    for name in names:
        found = _NAME.search(name)
        if found:
            out[name] = (found[1], datetime.strptime(found[2], "%Y%m%d").date())
    return out


def create_days(connection: BaseDatabaseWrapper, table: str, days: Iterable[date]) -> list[str]:
    """Make the partitions of ``days`` that no partition covers yet (``table`` must be partitioned); their names."""
    have = partitions(connection, table).values()
    upto = max((day for kind, day in have if kind == "upto"), default=None)
    single = {day for kind, day in have if kind == "p"}
    quote = connection.ops.quote_name
    made = []
    with connection.cursor() as cursor:
        for day in sorted(set(days)):
            if day in single or (upto is not None and day <= upto):
                continue
            name = partition_name(table, day)
            # IF NOT EXISTS: another producer (a standby that just took over) may have made it since the listing.
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(name)} PARTITION OF {quote(table)} FOR VALUES FROM (%s) TO (%s)",
                [day_start(day), day_start(day + DAY)],
            )
            made.append(name)
    return made


def ensure_days(model: type[UserSample] | type[UserHourly], first: datetime, last: datetime) -> list[str]:
    """Make sure ``model``'s table has a partition for every UTC day from ``first`` to ``last``; the ones made."""
    connection = connections[model.objects.db]
    table = model._meta.db_table
    if not _active(connection, table):
        return []
    start, end = day_of(first), day_of(last)
    return create_days(connection, table, (start + DAY * n for n in range((end - start).days + 1)))


def ensure_ahead(now: datetime, *, days: int = AHEAD) -> list[str]:
    """Make every partitioned table's partitions from today to ``days`` days ahead (the maintenance pass)."""
    return [name for model in PARTITIONED for name in ensure_days(model, now, now + DAY * days)]


def drop_before(model: type[UserSample] | type[UserHourly], cut: datetime) -> int | None:
    """Drop ``model``'s partitions that hold only rows older than ``cut``; how many (None: not partitioned).

    A partition of day D holds rows before D + 1 day: it goes once that is at or before the cut.
    """
    connection = connections[model.objects.db]
    table = model._meta.db_table
    if not _active(connection, table):
        return None
    expired = [name for name, (_, day) in partitions(connection, table).items() if day_start(day + DAY) <= cut]
    if expired and connection.in_atomic_block:
        # Rows written earlier in this transaction have their deferred foreign-key checks pending, and
        # PostgreSQL drops no table with pending trigger events: run the checks now (they stay deferred after).
        connection.check_constraints()
    with connection.cursor() as cursor:
        for name in expired:
            cursor.execute(f"DROP TABLE {connection.ops.quote_name(name)}")
    return len(expired)

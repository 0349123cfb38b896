"""On PostgreSQL, the per-user history tables partitioned by UTC day (``history.partitions``); nothing on SQLite.

A table with rows is renamed and attached as the partition of every day up to today (its rows stay
where they are: no copy, and retention drops it whole once its last day is past the cut); an empty one is
replaced. The parent gets the keys and names Django knows; ``UserHourly``'s primary key becomes
(id, hour) in the database, as a partitioned table's key must hold the partition column (the ORM still
knows ``id`` as the key; rows are unique on (life, hour) as before).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from usermetrics.clock import utcnow
from usermetrics.history.partitions import AHEAD, DAY, create_days, day_of, day_start, legacy_name

LIFE_FK = "FOREIGN KEY (life_id) REFERENCES usermetrics_userlife (id) DEFERRABLE INITIALLY DEFERRED"
# Per table: its partition column, its keys when partitioned, and its keys as 0009 made them.
TABLES = {
    "usermetrics_usersample": (
        "ts",
        [
            "ADD CONSTRAINT usermetrics_usersample_pkey PRIMARY KEY (life_id, ts)",
            f"ADD CONSTRAINT usermetrics_usersamp_life_id_4710f1fb_fk_usermetri {LIFE_FK}",
        ],
        [
            "ADD CONSTRAINT usermetrics_usersample_pkey PRIMARY KEY (life_id, ts)",
            f"ADD CONSTRAINT usermetrics_usersamp_life_id_4710f1fb_fk_usermetri {LIFE_FK}",
        ],
        ["CREATE INDEX usermetrics_sample_ts ON usermetrics_usersample (ts)"],
    ),
    "usermetrics_userhourly": (
        "hour",
        [
            "ADD CONSTRAINT usermetrics_userhourly_pkey PRIMARY KEY (id, hour)",
            "ADD CONSTRAINT usermetrics_userhourly_life_hour UNIQUE (life_id, hour)",
            f"ADD CONSTRAINT usermetrics_userhour_life_id_8e5f9ea5_fk_usermetri {LIFE_FK}",
        ],
        [
            "ADD CONSTRAINT usermetrics_userhourly_pkey PRIMARY KEY (id)",
            "ADD CONSTRAINT usermetrics_userhourly_life_hour UNIQUE (life_id, hour)",
            f"ADD CONSTRAINT usermetrics_userhour_life_id_8e5f9ea5_fk_usermetri {LIFE_FK}",
        ],
        ["CREATE INDEX usermetrics_userhourly_hour ON usermetrics_userhourly (hour)"],
    ),
}
_LIKE = "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING STORAGE"


def _identity_continues(cursor: Any, table: str, rows_from: str) -> None:
    """Start the id sequence of ``table`` (UserHourly's) after the ids of ``rows_from``."""
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    (sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT setval(%s, COALESCE((SELECT max(id) FROM {rows_from}), 0) + 1, false)", [sequence])


def _keys(cursor: Any, table: str, keys: list[str], indexes: list[str]) -> None:
    """Give ``table`` its keys and indexes under the names Django knows."""
    for key in keys:
        cursor.execute(f"ALTER TABLE {table} {key}")
    for index in indexes:
        cursor.execute(index)


def partition(apps: Any, schema_editor: Any) -> None:
    """Partition each table by day, its rows kept in the partition of every day so far."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    today = day_of(utcnow())
    with connection.cursor() as cursor:
        for table, (column, keys, _plain, indexes) in TABLES.items():
            cursor.execute(f"SELECT max({column}) FROM {table}")
            newest = cursor.fetchone()[0]
            last = max(today, day_of(newest)) if newest is not None else today
            old = legacy_name(table, last)
            if column == "hour":  # UserHourly's key (id) lacks the partition column: ATTACH adds (id, hour)
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
            cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
            # Index names are the schema's: free them for the parent (ATTACH matches indexes by columns).
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY indexname", [old])
            for n, (index,) in enumerate(cursor.fetchall()):
                cursor.execute(f"ALTER INDEX {index} RENAME TO {old}_{n}")
            cursor.execute(f"CREATE TABLE {table} (LIKE {old} {_LIKE}) PARTITION BY RANGE ({column})")
            _keys(cursor, table, keys, indexes)
            if newest is None:
                cursor.execute(f"DROP TABLE {old}")
            else:
                if column == "hour":
                    _identity_continues(cursor, table, old)
                cursor.execute(
                    f"ALTER TABLE {table} ATTACH PARTITION {old} FOR VALUES FROM (MINVALUE) TO (%s)",
                    [day_start(last + DAY)],
                )
            create_days(connection, table, (today + DAY * n for n in range(AHEAD + 1)))


def unpartition(apps: Any, schema_editor: Any) -> None:
    """Back to plain tables, every row copied (the partitions dropped with their parent)."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table, (column, _partitioned, plain, indexes) in TABLES.items():
            cursor.execute(f"CREATE TABLE {table}_plain (LIKE {table} {_LIKE})")
            cursor.execute(f"INSERT INTO {table}_plain SELECT * FROM {table}")
            if column == "hour":
                _identity_continues(cursor, f"{table}_plain", table)
            cursor.execute(f"DROP TABLE {table}")
            cursor.execute(f"ALTER TABLE {table}_plain RENAME TO {table}")
            _keys(cursor, table, plain, indexes)


class Migration(migrations.Migration):
    # DDL and the copy of the reverse in one transaction: a failure leaves the tables as they were.
    dependencies = [("usermetrics", "0009_history_tokens")]

    operations = [migrations.RunPython(partition, unpartition)]

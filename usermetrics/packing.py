"""Packing (sync, no Django): a refresh's snapshot into a board, reusing what did not change.

The producer packs every refresh with one ``BoardCache``: records are the same objects while a
user does not change (the collector and the NAT parser both keep them), so a record's identity
says "unchanged" and its JSON and column values are reused; Python touches only changed users.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import accumulate, compress, count, repeat
from operator import is_, is_not, itemgetter
from typing import Any

from isal import igzip
from usermetrics_nat.histogram import sparse

from usermetrics.board import (
    COLUMNS,
    DETAIL_CODE,
    EXTRAS_COLUMNS,
    EXTRAS_DETAIL_COLUMNS,
    GZIP_LEVEL,
    NO_PERCENTILE,
    Board,
    body_prefix,
)
from usermetrics.extras import Extras
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.snapshot import Snapshot, is_active, totals_of

# One user as packed: its record (kept so that its id() stays its own), its JSON, its column values.
Row = tuple[PerUserResourceUsage, bytes, tuple[float, ...]]
_RECORD_COLUMNS = tuple(COLUMNS)


def column_values(usage: PerUserResourceUsage) -> tuple[float, ...]:
    """One record's values for ``COLUMNS``, in their order: the same reads, in one call (tests hold them equal)."""
    s, r, m = usage.session, usage.requests, usage.memory
    return (
        s.created_at.timestamp(),
        s.last_activity.timestamp(),
        s.ref_count,
        int(is_active(usage)),
        r.total_requests,
        r.active_requests,
        r.avg_latency_ms,
        r.error_count,
        m.per_user_functions_count,
        m.per_user_function_groups_count,
        m.exit_stack_size,
    )


# The extras columns packed per user (``board.EXTRAS_COLUMNS`` then ``EXTRAS_DETAIL_COLUMNS``), in order.
_EXTRAS_NAMES = (*EXTRAS_COLUMNS, *EXTRAS_DETAIL_COLUMNS)
_EXTRAS_CODES = (*EXTRAS_COLUMNS.values(), *EXTRAS_DETAIL_COLUMNS.values())
# One user's extras as packed: the ``Extras`` (kept so that its id() stays its own), its column
# values and its detail (histogram pairs and per-model counts) as bytes.
ExtrasRow = tuple[Extras | None, tuple[float, ...], bytes]
# What a user without extras has: no percentile, nothing queued, no histogram, no workers.
NO_EXTRAS_ROW: ExtrasRow = (None, (NO_PERCENTILE, NO_PERCENTILE, NO_PERCENTILE, 0, 0, 0, 0.0, 0.0, 0, 0, 0, 0), b"")


def extras_row(extras: Extras, worker_set: int, model_index: Callable[[str], int]) -> ExtrasRow:
    """One user's packed extras (``worker_set``: the index of its workers' labels in the board's table;
    ``model_index``: a model's index in the board's models)."""
    p50, p95, p99 = (NO_PERCENTILE if p is None else p for p in extras.percentiles)
    total = extras.llm_total
    values = (
        *(p50, p95, p99, extras.queued),
        *(1, extras.max_concurrency, extras.wait_ms, extras.run_ms, worker_set),
        *(total[0], total[-1], extras.tool_calls),
    )
    pairs = sparse(extras.latency)
    detail = array(DETAIL_CODE, [len(pairs), *(v for pair in pairs for v in pair)])
    for model, usage in extras.llm:
        detail.append(model_index(model))
        detail.extend(usage)
    return (extras, values, detail.tobytes())


_record = itemgetter(0)
_doc = itemgetter(1)
_values = itemgetter(2)
_extras_values = itemgetter(1)  # an ExtrasRow's column values
_extras_detail = itemgetter(2)  # an ExtrasRow's detail bytes
# Distinct sets of workers a board numbers before starting afresh (workers that came and went).
WORKER_SETS_MAX = 4096
# The extras as packed: columns, the details and their offsets, the workers' sets and the models by index.
ExtrasPacked = tuple[dict[str, array], bytes, array, tuple[tuple[str, ...], ...], tuple[str, ...]]
_plus_one = (1).__add__


class BoardCache:
    """What the last board packed, so that the next one packs only the records that changed.

    The sources hand back the very same record object for a user whose counters did not change
    (the collector and the NAT parser both do), so a record's identity says "unchanged": its JSON
    and column values are reused, and when the users are the same as last time, in the same order,
    last time's columns are copied and only the changed places rewritten. Every pass over all
    users runs in C; Python touches only the changed ones.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._rows: list[Row] = []  # the rows packed last, in their users' order
        self._ids: list[str] = []
        self._columns: dict[str, array] = {}
        self._last: Board | None = None
        self._same_ids = False
        # The extras packed last: the objects by place, their rows by the objects' ids, their columns,
        # and the table of the workers' label sets (index 0: none), kept so that indices stay put.
        self._extras_of: list[Extras | None] = []
        self._extras_rows: list[ExtrasRow] = []
        self._extras_columns: dict[str, array] = {}
        self._worker_sets: dict[tuple[str, ...], int] = {(): 0}
        self._models: dict[str, int] = {}
        # The origins packed last (several sources): the snapshot's table, the sources' names, the column.
        self.origins_of: tuple[dict[str, tuple[str, ...]], tuple[str, ...], array] | None = None
        self.hits = 0
        self.misses = 0

    def pack(self, users: Sequence[PerUserResourceUsage], ids: list[str]) -> tuple[list[Row], dict[str, array]]:
        """The rows of ``users`` (whose ids are ``ids``), in order, and their record columns."""
        before = self._rows
        rows: list[Any]
        self._same_ids = ids == self._ids
        if self._last is not None and self._last.ids is not self._ids:
            self._last = None  # a build failed after packing: the last board is of other users, carry nothing
        if self._same_ids:
            # The same users in the same places (most refreshes): records are compared place by
            # place, pointers only, with no table of a million records' identities to build or keep.
            rows = before[:]
            changed = list(compress(count(), map(is_not, users, map(_record, before))))
        else:
            # Users came, went or moved: last time's rows by their records' identities (each row
            # holds its record, so no id() here can be a new object's).
            by_record = dict(zip(map(id, map(_record, before)), before, strict=True))
            rows = list(map(by_record.get, map(id, users)))
            changed = list(compress(count(), map(is_, rows, repeat(None))))
        for i in changed:
            usage = users[i]
            rows[i] = (usage, usage.model_dump_json().encode(), column_values(usage))
        if self._same_ids and self._columns:
            columns = {name: column[:] for name, column in self._columns.items()}
            for i in changed:
                for name, value in zip(_RECORD_COLUMNS, rows[i][2], strict=True):
                    columns[name][i] = value
        else:
            by_column = zip(*map(_values, rows), strict=True) if rows else [()] * len(COLUMNS)
            columns = {
                name: array(code, values) for (name, (code, _)), values in zip(COLUMNS.items(), by_column, strict=True)
            }
        self._rows = rows
        self._ids = ids
        self._columns = columns
        self.hits += len(rows) - len(changed)
        self.misses += len(changed)
        return rows, dict(columns)  # the same arrays: a board never changes them, the next pack copies

    def pack_extras(self, ids: list[str], extras: Mapping[str, Extras]) -> ExtrasPacked:
        """The extras columns of the users ``ids`` (in order), their histograms packed and the workers' sets.

        The sources hand back the very same ``Extras`` for a user that did not change: as with
        records, its row is reused by the object's identity, and when the users are those of last
        time, last time's columns are copied and only the changed places rewritten. Every pass
        over all users runs in C; Python touches only the changed ones.
        """
        n = len(ids)
        if not extras:
            self._extras_of, self._extras_rows, self._extras_columns = [], [], {}
            columns = {
                name: array(code, [value]) * n
                for name, code, value in zip(_EXTRAS_NAMES, _EXTRAS_CODES, NO_EXTRAS_ROW[1], strict=True)
            }
            return columns, b"", array("Q", [0]) * (n + 1), ((),), ()
        xs = list(map(extras.get, ids))
        if len(self._worker_sets) > WORKER_SETS_MAX or len(self._models) > WORKER_SETS_MAX:
            # Workers or models came and went: number them afresh, every row again.
            self._worker_sets, self._models = {(): 0}, {}
            self._extras_of, self._extras_rows = [], []
        if self._same_ids and len(self._extras_of) == n and self._extras_columns:
            rows = self._extras_rows[:]
            columns = {name: column[:] for name, column in self._extras_columns.items()}
            for i in compress(count(), map(is_not, xs, self._extras_of)):
                rows[i] = row = self._extras_row(xs[i])
                for name, value in zip(_EXTRAS_NAMES, row[1], strict=True):
                    columns[name][i] = value
        else:
            # Other users or another order: last time's rows by their objects' identities (each row
            # holds its object, so no id here can be a new object's), the others packed anew.
            by_id = dict(zip(map(id, self._extras_of), self._extras_rows, strict=True))
            rows = list(map(by_id.get, map(id, xs)))
            for i in compress(count(), map(is_, rows, repeat(None))):
                rows[i] = self._extras_row(xs[i])
            by_column = zip(*map(_extras_values, rows), strict=True) if rows else [()] * len(_EXTRAS_NAMES)
            columns = {
                name: array(code, values)
                for name, code, values in zip(_EXTRAS_NAMES, _EXTRAS_CODES, by_column, strict=True)
            }
        self._extras_of, self._extras_rows, self._extras_columns = xs, rows, columns
        details = list(map(_extras_detail, rows))
        offsets = array("Q", accumulate(map(len, details), initial=0))
        worker_sets = tuple(self._worker_sets)  # in index order: a dict keeps its insertion order
        return dict(columns), b"".join(details), offsets, worker_sets, tuple(self._models)

    def _extras_row(self, extras: Extras | None) -> ExtrasRow:
        if extras is None:
            return NO_EXTRAS_ROW
        worker_set = self._worker_sets.setdefault(extras.workers, len(self._worker_sets))
        return extras_row(extras, worker_set, self._model_index)

    def _model_index(self, model: str) -> int:
        return self._models.setdefault(model, len(self._models))

    def carry(self, board: Board) -> None:
        """Hand ``board`` what the last board worked out from the same user ids (``Board.ids_carry``)."""
        last, self._last = self._last, board
        if last is not None and self._same_ids:
            board.ids_carry(last)


def board_build(
    snapshot: Snapshot,
    *,
    producer: str,
    published_at: datetime,
    cache: BoardCache,
    flags: Mapping[str, Iterable[str]] | None = None,
    flag_names: Sequence[str] = (),
    meta: Mapping[str, float] | None = None,
) -> Board:
    """Pack ``snapshot`` for publishing: one body, its offsets, the columns, and the users' flags."""
    users = snapshot.users
    ids = list(snapshot.by_id)  # the users' ids in their order, without reading every record
    rows, columns = cache.pack(users, ids)
    docs = list(map(_doc, rows))
    prefix = body_prefix(snapshot.timestamp, len(rows))
    body = b"".join((prefix, b",".join(docs), b"]}"))
    # User i's JSON is body[offsets[i] : offsets[i + 1] - 1] (each followed by a comma, or by "]").
    offsets = array("Q", accumulate(map(_plus_one, map(len, docs)), initial=len(prefix)))
    sources = snapshot.sources
    names = tuple(s.name for s in sources)
    if len(sources) == 1:
        columns["origins"] = array("Q", [1]) * len(ids)
    elif cache.origins_of is not None and cache.origins_of[0] is snapshot.origins and cache.origins_of[1] == names:
        columns["origins"] = cache.origins_of[2]  # the merge kept last time's origins: the same users, sources
    else:
        # The origins tuples are shared per source (snapshot.merge): one mask per distinct tuple.
        bit_of_source = {s.name: 1 << n for n, s in enumerate(sources)}
        masks = {names: sum(bit_of_source[name] for name in names) for names in set(snapshot.origins.values())}
        columns["origins"] = array("Q", map(masks.__getitem__, map(snapshot.origins.__getitem__, ids)))
        cache.origins_of = (snapshot.origins, names, columns["origins"])
    columns["evicted_at"] = snapshot.evictions(columns["last_activity"], columns["ref_count"], columns["origins"])
    columns["flags"] = array("B", bytes(len(rows)))
    extras_columns, detail, detail_offsets, worker_sets, models = cache.pack_extras(ids, snapshot.extras)
    columns.update(extras_columns)
    totals = totals_of(
        ref_count=columns["ref_count"],
        total_requests=columns["total_requests"],
        avg_latency_ms=columns["avg_latency_ms"],
        error_count=columns["error_count"],
        exit_stack_size=columns["exit_stack_size"],
    )
    snapshot.adopt_totals(totals)  # the recorder writes the same totals without working them out again
    board = Board(
        seq=snapshot.seq,
        timestamp=snapshot.timestamp,
        published_at=published_at,
        producer=producer,
        sources=snapshot.sources,
        totals=totals,
        ids=ids,
        body=body,
        offsets=offsets,
        columns=columns,
        parts={
            uid: [(name, part.model_dump_json().encode()) for name, part in entries]
            for uid, entries in snapshot.parts.items()
        },
        flag_names=tuple(flag_names),
        body_gzip=igzip.compress(body, GZIP_LEVEL, mtime=0),
        meta=dict(meta or {}),
        detail=detail,
        detail_offsets=detail_offsets,
        worker_sets=worker_sets,
        models=models,
    )
    cache.carry(board)
    if flags:
        board.flags_set(flags)
    return board

"""The board (sync, no Django): what the producer publishes per refresh, packed for many readers.

A ``Board`` is one refresh as the faces need it at any number of users: the NAT document of
every user serialized once (``body``, what ``/monitor/users`` serves, also gzip-compressed once),
where each user's JSON sits in it (``offsets``), and one packed column per sort key and filter
(``columns``), so sorting, filtering, search and paging never build a model per user. A page
decodes only its own users. ``encode``/``decode`` carry it through Redis (msgpack, the arrays
as raw bytes); in one process it is handed over as it is.
"""

from __future__ import annotations

import gzip
import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import msgpack

from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.snapshot import Snapshot, SourceHealth, Totals, is_active

FORMAT = 1  # bumped when the encoding changes; a face refuses a board it cannot read
GZIP_LEVEL = 1  # fast: the body is mostly repeated keys, level 1 already takes it to about a tenth

# The columns a board packs, each with its array type and how it reads a user's record. Sorting
# and filtering read these; they are built with the same rule functions everything else uses.
COLUMNS: dict[str, tuple[str, Callable[[PerUserResourceUsage], float]]] = {
    "created_at": ("d", lambda u: u.session.created_at.timestamp()),
    "last_activity": ("d", lambda u: u.session.last_activity.timestamp()),
    "ref_count": ("q", lambda u: u.session.ref_count),
    "is_active": ("b", lambda u: int(is_active(u))),
    "total_requests": ("q", lambda u: u.requests.total_requests),
    "active_requests": ("q", lambda u: u.requests.active_requests),
    "avg_latency_ms": ("d", lambda u: u.requests.avg_latency_ms),
    "error_count": ("q", lambda u: u.requests.error_count),
    "per_user_functions_count": ("q", lambda u: u.memory.per_user_functions_count),
    "per_user_function_groups_count": ("q", lambda u: u.memory.per_user_function_groups_count),
    "exit_stack_size": ("q", lambda u: u.memory.exit_stack_size),
}
# Per-user facts that are not the record's own: its sources (a bit per source), when it is due to
# be evicted (NaN: not known or in flight), its lifecycle flags (a bit per name in flag_names).
EXTRA_COLUMNS = {"origins": "Q", "evicted_at": "d", "flags": "B"}

Row = tuple[bytes, tuple[float, ...]]


class FragmentCache:
    """Each user's JSON and column values, kept while its record object stays the same.

    The collector and the NAT source hand back the very same record for a user whose counters
    did not change, so most users cost a dictionary lookup per refresh, not a serialization.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._rows: dict[str, tuple[PerUserResourceUsage, Row]] = {}
        self.hits = 0
        self.misses = 0

    def rows(self, users: Sequence[PerUserResourceUsage]) -> list[Row]:
        """The rows of ``users``, in order; users no longer listed are forgotten."""
        previous, current = self._rows, {}
        out: list[Row] = []
        extractors = [extract for _, extract in COLUMNS.values()]
        get, hits = previous.get, 0
        for usage in users:
            hit = get(usage.user_id)
            if hit is not None and hit[0] is usage:
                hits += 1
                row = hit[1]
            else:
                row = (usage.model_dump_json().encode(), tuple([extract(usage) for extract in extractors]))
                hit = (usage, row)
            current[usage.user_id] = hit
            out.append(row)
        self.hits += hits
        self.misses += len(out) - hits
        self._rows = current
        return out


def _prefix(timestamp: datetime, total: int) -> bytes:
    """``{"timestamp":...,"total_active_users":N,"users":[`` exactly as pydantic writes the model."""
    empty = PerUserMonitorResponse.model_construct(timestamp=timestamp, total_active_users=total, users=[])
    text = empty.model_dump_json().encode()
    return text[: -len(b"]}")]


@dataclass(frozen=True, eq=False)
class Board:
    """One published refresh: every user's record as JSON in one body, and packed columns."""

    seq: int
    timestamp: datetime  # when the refresh happened
    published_at: datetime
    producer: str  # the producer process that published it (a new one restarts seq from 1)
    sources: list[SourceHealth]
    totals: Totals
    ids: list[str]
    body: bytes  # the whole PerUserMonitorResponse, what /monitor/users serves
    offsets: Sequence[int]  # start, end of each user's JSON within body
    columns: Mapping[str, Sequence[float]]
    parts: Mapping[str, list[tuple[str, bytes]]]  # merged users: each source's own record
    flag_names: tuple[str, ...]
    body_gzip: bytes
    # The producer's own counters at publishing time (refreshes, the recorder's observed totals).
    meta: Mapping[str, float] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # per-board results (orders, search)

    # -- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """How many users the board holds."""
        return len(self.ids)

    def __bool__(self) -> bool:
        """A board is a board, even one of nobody (``len`` counts its users)."""
        return True

    @cached_property
    def index(self) -> dict[str, int]:
        """Position of each user id."""
        return {uid: i for i, uid in enumerate(self.ids)}

    @property
    def etag(self) -> str:
        """A strong ETag of this publication (its producer and sequence number)."""
        return f'"{self.producer}-{self.seq}"'

    @property
    def stale_sources(self) -> list[str]:
        """Names of the sources whose users are their last good data, not fresh."""
        return [s.name for s in self.sources if s.state != "ok"]

    @cached_property
    def health_by_name(self) -> dict[str, SourceHealth]:
        """Each source's health at this refresh, by name."""
        return {s.name: s for s in self.sources}

    def fragment(self, i: int) -> memoryview:
        """The JSON of the ``i``-th user (a view into the body, not a copy)."""
        return memoryview(self.body)[self.offsets[2 * i] : self.offsets[2 * i + 1]]

    def usage_at(self, i: int) -> PerUserResourceUsage:
        """The ``i``-th user's record, decoded."""
        return PerUserResourceUsage.model_validate_json(bytes(self.fragment(i)))

    def user(self, user_id: str) -> PerUserResourceUsage | None:
        """One user's record, or None when no source reports it."""
        i = self.index.get(user_id)
        return None if i is None else self.usage_at(i)

    def origins(self, user_id: str) -> tuple[str, ...]:
        """Names of the sources that report the user, in source order."""
        i = self.index.get(user_id)
        if i is None:
            return ()
        mask = self.columns["origins"][i]
        return tuple(s.name for bit, s in enumerate(self.sources) if mask >> bit & 1)

    def user_is_stale(self, user_id: str) -> bool:
        """Whether any of the user's numbers come from a source that did not answer this time."""
        health = self.health_by_name
        return any(health[name].state != "ok" for name in self.origins(user_id))

    def user_parts(self, user_id: str) -> list[tuple[str, PerUserResourceUsage]]:
        """Each source's own record of a merged user ([] when one source reported it once)."""
        return [(name, PerUserResourceUsage.model_validate_json(doc)) for name, doc in self.parts.get(user_id, [])]

    def evicted_at(self, user_id: str) -> datetime | None:
        """``Snapshot.evicted_at`` of the user, as the producer worked it out."""
        i = self.index.get(user_id)
        value = self.columns["evicted_at"][i] if i is not None else math.nan
        return None if math.isnan(value) else datetime.fromtimestamp(value, UTC)

    def flags_at(self, i: int) -> list[str]:
        """The names of the lifecycle flags the ``i``-th user had when published."""
        bits = self.columns["flags"][i]
        return [name for bit, name in enumerate(self.flag_names) if bits >> bit & 1]

    def document(self, indices: Sequence[int], *, total: int | None = None) -> bytearray:
        """A NAT document of the users at ``indices`` (``total_active_users``: ``total``, default their count).

        Left open after the users' list (no ``]}``) so callers can add keys; ``close()`` ends it.
        """
        out = bytearray(_prefix(self.timestamp, len(indices) if total is None else total))
        for n, i in enumerate(indices):
            if n:
                out += b","
            out += self.fragment(i)
        return out

    # -- the wire -----------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The board as bytes for Redis (msgpack; arrays as their raw machine bytes)."""
        return msgpack.packb(
            {
                "format": FORMAT,
                "seq": self.seq,
                "timestamp": self.timestamp.isoformat(),
                "published_at": self.published_at.isoformat(),
                "producer": self.producer,
                "sources": [s.as_dict() for s in self.sources],
                "totals": self.totals.as_dict(),
                "ids": self.ids,
                "body": self.body,
                "offsets": _raw(self.offsets),
                "columns": {name: _raw(values) for name, values in self.columns.items()},
                "parts": {uid: [[name, doc] for name, doc in entries] for uid, entries in self.parts.items()},
                "flag_names": list(self.flag_names),
                "body_gzip": self.body_gzip,
                "meta": dict(self.meta),
            },
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, data: bytes) -> Board:
        """A board from ``encode``'s bytes; ValueError for one this version cannot read."""
        doc = msgpack.unpackb(data, raw=False)
        if doc.get("format") != FORMAT:
            raise ValueError(f"board format {doc.get('format')!r}, this version reads {FORMAT}")
        typecodes = {name: code for name, (code, _) in COLUMNS.items()} | EXTRA_COLUMNS
        return cls(
            seq=doc["seq"],
            timestamp=datetime.fromisoformat(doc["timestamp"]),
            published_at=datetime.fromisoformat(doc["published_at"]),
            producer=doc["producer"],
            sources=[SourceHealth.from_dict(s) for s in doc["sources"]],
            totals=Totals(**doc["totals"]),
            ids=doc["ids"],
            body=doc["body"],
            offsets=memoryview(doc["offsets"]).cast("Q"),
            columns={name: memoryview(raw).cast(typecodes[name]) for name, raw in doc["columns"].items()},
            parts={uid: [(name, raw) for name, raw in entries] for uid, entries in doc["parts"].items()},
            flag_names=tuple(doc["flag_names"]),
            body_gzip=doc["body_gzip"],
            meta=doc["meta"],
        )


def _raw(values: Sequence[float]) -> bytes:
    return values.tobytes() if isinstance(values, array) else bytes(memoryview(values))  # type: ignore[arg-type]


def board_empty(now: datetime) -> Board:
    """A board of nobody, for a face that has seen no producer publish yet."""
    body = _prefix(now, 0) + b"]}"
    return Board(
        seq=0,
        timestamp=now,
        published_at=now,
        producer="",
        sources=[],
        totals=Totals(users=0, active=0, in_flight=0, requests=0, errors=0, avg_latency_ms=0.0, exit_stack=0),
        ids=[],
        body=body,
        offsets=array("Q"),
        columns={name: array(code) for name, (code, _) in COLUMNS.items()}
        | {n: array(c) for n, c in EXTRA_COLUMNS.items()},
        parts={},
        flag_names=(),
        body_gzip=gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0),
    )


def close(document: bytearray) -> bytes:
    """End a ``Board.document`` with no more keys."""
    document += b"]}"
    return bytes(document)


def board_build(
    snapshot: Snapshot,
    *,
    producer: str,
    published_at: datetime,
    cache: FragmentCache,
    flags: Mapping[str, Iterable[str]] | None = None,
    flag_names: Sequence[str] = (),
    meta: Mapping[str, float] | None = None,
) -> Board:
    """Pack ``snapshot`` for publishing: one body, its offsets, the columns, and the users' flags."""
    rows = cache.rows(snapshot.users)
    prefix = _prefix(snapshot.timestamp, len(rows))
    offsets = array("Q")
    position = len(prefix)
    for n, (doc, _) in enumerate(rows):
        if n:
            position += 1  # the comma
        offsets.append(position)
        position += len(doc)
        offsets.append(position)
    body = prefix + b",".join(doc for doc, _ in rows) + b"]}"
    # One transposition of the rows' values (in C), then one array per column.
    values_by_column = list(zip(*(values for _, values in rows), strict=True)) if rows else [()] * len(COLUMNS)
    columns: dict[str, array] = {
        name: array(code, values) for (name, (code, _)), values in zip(COLUMNS.items(), values_by_column, strict=True)
    }
    # The origins tuples are shared per source (snapshot.merge): one mask per distinct tuple.
    bit_of_source = {s.name: 1 << n for n, s in enumerate(snapshot.sources)}
    masks: dict[tuple[str, ...], int] = {}
    origins = snapshot.origins
    for names in origins.values():
        if names not in masks:
            masks[names] = sum(bit_of_source[name] for name in names)
    ids = [u.user_id for u in snapshot.users]
    columns["origins"] = array("Q", [masks[origins[uid]] for uid in ids])
    columns["evicted_at"] = array("d", _evictions(snapshot))
    bit_of_flag = {name: 1 << n for n, name in enumerate(flag_names)}
    bits = array("B", bytes(len(rows)))
    if flags:
        index = {uid: i for i, uid in enumerate(ids)}
        for uid, names in flags.items():
            if uid in index:
                bits[index[uid]] = sum(bit_of_flag[f] for f in names if f in bit_of_flag)
    columns["flags"] = bits
    return Board(
        seq=snapshot.seq,
        timestamp=snapshot.timestamp,
        published_at=published_at,
        producer=producer,
        sources=snapshot.sources,
        totals=snapshot.totals,
        ids=ids,
        body=body,
        offsets=offsets,
        columns=columns,
        parts={
            uid: [(name, part.model_dump_json().encode()) for name, part in entries]
            for uid, entries in snapshot.parts.items()
        },
        flag_names=tuple(flag_names),
        body_gzip=gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0),
        meta=dict(meta or {}),
    )


def _evictions(snapshot: Snapshot) -> Iterable[float]:
    """``Snapshot.evicted_at`` of every user in epoch seconds (NaN: unknown); quick when no source knows its timeout."""
    if all(s.per_user_workflow_timeout is None for s in snapshot.sources):
        return (math.nan for _ in snapshot.users)
    due = (snapshot.evicted_at(u.user_id) for u in snapshot.users)
    return (math.nan if when is None else when.timestamp() for when in due)

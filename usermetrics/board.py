"""The board (sync, no Django): what the producer publishes per refresh, packed for many readers.

A ``Board`` is one refresh as the faces need it at any number of users: the NAT document of
every user serialized once (``body``, what ``/monitor/users`` serves, also gzip-compressed once),
where each user's JSON sits in it (``offsets``), and one packed column per sort key and filter
(``columns``), so sorting, filtering, search and paging never build a model per user. A page
decodes only its own users. ``board_wire`` carries it through Redis; in one process it is
handed over as it is. Compression is ISA-L's (``isal``), several times faster than zlib at the same ratio.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from itertools import count
from typing import Any

from isal import igzip
from usermetrics_nat.histogram import dense

from usermetrics.extras import NO_USAGE, Extras
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.snapshot import SourceHealth, SourcesHealth, Totals, is_active

GZIP_LEVEL = 1  # ISA-L's levels run 0-3; the body is mostly repeated keys, 1 takes it to about a tenth

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
# What NAT companions say of a user beyond its record (``extras.Extras``): latency percentiles over
# every request counted (-1: none counted, or no companion reports the user) and requests queued now.
EXTRAS_COLUMNS = {"p50_ms": "d", "p95_ms": "d", "p99_ms": "d", "queued": "q"}
NO_PERCENTILE = -1.0
# The rest of a user's extras, packed as columns too so that a refresh touches only the users that
# changed (no per-user document to write or read): whether any companion reports the user, its
# semaphores' sizes, time waiting and running, its workers (an index into ``worker_sets``), its
# LLM calls, their tokens and its tool calls. Its latency histogram and its per-model LLM counts
# sit in ``Board.detail`` (``detail_offsets``), as each user's JSON in the body.
EXTRAS_DETAIL_COLUMNS = {
    "has_extras": "B",
    "max_concurrency": "q",
    "wait_ms": "d",
    "run_ms": "d",
    "worker_set": "I",
    "llm_calls": "q",
    "tokens": "q",
    "tool_calls": "q",
}
# Per-user facts that are not the record's own: its sources (a bit per source), when it is due to
# be evicted (NaN: not known or in flight), its lifecycle flags (a bit per name in flag_names),
# and the companions' extras.
EXTRA_COLUMNS = {"origins": "Q", "evicted_at": "d", "flags": "B", **EXTRAS_COLUMNS, **EXTRAS_DETAIL_COLUMNS}
# A user's detail as packed in ``Board.detail``, unsigned 64-bit numbers: how many histogram
# pairs, the sparse (bucket, count) pairs, then per model its index in ``Board.models`` and its
# counts (``extras.Usage``).
DETAIL_CODE = "Q"


def body_prefix(timestamp: datetime, total: int) -> bytes:
    """A body's start: ``{"timestamp":...,"total_active_users":N,"users":[`` exactly as pydantic writes the model."""
    empty = PerUserMonitorResponse.model_construct(timestamp=timestamp, total_active_users=total, users=[])
    text = empty.model_dump_json().encode()
    return text[: -len(b"]}")]


@dataclass(frozen=True, eq=False)
class Board(SourcesHealth):
    """One published refresh: every user's record as JSON in one body, and packed columns."""

    seq: int
    timestamp: datetime  # when the refresh happened
    published_at: datetime
    producer: str  # the producer process that published it (a new one restarts seq from 1)
    sources: list[SourceHealth]
    totals: Totals
    ids: list[str]
    body: bytes  # the whole PerUserMonitorResponse, what /monitor/users serves
    offsets: Sequence[int]  # user i's JSON is body[offsets[i] : offsets[i + 1] - 1] (n + 1 of them)
    columns: Mapping[str, Sequence[float]]
    parts: Mapping[str, list[tuple[str, bytes]]]  # merged users: each source's own record
    flag_names: tuple[str, ...]
    body_gzip: bytes
    # The producer's own counters at publishing time (refreshes, the recorder's observed totals).
    meta: Mapping[str, float] = field(default_factory=dict)
    # Each user's latency histogram and per-model LLM counts (``DETAIL_CODE``): user i's are
    # detail[detail_offsets[i] : detail_offsets[i + 1]] (n + 1 offsets, in bytes).
    detail: bytes = b""
    detail_offsets: Sequence[int] = ()
    # The distinct sets of worker labels users run on; ``columns["worker_set"]`` indexes them (0: none).
    worker_sets: Sequence[tuple[str, ...]] = ((),)
    # The models users' LLM calls ran on; the detail's model indices point here.
    models: Sequence[str] = ()
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # per-board results (orders, search)

    # Results in ``memo`` that depend on the user ids alone: a board of the same users, in the
    # same order, as the one before it takes them over (selection's orders and search keys).
    ID_ORDER = ("order", "user_id")
    ID_RANK = "id_rank"  # each position's rank in user-id order (``orders``)
    FOLDED_IDS = "folded"
    IDS_ONLY = (ID_ORDER, ID_RANK, FOLDED_IDS)

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
        return dict(zip(self.ids, count()))

    def ids_carry(self, last: Board) -> None:
        """Take over what ``last``, a board of the same user ids in the same order, worked out from them alone.

        Its orders and search keys (``IDS_ONLY``) and its index: at a million users each costs
        a second of CPU and a hundred MB to work out again, while most refreshes keep the same users.
        """
        for key in self.IDS_ONLY:
            if key in last.memo:
                self.memo[key] = last.memo[key]
        if "index" in last.__dict__:  # the cached_property's value, where it was computed
            self.__dict__["index"] = last.__dict__["index"]

    @property
    def etag(self) -> str:
        """A strong ETag of this publication (its producer and sequence number)."""
        return f'"{self.producer}-{self.seq}"'

    def fragment(self, i: int) -> memoryview:
        """The JSON of the ``i``-th user (a view into the body, not a copy)."""
        return memoryview(self.body)[self.offsets[i] : self.offsets[i + 1] - 1]

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
        return self.any_stale(self.origins(user_id))

    def user_parts(self, user_id: str) -> list[tuple[str, PerUserResourceUsage]]:
        """Each source's own record of a merged user ([] when one source reported it once)."""
        return [(name, PerUserResourceUsage.model_validate_json(doc)) for name, doc in self.parts.get(user_id, [])]

    def extras_at(self, i: int) -> Extras | None:
        """The ``i``-th user's extras as packed, when NAT companions (or the meters of the demo) report any."""
        columns = self.columns
        if not self.detail_offsets or not columns["has_extras"][i]:
            return None
        numbers = memoryview(self.detail)[self.detail_offsets[i] : self.detail_offsets[i + 1]].cast(DETAIL_CODE)
        end = 1 + 2 * numbers[0]
        pairs, per_model, width = numbers[1:end], numbers[end:], 1 + len(NO_USAGE)
        return Extras(
            latency=dense(zip(pairs[::2], pairs[1::2], strict=True)),
            queued=int(columns["queued"][i]),
            max_concurrency=int(columns["max_concurrency"][i]),
            wait_ms=columns["wait_ms"][i],
            run_ms=columns["run_ms"][i],
            workers=tuple(self.worker_sets[columns["worker_set"][i]]),
            llm=tuple(
                (self.models[per_model[k]], tuple(per_model[k + 1 : k + width]))
                for k in range(0, len(per_model), width)
            ),
            tool_calls=int(columns["tool_calls"][i]),
        )

    def extras_of(self, user_id: str) -> dict[str, Any] | None:
        """The user's extras document (``Extras.as_dict``), when NAT companions report it."""
        i = self.index.get(user_id)
        extras = self.extras_at(i) if i is not None else None
        return extras.as_dict() if extras is not None else None

    def evicted_at(self, user_id: str) -> datetime | None:
        """``Snapshot.evicted_at`` of the user, as the producer worked it out."""
        i = self.index.get(user_id)
        value = self.columns["evicted_at"][i] if i is not None else math.nan
        return None if math.isnan(value) else datetime.fromtimestamp(value, UTC)

    def flags_set(self, flags: Mapping[str, Iterable[str]]) -> None:
        """Raise each listed user's flags (names in ``flag_names``; others ignored), before the board is published."""
        bit_of_flag = {name: 1 << n for n, name in enumerate(self.flag_names)}
        bits, index = self.columns["flags"], self.index
        for uid, names in flags.items():
            i = index.get(uid)
            if i is not None:
                bits[i] = sum(bit_of_flag[f] for f in names if f in bit_of_flag)  # type: ignore[index]

    def flags_at(self, i: int) -> list[str]:
        """The names of the lifecycle flags the ``i``-th user had when published."""
        bits = self.columns["flags"][i]
        return [name for bit, name in enumerate(self.flag_names) if bits >> bit & 1]

    def document(self, indices: Sequence[int], *, total: int | None = None) -> bytearray:
        """A NAT document of the users at ``indices`` (``total_active_users``: ``total``, default their count).

        Left open after the users' list (no ``]}``) so callers can add keys; ``document_end()`` ends it.
        """
        out = bytearray(body_prefix(self.timestamp, len(indices) if total is None else total))
        for n, i in enumerate(indices):
            if n:
                out += b","
            out += self.fragment(i)
        return out


def board_empty(now: datetime) -> Board:
    """A board of nobody, for a face that has seen no producer publish yet."""
    body = body_prefix(now, 0) + b"]}"
    return Board(
        seq=0,
        timestamp=now,
        published_at=now,
        producer="",
        sources=[],
        totals=Totals(users=0, active=0, in_flight=0, requests=0, errors=0, avg_latency_ms=0.0, exit_stack=0),
        ids=[],
        body=body,
        offsets=array("Q", [len(body) - len(b"]}")]),
        columns={name: array(code) for name, (code, _) in COLUMNS.items()}
        | {n: array(c) for n, c in EXTRA_COLUMNS.items()},
        parts={},
        flag_names=(),
        body_gzip=igzip.compress(body, GZIP_LEVEL, mtime=0),
    )


def document_end(document: bytearray) -> bytes:
    """End a ``Board.document`` with no more keys."""
    document += b"]}"
    return bytes(document)

"""A board's wire form (sync, no Django): ``Board`` to bytes for Redis and the child's socket, and back.

msgpack, the arrays as raw bytes, the body as its gzip form only, the whole deflated: a fraction
of the bytes to write, and a face inflates it in a few ms. In one process a board is handed over
as it is, never through here.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import datetime

import msgpack
from isal import igzip, isal_zlib

from usermetrics.board import COLUMNS, EXTRA_COLUMNS, Board
from usermetrics.snapshot import SourceHealth, Totals

FORMAT = 4  # bumped when the encoding changes; a face refuses a board it cannot read


def board_encode(board: Board) -> bytes:
    """The board as bytes for Redis: msgpack (arrays as their raw machine bytes), deflated.

    Deflating the whole costs about a millisecond at 10,000 users and cuts the bytes written
    to Redis (and read by every face) several times over: the columns are mostly zero bytes.
    """
    packed = msgpack.packb(
        {
            "format": FORMAT,
            "seq": board.seq,
            "timestamp": board.timestamp.isoformat(),
            "published_at": board.published_at.isoformat(),
            "producer": board.producer,
            "sources": [s.as_dict() for s in board.sources],
            "totals": board.totals.as_dict(),
            "ids": board.ids,
            "offsets": _raw(board.offsets),
            "columns": {name: _raw(values) for name, values in board.columns.items()},
            "parts": {uid: [[name, doc] for name, doc in entries] for uid, entries in board.parts.items()},
            "flag_names": list(board.flag_names),
            "body_gzip": board.body_gzip,
            "meta": dict(board.meta),
            "detail": board.detail,
            "detail_offsets": _raw(board.detail_offsets),
            "worker_sets": [list(labels) for labels in board.worker_sets],
            "models": list(board.models),
        },
        use_bin_type=True,
    )
    return isal_zlib.compress(packed, 1)


def board_decode(data: bytes, *, previous: Board | None = None) -> Board:
    """A board from ``board_encode``'s bytes; ValueError for one this version cannot read.

    ``previous``: the board this reader holds. When the new board's users are the same, in the same
    order (most refreshes), it shares the previous one's list of ids and takes over what was worked
    out from them (``Board.ids_carry``), so a face keeps one copy and works none of it out again.
    """
    try:
        doc = msgpack.unpackb(isal_zlib.decompress(data), raw=False)
    except (isal_zlib.error, ValueError) as exc:
        raise ValueError(f"not a board this version reads ({exc})") from None
    if doc.get("format") != FORMAT:
        raise ValueError(f"board format {doc.get('format')!r}, this version reads {FORMAT}")
    typecodes = {name: code for name, (code, _) in COLUMNS.items()} | EXTRA_COLUMNS
    ids = doc["ids"]
    same_ids = previous is not None and ids == previous.ids
    if same_ids:
        ids = previous.ids
    board = Board(
        seq=doc["seq"],
        timestamp=datetime.fromisoformat(doc["timestamp"]),
        published_at=datetime.fromisoformat(doc["published_at"]),
        producer=doc["producer"],
        sources=[SourceHealth.from_dict(s) for s in doc["sources"]],
        totals=Totals(**doc["totals"]),
        ids=ids,
        body=igzip.decompress(doc["body_gzip"]),  # the body travels compressed (an eighth of it)
        offsets=memoryview(doc["offsets"]).cast("Q"),
        columns={name: memoryview(raw).cast(typecodes[name]) for name, raw in doc["columns"].items()},
        parts={uid: [(name, raw) for name, raw in entries] for uid, entries in doc["parts"].items()},
        flag_names=tuple(doc["flag_names"]),
        body_gzip=doc["body_gzip"],
        meta=doc["meta"],
        detail=doc["detail"],
        detail_offsets=memoryview(doc["detail_offsets"]).cast("Q"),
        worker_sets=[tuple(labels) for labels in doc["worker_sets"]],
        models=doc["models"],
    )
    if same_ids:
        board.ids_carry(previous)
    return board


def _raw(values: Sequence[float]) -> bytes:
    return values.tobytes() if isinstance(values, array) else bytes(memoryview(values))  # type: ignore[arg-type]

"""Streamed CSV and JSON exports (async generators): rows go out in chunks, never all in memory.

Under ASGI, Django drains a *sync* iterator of a ``StreamingHttpResponse`` into memory first, so
every export here is an async iterator. CSV cells that a spreadsheet would run as a formula are
neutralised (OWASP's "CSV injection").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

# A spreadsheet reads a cell that starts with one of these as a formula (tab and CR too, per OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 500


def csv_safe(value: Any) -> Any:
    """``value`` for a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


async def _rows(rows: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]]) -> AsyncIterator[Sequence[Any]]:
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row


async def csv_stream(
    header: Sequence[str], rows: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]], *, chunk_rows: int = CHUNK_ROWS
) -> AsyncIterator[bytes]:
    """The CSV text of ``header`` and ``rows``, ``chunk_rows`` rows per chunk, cells neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_safe(h) for h in header])
    pending = 1
    async for row in _rows(rows):
        writer.writerow([csv_safe(v) for v in row])
        pending += 1
        if pending >= chunk_rows:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending or buffer.tell():
        yield buffer.getvalue().encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def json_stream(
    header: Sequence[str], rows: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]], *, chunk_rows: int = CHUNK_ROWS
) -> AsyncIterator[bytes]:
    """A JSON array of objects (``header`` as keys), ``chunk_rows`` objects per chunk."""
    parts: list[str] = ["["]
    first = True
    async for row in _rows(rows):
        doc = json.dumps(dict(zip(header, row, strict=True)), default=_json_default, separators=(",", ":"))
        parts.append(doc if first else ",\n" + doc)
        first = False
        if len(parts) >= chunk_rows:
            yield "".join(parts).encode()
            parts = []
    parts.append("]\n")
    yield "".join(parts).encode()

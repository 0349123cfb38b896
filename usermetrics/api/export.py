"""Streamed CSV and JSON exports (async views and async generators): rows go out in chunks.

Under ASGI, Django drains a *sync* iterator of a ``StreamingHttpResponse`` into memory first, so
every export here is an async iterator. CSV cells that a spreadsheet would run as a formula are
neutralised (OWASP's "CSV injection").
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from usermetrics import services
from usermetrics.conf import get_config
from usermetrics.selection import ENDED, ViewSpec

from .auth import api_access_required, history_disabled, history_required

# A spreadsheet reads a cell that starts with one of these as a formula (tab and CR too, per OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 500


def csv_safe(value: Any) -> Any:
    """``value`` for a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``.

    Spreadsheets skip leading blanks (``" =1+5"``, ``"\\n=1+4"``) and some read the full-width
    signs (U+FF1D, U+FF0B, U+FF0D, U+FF20) as their ASCII forms, so the first character after the blanks is
    compared in its NFKC form, which folds those (and the small-form variants) to ``= + - @``.
    """
    if isinstance(value, datetime):
        return value.isoformat()
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS):
        return "'" + value
    rest = value.lstrip()
    if rest and unicodedata.normalize("NFKC", rest[0]).startswith(FORMULA_STARTS):
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


def _stream(fmt: str, export: services.Export) -> HttpResponse:
    if fmt == "csv":
        body, content_type = csv_stream(export.columns, export.rows), "text/csv; charset=utf-8"
    else:
        body, content_type = json_stream(export.columns, export.rows), "application/json"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}.{fmt}"'
    return response


@never_cache
@require_GET
@api_access_required
async def export_users(request: HttpRequest, fmt: str) -> HttpResponse:
    """The list page's current view as CSV or JSON, streamed: its ``q``, ``state``, ``sort``, ``window``, every page."""
    spec = ViewSpec.from_params(request.GET)
    if spec.state == ENDED and not get_config().history.enabled:
        return history_disabled()
    return _stream(fmt, await services.users_export(spec=spec))


@never_cache
@require_GET
@api_access_required
@history_required
async def export_user_history(request: HttpRequest, user_id: str, fmt: str) -> HttpResponse:
    """One user's raw samples over ``?window=`` (default 24h) as CSV or JSON, streamed, oldest first."""
    return _stream(fmt, services.user_history_export(user_id=user_id, window=request.GET.get("window")))

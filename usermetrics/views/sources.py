"""The operator's pages besides the users (sync views): every source's health, and the JSON API's docs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache

from usermetrics import humanize, services
from usermetrics.conf import get_config
from usermetrics.windows import CHART_WINDOWS

from .context import board_context, page_config, time_cell


def _source_row(source: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One row of the sources table: the health document with its texts made."""
    success, size, duration = source["last_success"], source["last_body_bytes"], source["last_duration_ms"]
    shares, error_at = source["history"]["shares"], source["last_error_at"]
    return {
        **source,
        "success": time_cell(datetime.fromisoformat(success), now) if success else None,
        "error_at": time_cell(datetime.fromisoformat(error_at), now) if error_at else None,
        "size": humanize.bytes_words(size) if size is not None else "",
        "duration": humanize.latency_fit(duration) if duration is not None else "",
        "shares": [(state, humanize.share_words(shares.get(state, 0.0))) for state in ("ok", "stale", "down")],
        "worker_rows": [_worker_row(w, now) for w in source.get("workers") or []],
        "skipped_words": humanize.skipped_words(source.get("skipped") or {}),
    }


def _worker_row(worker: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One NAT worker of a companion stream (``Workers.summary``) with its texts made (workers.js writes the same)."""
    silent = worker.get("silent_s")
    return {
        **worker,
        "state_words": humanize.worker_state_words(worker["state"]),
        "started": time_cell(datetime.fromisoformat(worker["started_at"]), now),
        "last_report": humanize.ago(now - timedelta(seconds=silent), now) if silent is not None else "",
    }


@never_cache
@staff_member_required
def sources_page(request: HttpRequest) -> HttpResponse:
    """Every source: its state, users, last success and error, fetch time and size, and its history over a window."""
    board = services.board_get()
    window = request.GET.get("window")
    doc = services.history_or_none(services.sources_page_get, window=window)
    unavailable = doc is None
    if doc is None:  # the database unreachable: the health now, from memory
        doc = services.sources_page_get(window=window, history=False)
    now = board.timestamp
    rows = [_source_row(source, now) for source in doc["sources"]]
    context = {
        **board_context(request, board, history_unavailable=unavailable),
        "title": "Sources",
        "rows": rows,
        "down_after": humanize.duration_words(get_config().source_down_after),
        "window": doc["window"],
        "history_enabled": doc["history_enabled"],
        "window_links": [
            {"name": name, "url": "?" + urlencode({"window": name}), "current": name == doc["window"]}
            for name in CHART_WINDOWS
        ],
        "page_config": page_config(
            board,
            page="sources",
            ws="/ws/monitor/",
            sources_url=reverse("usermetrics:api-sources"),
            window=doc["window"],
            doc=doc,
        ),
    }
    return TemplateResponse(request, "usermetrics/sources.html", context)


@never_cache
@staff_member_required
def api_docs(request: HttpRequest) -> HttpResponse:
    """The JSON API's OpenAPI schema, browsable (Swagger UI, vendored; works offline under the CSP)."""
    context = {
        **board_context(request, services.board_get()),
        "title": "JSON API",
        "schema_url": reverse("usermetrics:api-openapi"),
    }
    return TemplateResponse(request, "usermetrics/api_docs.html", context)

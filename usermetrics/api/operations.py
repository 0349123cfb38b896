"""The JSON API's operations (async, django-ninja): one per endpoint, each delegating to the view that answers it.

Access, status codes, headers and bodies stay the views' own (``live``, ``history``,
``export``): an ``HttpResponse`` passes through ninja untouched. What ninja takes from here is
the schema: each operation's parameters and the pydantic classes it returns (NAT's own for
NAT's endpoint, ``schemas`` and ``history_schemas`` for ours). ``openapi`` mounts the router.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema

from usermetrics.metrics import PerUserMonitorResponse

from . import export, history, live
from .history_schemas import ListWindowDoc, OverviewHistoryDoc, SparklinesDoc, UserHistoryDoc
from .schemas import ErrorDetail, SampleExportRow, SourcesDoc, StatusDoc, UserDoc, UserExportRow

router = Router()

ERRORS: dict[int, Any] = {401: ErrorDetail}
LIVE_ERRORS: dict[int, Any] = {**ERRORS, 503: ErrorDetail}
HISTORY_ERRORS: dict[int, Any] = {**ERRORS, 404: ErrorDetail}
WINDOW = Query(None, description="15m | 1h | 24h | 7d (default 1h; anything else falls back to it)")
IDS = Query(None, description="user ids, repeated: ?user_id=a&user_id=b (at most 500)")

NO_CACHE = {"Cache-Control": {"schema": {"type": "string"}, "description": "no-cache: always fresh"}}


def _content(media: str, schema: dict[str, Any], description: str, **headers: Any) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}, "headers": {**NO_CACHE, **headers}}


def _array_of(model: type[Any]) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{model.__name__}"}}


@router.get(
    "/monitor/users",
    response={200: PerUserMonitorResponse, 304: None, **LIVE_ERRORS},
    url_name="monitor-users",
    tags=["nat"],
    summary="NAT's GET /monitor/users, as a drop-in",
    description=(
        "All users, exactly NAT's PerUserMonitorResponse; `?user_id=` gives that user, or an empty list when"
        " unknown, as NAT does. The whole document carries a strong `ETag` per refresh (`If-None-Match` gives"
        " `304`) and is gzip-compressed when `Accept-Encoding` allows. Requests with a bearer token are answered"
        " from the published board by an ASGI fast path before Django, with the same rule and bytes."
    ),
    openapi_extra={
        "parameters": [
            {"in": "header", "name": "If-None-Match", "required": False, "schema": {"type": "string"}},
            {"in": "header", "name": "Accept-Encoding", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            200: {"headers": {**NO_CACHE, "ETag": {"schema": {"type": "string"}}}},
            304: {"description": "Not modified: the board named by If-None-Match is still the latest"},
        },
    },
)
async def monitor_users(request: HttpRequest, user_id: str | None = None) -> HttpResponse:
    """NAT's endpoint (``live.monitor_users``)."""
    return await live.monitor_users(request)


@router.get(
    "/api/users/{userid:user_id}",
    response={200: UserDoc, 404: ErrorDetail, **LIVE_ERRORS},
    url_name="api-user",
    tags=["live"],
    summary="One user's PerUserResourceUsage, with a NAT companion's figures",
    description="A live user's merged record, or an ended user's last known values"
    " (header `Usermetrics-User-State: ended`, with `Usermetrics-Ended-At`). `latency` (p50/p95/p99 and"
    " the histogram's buckets), `queue` and `workers` are what NAT companions say of the user; null when"
    " none reports it. The body still validates as NAT's PerUserResourceUsage.",
    openapi_extra={
        "responses": {
            200: {
                "headers": {
                    "Usermetrics-User-State": {"schema": {"type": "string", "enum": ["live", "ended"]}},
                    "Usermetrics-Ended-At": {"schema": {"type": "string", "format": "date-time"}},
                }
            }
        }
    },
)
async def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user (``live.user_detail``)."""
    return await live.user_detail(request, user_id)


@router.get(
    "/api/status",
    response={200: StatusDoc, 503: StatusDoc, 401: ErrorDetail},
    url_name="api-status",
    tags=["live"],
    summary="Sources, producer and last refresh",
    description="503 (with the same document) while no producer publishes.",
)
async def status(request: HttpRequest) -> HttpResponse:
    """The status (``live.status``)."""
    return await live.status(request)


@router.get(
    "/api/sources",
    response={200: SourcesDoc, **ERRORS},
    url_name="api-sources",
    tags=["live"],
    summary="Every source's health now and over a window",
    description="State, users, last success and error, fetch duration and body size; with the history on,"
    " the recorded samples (a row per state change, else one per SAMPLE_INTERVAL) and the share of the"
    " window spent ok / stale / down.",
)
async def sources(request: HttpRequest, window: str | None = WINDOW) -> HttpResponse:
    """The sources (``history.sources``)."""
    return await history.sources(request)


@router.get(
    "/api/users/{userid:user_id}/history",
    response={200: UserHistoryDoc, **HISTORY_ERRORS},
    url_name="api-user-history",
    tags=["history"],
    summary="One user's chart series, window stats, flags and lives",
)
async def user_history(request: HttpRequest, user_id: str, window: str | None = WINDOW) -> HttpResponse:
    """One user's history (``history.user_history``)."""
    return await history.user_history(request, user_id)


def _export_doc(model: type[Any], what: str) -> dict[str, Any]:
    return {
        "responses": {
            200: _content(
                "application/json",
                _array_of(model),
                what,
                **{"Content-Disposition": {"schema": {"type": "string"}}},
            )
        }
    }


def _csv_doc(what: str) -> dict[str, Any]:
    return {
        "responses": {
            200: _content(
                "text/csv", {"type": "string"}, what, **{"Content-Disposition": {"schema": {"type": "string"}}}
            )
        }
    }


@router.get(
    "/api/users/{userid:user_id}/history.csv",
    response={200: str, **HISTORY_ERRORS},
    url_name="api-user-history-csv",
    tags=["exports"],
    summary="One user's raw samples as CSV, streamed",
    openapi_extra=_csv_doc("the samples of the window (default 24h), oldest first; columns as the JSON export"),
)
async def user_history_csv(request: HttpRequest, user_id: str, window: str | None = WINDOW) -> HttpResponse:
    """One user's samples as CSV (``export.export_user_history``)."""
    return await export.export_user_history(request, user_id, "csv")


@router.get(
    "/api/users/{userid:user_id}/history.json",
    response={200: list[SampleExportRow], **HISTORY_ERRORS},
    url_name="api-user-history-json",
    tags=["exports"],
    summary="One user's raw samples as JSON, streamed",
    openapi_extra=_export_doc(SampleExportRow, "the samples of the window (default 24h), oldest first"),
)
async def user_history_json(request: HttpRequest, user_id: str, window: str | None = WINDOW) -> HttpResponse:
    """One user's samples as JSON (``export.export_user_history``)."""
    return await export.export_user_history(request, user_id, "json")


@router.get(
    "/api/overview/history",
    response={200: OverviewHistoryDoc, **HISTORY_ERRORS},
    url_name="api-overview-history",
    tags=["history"],
    summary="Everyone's chart series and window stats",
)
async def overview_history(request: HttpRequest, window: str | None = WINDOW) -> HttpResponse:
    """The overview (``history.overview_history``)."""
    return await history.overview_history(request)


@router.get(
    "/api/sparklines",
    response={200: SparklinesDoc, 400: ErrorDetail, **HISTORY_ERRORS},
    url_name="api-sparklines",
    tags=["history"],
    summary="Requests/min sparklines of a page of users",
)
async def sparklines(
    request: HttpRequest, window: str | None = WINDOW, user_id: list[str] | None = IDS
) -> HttpResponse:
    """Sparklines (``history.sparklines``)."""
    return await history.sparklines(request)


@router.get(
    "/api/list/window",
    response={200: ListWindowDoc, 400: ErrorDetail, **HISTORY_ERRORS},
    url_name="api-users-window",
    tags=["history"],
    summary="Rates, flags, sparklines, tokens and cost of a page of users",
)
async def users_window(
    request: HttpRequest,
    window: str | None = Query(None, description="5m | 1h | 24h (default 1h)"),
    user_id: list[str] | None = IDS,
) -> HttpResponse:
    """The list rows' windows (``history.users_window``)."""
    return await history.users_window(request)


class ListParams(Schema):
    """The list page's view (``selection.ViewSpec``), as the exports take it: every page of it."""

    q: str | None = Field(None, description="part of the user id or name")
    state: str | None = Field(None, description="active | idle | errors | stuck | rising | erroring | ended")
    sort: str | None = Field(None, description="a seed field name, `-` first for descending")
    window: str | None = Field(None, description="5m | 1h | 24h")


@router.get(
    "/api/export/users.csv",
    response={200: str, **HISTORY_ERRORS},
    url_name="api-export-users-csv",
    summary="The list page's view as CSV, every page, streamed",
    openapi_extra=_csv_doc("one line per user, columns as the JSON export"),
    tags=["exports"],
)
async def export_users_csv(request: HttpRequest, view: Query[ListParams]) -> HttpResponse:
    """The list as CSV (``export.export_users``)."""
    return await export.export_users(request, "csv")


@router.get(
    "/api/export/users.json",
    response={200: list[UserExportRow], **HISTORY_ERRORS},
    url_name="api-export-users-json",
    summary="The list page's view as JSON, every page, streamed",
    openapi_extra=_export_doc(UserExportRow, "one object per user, in the page's order"),
    tags=["exports"],
)
async def export_users_json(request: HttpRequest, view: Query[ListParams]) -> HttpResponse:
    """The list as JSON (``export.export_users``)."""
    return await export.export_users(request, "json")

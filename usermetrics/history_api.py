"""History JSON API and streamed exports (async views): series for charts, window rates, flags, CSV/JSON."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from usermetrics import feed, history, services
from usermetrics.auth import api_access_required
from usermetrics.export import csv_stream, json_stream
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.models import UserSample

# Columns of the list export, in order (the HTML list shows the same facts).
USER_COLUMNS = (
    "user_id",
    "state",
    "sources",
    "created_at",
    "last_activity",
    "ended_at",
    "in_flight",
    "total_requests",
    "error_count",
    "avg_latency_ms",
    "functions",
    "function_groups",
    "exit_stack",
    "window",
    "requests_per_min",
    "error_rate",
    "window_latency_ms",
    "flags",
)
HISTORY_COLUMNS = (
    "ts",
    "life",
    "in_flight",
    "total_requests",
    "error_count",
    "avg_latency_ms",
    "functions",
    "function_groups",
    "exit_stack",
    "requests",
    "errors",
    "window_latency_ms",
)
CHUNK = 1000


def _bad(detail: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _disabled() -> JsonResponse:
    return _bad("The history store is disabled (USERMETRICS['HISTORY']['ENABLED']).", 404)


def _history_window(request: HttpRequest, default: str) -> tuple[str, timedelta] | JsonResponse:
    """The ``?window=`` (name, length) of a history view, or the error to answer with instead.

    History switched off is a 404; an unknown window name is a 400.
    """
    if not history.history_enabled():
        return _disabled()
    name = request.GET.get("window") or default
    try:
        return name, history.window_parse(name)
    except ValueError as exc:
        return _bad(str(exc))


def _flag_dicts(flags: Sequence[history.Flag]) -> list[dict[str, str]]:
    return [asdict(f) for f in flags]


@never_cache
@require_GET
@api_access_required
async def user_history(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user's chart series, window stats, lifecycle flags and lives: ``?window=15m|1h|24h|7d``."""
    parsed = _history_window(request, "1h")
    if isinstance(parsed, HttpResponse):
        return parsed
    _, window = parsed
    doc = await sync_to_async(history.user_series)(user_id=user_id, window=window)
    snapshot = await services.snapshot_get()
    usage = snapshot.by_id.get(user_id)
    if usage is None and not doc["lives"]:
        return JsonResponse({"detail": "No such user in any source or in the history.", "user_id": user_id}, status=404)
    timeout = history.user_timeout(snapshot.origins.get(user_id, ()), history.source_timeouts(services.get_service()))
    stats, flags = await sync_to_async(history.user_window)(
        user_id=user_id, usage=usage, window=window, timeout=timeout
    )
    doc["stats"] = stats.as_dict()
    doc["flags"] = _flag_dicts(flags)
    doc["ended"] = None
    if usage is None:
        ended = await sync_to_async(history.ended_user_get)(user_id=user_id)
        if ended is not None:
            doc["ended"] = {
                "ended_at": ended.ended_at.isoformat(),
                "label": ended.ended_ago(),
                "last": ended.usage.model_dump(mode="json"),
            }
    return JsonResponse(doc)


@never_cache
@require_GET
@api_access_required
async def overview_history(request: HttpRequest) -> HttpResponse:
    """Everyone's chart series and window stats: ``?window=15m|1h|24h|7d``."""
    parsed = _history_window(request, "1h")
    if isinstance(parsed, HttpResponse):
        return parsed
    _, window = parsed
    doc = await sync_to_async(history.overview_series)(window=window)
    doc["stats"] = (await sync_to_async(history.overview_stats)(window=window)).as_dict()
    return JsonResponse(doc)


@never_cache
@require_GET
@api_access_required
async def sparklines(request: HttpRequest) -> HttpResponse:
    """Requests/min series for the list's sparklines: ``?window=1h&user_id=a&user_id=b`` (at most 500 ids)."""
    parsed = _history_window(request, "1h")
    if isinstance(parsed, HttpResponse):
        return parsed
    name, window = parsed
    ids = request.GET.getlist("user_id")
    if len(ids) > SPARKLINE_MAX_USERS:
        return _bad(f"At most {SPARKLINE_MAX_USERS} user_id values per request.")
    users = await sync_to_async(history.sparklines)(user_ids=ids, window=window)
    return JsonResponse({"window": name, "users": users})


SPARKLINE_MAX_USERS = 500


@never_cache
@require_GET
@api_access_required
async def users_window(request: HttpRequest) -> HttpResponse:
    """Rates, lifecycle flags and sparklines of the list's visible rows: ``?window=1h&user_id=a&user_id=b``.

    The list page asks for this every 30 s (and when rows change) instead of the feed carrying it,
    so the websocket ticks stay free of database reads. At most 500 ids, as for sparklines.
    """
    if not history.history_enabled():
        return _disabled()
    spec = feed.ViewSpec.from_params(request.GET)  # the list's own window names and default
    ids = request.GET.getlist("user_id")
    if len(ids) > SPARKLINE_MAX_USERS:
        return _bad(f"At most {SPARKLINE_MAX_USERS} user_id values per request.")
    snapshot = await services.snapshot_get()
    timeouts = history.source_timeouts(services.get_service())
    rows = await sync_to_async(history.rows_window)(
        snapshot, user_ids=ids, window=history.window_parse(spec.window), timeouts=timeouts
    )
    return JsonResponse({"window": spec.window, "users": {uid: row.as_dict() for uid, row in rows.items()}})


# --- exports ---------------------------------------------------------------------------------------


def _stream(fmt: str, header: Sequence[str], rows: AsyncIterator[Sequence[Any]], filename: str) -> HttpResponse:
    if fmt == "csv":
        response = StreamingHttpResponse(csv_stream(header, rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(json_stream(header, rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


def _user_row(
    usage: PerUserResourceUsage,
    *,
    state: str,
    sources: Sequence[str],
    window: str,
    stats: history.WindowStats | None,
    flags: Sequence[history.Flag] = (),
    ended_at: Any = None,
) -> tuple[Any, ...]:
    s, r, m = usage.session, usage.requests, usage.memory
    return (
        usage.user_id,
        state,
        " ".join(sources),
        s.created_at,
        s.last_activity,
        ended_at,
        s.ref_count,
        r.total_requests,
        r.error_count,
        r.avg_latency_ms,
        m.per_user_functions_count,
        m.per_user_function_groups_count,
        m.exit_stack_size,
        window if stats is not None else "",
        stats.requests_per_min if stats is not None else None,
        stats.error_rate if stats is not None else None,
        stats.latency_ms if stats is not None else None,
        " ".join(f.name for f in flags),
    )


@never_cache
@require_GET
@api_access_required
async def export_users(request: HttpRequest, fmt: str) -> HttpResponse:
    """The list page's current view as CSV or JSON, streamed: its ``q``, ``state``, ``sort``, ``window``, every page.

    The parameters are read by ``feed.ViewSpec`` and the users chosen by ``feed.view_filter``, the
    same code as the HTML list, so the export holds the page's users in the page's order.
    """
    spec = feed.ViewSpec.from_params(request.GET)
    enabled = history.history_enabled()
    window = history.window_parse(spec.window)
    labels = await feed.labels_get()
    if spec.state == feed.ENDED:
        if not enabled:
            return _disabled()
        return _stream(
            fmt,
            USER_COLUMNS,
            _ended_rows(history.ended_users_view(q=spec.q, sort=spec.sort, labels=labels)),
            "users-ended",
        )
    snapshot = await services.snapshot_get()
    timeouts = history.source_timeouts(services.get_service())
    all_flags: dict[str, list[history.Flag]] | None = None
    if spec.state in feed.FLAG_STATES:
        all_flags = await sync_to_async(history.users_flags)(snapshot, timeouts=timeouts)
    names = {uid: [f.name for f in fl] for uid, fl in (all_flags or {}).items()}
    users = feed.view_filter(snapshot, spec, labels=labels, flags=names)

    async def rows() -> AsyncIterator[tuple[Any, ...]]:
        for start in range(0, len(users), CHUNK):
            chunk = users[start : start + CHUNK]
            stats: dict[str, history.WindowStats] = {}
            if enabled:
                ids = [u.user_id for u in chunk]
                stats = await sync_to_async(history.window_stats)(window=window, user_ids=ids)
            empty = history.WindowStats(seconds=window.total_seconds())
            for usage in chunk:
                uid = usage.user_id
                user_stats = stats.get(uid, empty) if enabled else None
                if all_flags is not None:
                    flags = all_flags.get(uid, [])
                else:
                    timeout = history.user_timeout(snapshot.origins.get(uid, ()), timeouts)
                    flags = history.user_flags(usage, stats=user_stats, timeout=timeout)
                yield _user_row(
                    usage,
                    state="active" if usage.session.is_active else "idle",
                    sources=snapshot.origins.get(uid, ()),
                    window=spec.window,
                    stats=user_stats,
                    flags=flags,
                )

    return _stream(fmt, USER_COLUMNS, rows(), "users")


async def _ended_rows(qs: Any) -> AsyncIterator[tuple[Any, ...]]:
    async for row in qs.aiterator(chunk_size=CHUNK):
        ended = history.ended_user(row)
        yield _user_row(
            ended.usage, state="ended", sources=ended.sources, window="", stats=None, ended_at=ended.ended_at
        )


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@never_cache
@require_GET
@api_access_required
async def export_user_history(request: HttpRequest, user_id: str, fmt: str) -> HttpResponse:
    """One user's raw samples over ``?window=`` (default 24h) as CSV or JSON, streamed, oldest first."""
    parsed = _history_window(request, "24h")
    if isinstance(parsed, HttpResponse):
        return parsed
    _, window = parsed
    start = history.utcnow() - window
    # Model instances, not values_list(): Django's aiterator() runs a values_list() query on the
    # event loop thread (SynchronousOnlyOperation); the model iterable is fetched in a thread.
    qs = (
        UserSample.objects.filter(life__user_id=user_id, ts__gt=start)
        .annotate(life_number=F("life__life"))
        .defer("life_id", "d_exit_stack", "d_functions")
        .order_by("ts", "life_number")
    )

    async def rows() -> AsyncIterator[tuple[Any, ...]]:
        async for s in qs.aiterator(chunk_size=CHUNK):
            latency = round(s.d_latency_ms / s.d_requests, 2) if s.d_requests > 0 else None
            yield (
                s.ts, s.life_number, s.ref_count, s.total_requests, s.error_count, s.avg_latency_ms,
                s.functions, s.groups, s.exit_stack, s.d_requests, s.d_errors, latency,
            )  # fmt: skip

    safe = _UNSAFE_FILENAME.sub("_", user_id)[:80] or "user"
    return _stream(fmt, HISTORY_COLUMNS, rows(), f"history-{safe}")

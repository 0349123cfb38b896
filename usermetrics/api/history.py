"""History JSON API (async views): chart series, window rates and flags, sparklines."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from usermetrics import services

from .auth import api_access_required, history_required, json_error


def _user_ids(request: HttpRequest) -> list[str] | JsonResponse:
    ids = request.GET.getlist("user_id")
    if len(ids) > services.MAX_USERS:
        return json_error(f"At most {services.MAX_USERS} user_id values per request.", 400)
    return ids


@never_cache
@require_GET
@api_access_required
@history_required
async def user_history(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user's chart series, window stats, lifecycle flags and lives: ``?window=15m|1h|24h|7d``."""
    doc = await services.user_history_doc(user_id=user_id, window=request.GET.get("window"))
    if doc is None:
        return json_error("No such user in any source or in the history.", 404, user_id=user_id)
    return JsonResponse(doc)


@never_cache
@require_GET
@api_access_required
@history_required
async def overview_history(request: HttpRequest) -> HttpResponse:
    """Everyone's chart series and window stats: ``?window=15m|1h|24h|7d``."""
    return JsonResponse(await services.overview_history_doc(window=request.GET.get("window")))


@never_cache
@require_GET
@api_access_required
@history_required
async def sparklines(request: HttpRequest) -> HttpResponse:
    """Requests/min series for the list's sparklines: ``?window=1h&user_id=a&user_id=b`` (at most 500 ids)."""
    ids = _user_ids(request)
    if isinstance(ids, JsonResponse):
        return ids
    return JsonResponse(await services.sparklines_doc(user_ids=ids, window=request.GET.get("window")))


@never_cache
@require_GET
@api_access_required
@history_required
async def users_window(request: HttpRequest) -> HttpResponse:
    """Rates, lifecycle flags and sparklines of the list's visible rows: ``?window=1h&user_id=a&user_id=b``.

    The list page asks for this every 30 s (and when rows change) instead of the feed carrying it,
    so the websocket ticks stay free of database reads. At most 500 ids, as for sparklines.
    """
    ids = _user_ids(request)
    if isinstance(ids, JsonResponse):
        return ids
    return JsonResponse(await services.rows_window_doc(user_ids=ids, window=request.GET.get("window")))


@never_cache
@require_GET
@api_access_required
async def sources(request: HttpRequest) -> HttpResponse:
    """Every source's health now and, with the history on, its samples and state shares over ``?window=``."""
    return JsonResponse(await services.sources_doc(window=request.GET.get("window")))

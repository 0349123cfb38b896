"""Live JSON API (async views): NAT's ``/monitor/users``, one user, and the status, served from the board.

``/monitor/users`` is a cache's answer: the body the producer serialized (and gzip-compressed)
once per refresh, a strong ``ETag`` per published board (``If-None-Match`` -> 304), and
``?user_id=`` cut out of the board without serializing the document. While no producer
publishes, the live endpoints answer 503 with a JSON body instead of stale data.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from usermetrics import services

from .auth import api_access_required, json_error, producer_required

JSON = "application/json"


def _accepts_gzip(request: HttpRequest) -> bool:
    """Whether the client takes a gzip body (``Accept-Encoding: gzip``, not refused with q=0)."""
    for item in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _matches(request: HttpRequest, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or ``*``)."""
    wanted = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, "*") for tag in wanted.split(",")) if wanted else False


@never_cache
@require_GET
@api_access_required
@producer_required
async def monitor_users(request: HttpRequest) -> HttpResponse:
    """NAT's ``GET /monitor/users[?user_id=ID]``: a PerUserMonitorResponse, unknown id -> empty list."""
    board = services.board_get()
    user_id = request.GET.get("user_id")
    if user_id is not None:
        position = board.index.get(user_id)
        body = board.document([position] if position is not None else [])
        body += b"]}"
        return HttpResponse(bytes(body), content_type=JSON)
    if _matches(request, board.etag):
        response = HttpResponse(status=304)
    elif _accepts_gzip(request):
        response = HttpResponse(board.body_gzip, content_type=JSON)
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(board.body, content_type=JSON)
    response["ETag"] = board.etag
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


@never_cache
@require_GET
@api_access_required
@producer_required
async def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user's PerUserResourceUsage (an ended user's last known values, marked so), or a JSON 404."""
    found = await sync_to_async(services.user_lookup)(services.board_get(), user_id)
    if found is None:
        return json_error("No such user in any source or in the history.", 404, user_id=user_id)
    response = HttpResponse(found.usage.model_dump_json(), content_type=JSON)
    # The body stays exactly NAT's model; whether the user is live or ended travels in headers.
    response["Usermetrics-User-State"] = "ended" if found.ended is not None else "live"
    if found.ended is not None:
        response["Usermetrics-Ended-At"] = found.ended.ended_at.isoformat()
    return response


@never_cache
@require_GET
@api_access_required
async def status(request: HttpRequest) -> HttpResponse:
    """Sources with their health, the producer's state, the last refresh, the interval and the version.

    503 while no producer publishes (with the same body: what is known, and since when).
    """
    doc = services.source_status()
    return JsonResponse(doc, status=200 if services.producer_state().publishing else 503)

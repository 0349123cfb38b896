"""Live JSON API (async views): NAT's ``/monitor/users``, one user, and the status, served from the board.

``/monitor/users`` is a cache's answer: the body the producer serialized (and gzip-compressed)
once per refresh, a strong ``ETag`` per published board (``If-None-Match`` -> 304), and
``?user_id=`` cut out of the board without serializing the document. While no producer
publishes, the live endpoints answer 503 with a JSON body instead of stale data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from usermetrics import services
from usermetrics.board import Board, document_end

from .auth import api_access_required, json_error, producer_required

JSON = "application/json"
# The keys ``/api/users/{id}`` adds to NAT's record (``figures.extras_public``, and the ``cost`` of its
# ``llm``: ``services.user_cost_get``), null without a companion.
EXTRAS_KEYS = ("latency", "queue", "workers", "llm", "cost", "tool_calls")


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value takes a gzip body (``gzip`` or ``*``, not refused with q=0)."""
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


@dataclass(frozen=True)
class Answer:
    """What ``/monitor/users`` answers: a status, a body and the headers that depend on the request."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


def monitor_users_answer(
    board: Board, *, user_id: str | None, if_none_match: str = "", accept_encoding: str = ""
) -> Answer:
    """The one rule of the answer (the Django view and the ASGI fast path both send it).

    ``?user_id=``: that user cut out of the board (an empty list when unknown). Otherwise the
    published body, gzip-compressed when the client takes it, with a strong ETag per board and
    304 when ``If-None-Match`` names it.
    """
    if user_id is not None:
        position = board.index.get(user_id)
        return Answer(200, document_end(board.document([position] if position is not None else [])), ())
    tags = (board.etag, "*")
    cached = (("ETag", board.etag), ("Vary", "Accept-Encoding"))
    if if_none_match and any(tag.strip() in tags for tag in if_none_match.split(",")):
        return Answer(304, b"", cached)
    if accepts_gzip(accept_encoding):
        return Answer(200, board.body_gzip, (*cached, ("Content-Encoding", "gzip")))
    return Answer(200, board.body, cached)


@never_cache
@require_GET
@api_access_required
@producer_required
async def monitor_users(request: HttpRequest) -> HttpResponse:
    """NAT's ``GET /monitor/users[?user_id=ID]``: a PerUserMonitorResponse, unknown id -> empty list."""
    answer = monitor_users_answer(
        services.board_get(),
        user_id=request.GET.get("user_id"),
        if_none_match=request.headers.get("If-None-Match", ""),
        accept_encoding=request.headers.get("Accept-Encoding", ""),
    )
    response = HttpResponse(answer.body, status=answer.status, content_type=JSON)
    for name, value in answer.headers:
        if name == "Vary":
            patch_vary_headers(response, [value])
        else:
            response[name] = value
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
    # NAT's model with what a companion adds (``figures.extras_public``; null keys without one): a client
    # of NAT's own PerUserResourceUsage still reads it. Whether the user is live or ended travels in headers.
    extras = found.extras or {}
    if found.extras is not None:
        extras = {**extras, "cost": await services.user_cost_get(board=found.board, user_id=user_id)}
    added = {key: extras.get(key) for key in EXTRAS_KEYS}
    body = found.usage.model_dump_json().encode()[:-1] + b"," + json.dumps(added, separators=(",", ":"))[1:].encode()
    response = HttpResponse(body, content_type=JSON)
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

"""Live JSON API (async views): NAT's ``/monitor/users``, one user, and the service status."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from usermetrics import services

from .auth import api_access_required, json_error

JSON = "application/json"


@never_cache
@require_GET
@api_access_required
async def monitor_users(request: HttpRequest) -> HttpResponse:
    """NAT's ``GET /monitor/users[?user_id=ID]``: a PerUserMonitorResponse, unknown id -> empty list."""
    user_id = request.GET.get("user_id")
    if user_id is None:
        snapshot = await services.snapshot_get()
        return HttpResponse(snapshot.json_all, content_type=JSON)
    response = await services.user_metrics_list(user_id=user_id)
    return HttpResponse(response.model_dump_json(), content_type=JSON)


@never_cache
@require_GET
@api_access_required
async def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user's PerUserResourceUsage (an ended user's last known values, marked so), or a JSON 404."""
    snapshot = await services.snapshot_get()
    found = await sync_to_async(services.user_lookup)(snapshot, user_id)
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
    """Sources with their health, the last refresh time, the refresh interval and the version."""
    return JsonResponse(await services.source_status())

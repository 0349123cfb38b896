"""JSON API (async views): NAT's /monitor/users, one user, and the service status."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from usermetrics import services
from usermetrics.auth import api_access_required

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
    """One user's PerUserResourceUsage, or a JSON 404."""
    usage = await services.user_metrics_get(user_id=user_id)
    if usage is None:
        return JsonResponse({"detail": "No such user in any source.", "user_id": user_id}, status=404)
    return HttpResponse(usage.model_dump_json(), content_type=JSON)


@never_cache
@require_GET
@api_access_required
async def status(request: HttpRequest) -> HttpResponse:
    """Sources with their health, the last refresh time, the refresh interval and the version."""
    return JsonResponse(await services.source_status())

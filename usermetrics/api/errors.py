"""Every ``/api/`` answer is JSON (sync and async capable middleware): the 404 of no route, the 405 of a method,
the 503 of the database unreachable.

Django answers a path that matches no route, and ``require_GET`` or ninja a method they do not
serve, with HTML or an empty body. Under ``/api/`` a client expects ``{"detail": ...}`` like every
other error of the API, so such an answer is replaced by the API's own JSON error (``auth.json_error``).
A view that needed the database while it is unreachable (the history, the alerts) answers a JSON
503 that says so (``humanize.HISTORY_UNAVAILABLE``); the live endpoints need no database.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponseBase, JsonResponse

from usermetrics import humanize, services
from usermetrics.middleware import ResponseMiddleware

from .auth import json_error

PREFIX = "/api/"

logger = logging.getLogger(__name__)


def is_api_path(path: str) -> bool:
    """Whether ``path`` is the API's: ``/api`` itself or anything under ``/api/``."""
    return path == PREFIX.rstrip("/") or path.startswith(PREFIX)


def api_error_json(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """``response``, or the JSON error that replaces a non-JSON 404 or 405 of an ``/api/`` path."""
    if not is_api_path(request.path) or response.status_code not in (404, 405):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response  # the API's own "not found" (a user, the history) says more
    if response.status_code == 404:
        return json_error(f"No API endpoint at {request.path}; see /api/openapi.json.", 404)
    allowed = [m.strip() for m in response.get("Allow", "").split(",") if m.strip()]
    replaced = json_error(f"Method {request.method} is not allowed here.", 405, allow=allowed)
    if allowed:
        replaced["Allow"] = ", ".join(allowed)
    return replaced


class ApiJsonErrorsMiddleware(ResponseMiddleware):
    """Turn the non-JSON 404s and 405s of ``/api/`` paths into the API's JSON errors."""

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """``api_error_json`` of the response."""
        return api_error_json(request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> JsonResponse | None:
        """The JSON 503 of an ``/api/`` view that met the database unreachable; anything else goes on."""
        if not is_api_path(request.path) or not isinstance(exception, services.UNREACHABLE):
            return None
        logger.warning("%s %s: database unreachable (%s); answered 503", request.method, request.path, exception)
        return json_error(humanize.HISTORY_UNAVAILABLE, 503)

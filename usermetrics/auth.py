"""Access to the JSON API (async): a staff session or a bearer token from USERMETRICS_API_TOKENS."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from usermetrics.conf import get_config

AsyncView = Callable[..., Awaitable[HttpResponse]]


def bearer_token_valid(token: str) -> bool:
    """True when ``token`` equals a configured token; every token is compared, in constant time."""
    supplied = token.encode()
    matched = False
    for candidate in get_config()["API_TOKENS"]:
        # No short-circuit: the time taken does not tell which token, or how much of it, matched.
        matched |= hmac.compare_digest(supplied, str(candidate).encode())
    return matched


def _unauthorized(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="usermetrics"'
    return response


def api_access_required(view: AsyncView) -> AsyncView:
    """Let a staff session or a valid bearer token through; everyone else gets a JSON 401."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _unauthorized("Authorization must be 'Bearer <token>'.")
            if not bearer_token_valid(token.strip()):
                return _unauthorized("Invalid bearer token.")
            return await view(request, *args, **kwargs)
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            return _unauthorized("Authentication required: a staff session or 'Authorization: Bearer <token>'.")
        return await view(request, *args, **kwargs)

    return wrapper

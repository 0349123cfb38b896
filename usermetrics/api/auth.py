"""Guards of the JSON faces (async): staff or a bearer token (the one token check), a producer, the history."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from usermetrics import services
from usermetrics.conf import get_config

AsyncView = Callable[..., Awaitable[HttpResponse]]


def token_valid(token: str, tokens: Iterable[str]) -> bool:
    """True when ``token`` equals one of ``tokens``; every token is compared, in constant time."""
    supplied = token.encode()
    matched = False
    for candidate in tokens:
        # No short-circuit: the time taken does not tell which token, or how much of it, matched.
        matched |= hmac.compare_digest(supplied, candidate.encode())
    return matched


def bearer_check(request: HttpRequest, tokens: Iterable[str]) -> str | None:
    """Why the request's ``Authorization`` header is refused, or None when it carries a valid token.

    Call it only when the header is present.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "Authorization must be 'Bearer <token>'."
    if not token_valid(token.strip(), tokens):
        return "Invalid bearer token."
    return None


def json_error(detail: str, status: int, *, realm: str = "usermetrics", **extra: Any) -> JsonResponse:
    """The JSON faces' error body: ``{"detail": ..., ...}`` (401s also say how to authenticate)."""
    response = JsonResponse({"detail": detail, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = f'Bearer realm="{realm}"'
    if status == 503:
        response["Retry-After"] = str(max(1, round(get_config().refresh_interval)))
    return response


def api_access_required(view: AsyncView) -> AsyncView:
    """Let a staff session or a valid API token through; everyone else gets a JSON 401."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.headers.get("Authorization"):
            refused = bearer_check(request, get_config().api_tokens)
            if refused:
                return json_error(refused, 401)
            return await view(request, *args, **kwargs)
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            return json_error("Authentication required: a staff session or 'Authorization: Bearer <token>'.", 401)
        return await view(request, *args, **kwargs)

    return wrapper


def producer_required(view: AsyncView) -> AsyncView:
    """Answer a JSON 503 instead of ``view`` while no producer publishes (never stale data as if live)."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        state = services.producer_state()
        if not state.publishing:
            return json_error(state.words, 503, producer=state.as_dict())
        return await view(request, *args, **kwargs)

    return wrapper


def history_required(view: AsyncView) -> AsyncView:
    """Answer a JSON 404 instead of ``view`` while the history store is off."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not get_config().history.enabled:
            return history_disabled()
        return await view(request, *args, **kwargs)

    return wrapper


def history_disabled() -> JsonResponse:
    """The answer to a question only the history can answer, while it is off."""
    return json_error("The history store is disabled (USERMETRICS['HISTORY']['ENABLED']).", 404)

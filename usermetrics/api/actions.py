"""Acting on a user through the JSON API (async views): ``POST /api/users/<id>/actions/{evict,hold,release}``.

Reading is not acting: a staff session needs the ``usermetrics.act_on_users`` permission too, and
passes Django's CSRF check (ninja's operations are CSRF-exempt, so the check is made here); a
bearer token needs no CSRF token but must be one of ``ACTIONS_TOKENS`` (an ``API_TOKENS`` token
alone may only read). The body is JSON or form-encoded: ``reason``, and ``seconds`` for a hold.
The operations here are mounted on the API (``openapi``) beside ``operations``' readers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.cache import never_cache
from ninja import Router
from pydantic import BaseModel, Field

from usermetrics import services
from usermetrics.conf import get_config

from .auth import bearer_check, json_error, token_valid
from .schemas import ErrorDetail

# The answer's status by the action's outcome: the body is the recorded action in every case.
STATUS = {"done": 200, "partly": 200, "refused": 409, "failed": 502, "no answer": 504}
MAX_BODY = 16 * 1024  # a reason and a number: anything longer is not a form of ours
SHOWN_FROM = 16  # a token this long or longer is named by its last four characters (the log is on every user page)


@dataclass(frozen=True)
class Actor:
    """Who asks: the Django user (None for a token) and how the log names them; or why they may not."""

    user: Any = None
    label: str = ""
    refused: HttpResponse | None = None


def _no_response(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


def csrf_refused(request: HttpRequest) -> bool:
    """Whether Django's CSRF check refuses this session's POST (the same check its middleware makes)."""
    return CsrfViewMiddleware(_no_response).process_view(request, None, (), {}) is not None


def token_label(token: str) -> str:
    """How the log names an API token: its last four characters ("token:…9f2c"), none of a short one ("token")."""
    return f"token:…{token[-4:]}" if len(token) >= SHOWN_FROM else "token"


async def actor_get(request: HttpRequest) -> Actor:
    """Who may act: a token of ``ACTIONS_TOKENS``, or a staff session with the permission that passed CSRF."""
    if request.headers.get("Authorization"):
        cfg = get_config()
        refused = bearer_check(request, (*cfg.api_tokens, *cfg.actions_tokens))
        if refused:
            return Actor(refused=json_error(refused, 401))
        token = request.headers["Authorization"].partition(" ")[2].strip()
        if not token_valid(token, cfg.actions_tokens):
            return Actor(refused=json_error("This API token may read but not act: list it in ACTIONS_TOKENS.", 403))
        return Actor(label=token_label(token))
    user = await request.auser()
    if isinstance(user, AnonymousUser) or not (user.is_active and user.is_staff):
        return Actor(
            refused=json_error("Authentication required: a staff session or 'Authorization: Bearer <token>'.", 401)
        )
    if csrf_refused(request):
        return Actor(
            refused=json_error("CSRF verification failed: send the X-CSRFToken header or the form's token.", 403)
        )
    if not await user.ahas_perm(services.PERMISSION):
        return Actor(refused=json_error(f"{services.PERMISSION_WORDS} to act on users.", 403))
    return Actor(user=user, label=user.get_username())


def body_get(request: HttpRequest) -> dict[str, Any] | None:
    """The request's fields: a JSON object, or the form's; None when the body is neither."""
    if len(request.body) > MAX_BODY:
        return None
    if request.content_type == "application/json":
        try:
            doc = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return doc if isinstance(doc, dict) else None
    return {key: request.POST.get(key) for key in request.POST}


def seconds_get(value: Any) -> float | None:
    """A hold's ``seconds`` as a number (None: absent); ``ValueError`` (or ``OverflowError``) when it is not one."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(value)
    return number


@never_cache
async def user_action(request: HttpRequest, user_id: str, action: str) -> HttpResponse:
    """Evict, hold or release ``user_id`` in every NAT worker that runs it; the recorded action with each answer."""
    actor = await actor_get(request)
    if actor.refused is not None:
        return actor.refused
    fields = body_get(request)
    if fields is None:
        return json_error("The body must be a JSON object or a form: reason, and seconds for a hold.", 400)
    reason = fields.get("reason") or ""
    if not isinstance(reason, str):
        return json_error("reason must be a string.", 400)
    try:
        seconds = seconds_get(fields.get("seconds")) if action == "hold" else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer past any float
        return json_error("seconds must be a number of seconds.", 400)
    try:
        done = await services.user_action_do(
            user_id=user_id,
            action=action,
            by_user=actor.user,
            by_label=actor.label,
            reason=reason.strip(),
            hold_seconds=seconds,
        )
    except services.ActionRefused as exc:
        return json_error(str(exc), 400)
    except services.ActionsUnavailable as exc:  # who reports the user is the board's to say: none is published
        return json_error(exc.state.words, 503, producer=exc.state.as_dict())
    if done is None:
        return json_error(f"User {user_id} {services.NOT_REPORTED}.", 404)
    return JsonResponse(
        services.action_doc(done), status=STATUS[done.outcome], json_dumps_params={"ensure_ascii": False}
    )


# --- the operations and their schema -----------------------------------------------------------------


class WorkerAnswerDoc(BaseModel):
    """One NAT worker's answer to the action."""

    source: str = Field(description="the companion stream (source) the worker reports to")
    status: Literal["done", "refused", "absent", "expired", "failed", "no answer"]
    message: str
    in_flight: int = Field(description="evict refused: the user's requests running or waiting there")
    at: datetime | None = Field(description="when the worker answered (no answer: when the wait ended)")


class ActionDoc(BaseModel):
    """One recorded action on a user, with every worker's answer."""

    id: int
    user_id: str
    action: Literal["evict", "hold", "release"]
    by: str = Field(description="who asked: a user name, or token:…<last 4>")
    at: datetime
    reason: str
    until: datetime | None = Field(description="a hold: when it ends")
    command_id: str
    outcome: Literal["done", "partly", "refused", "no answer", "failed"]
    words: str = Field(description='the outcome in words, e.g. "refused: 1 request running"')
    results: dict[str, WorkerAnswerDoc] = Field(
        description="each worker's answer, by its label (host:pid); an eviction refused before anything was sent"
        " (the dashboard showed requests in flight) has the one answer `dashboard`"
    )


router = Router()
ACTION_RESPONSES: dict[int, Any] = {
    200: ActionDoc,
    409: ActionDoc,
    502: ActionDoc,
    504: ActionDoc,
    **{code: ErrorDetail for code in (400, 401, 403, 404, 503)},
}
REASON = {
    "type": "string",
    "maxLength": services.MAX_REASON,
    "pattern": services.REASON_PATTERN,
    "description": "why (shown with a hold, logged); no control character but tabs and line breaks",
}
SECONDS = {
    "type": "number",
    "minimum": 1,
    "maximum": int(services.MAX_HOLD.total_seconds()),
    "description": "how long (1 s to 7 days)",
}


def _body(action: str) -> dict[str, Any]:
    """An action's request body: a reason, and the seconds of a hold (required there, not read elsewhere)."""
    hold = action == "hold"
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"reason": REASON, **({"seconds": SECONDS} if hold else {})},
    }
    if hold:
        schema["required"] = ["seconds"]
    media = ("application/json", "application/x-www-form-urlencoded")
    return {"required": hold, "content": {m: {"schema": schema} for m in media}}


HOW = (
    " Needs a staff session with the `usermetrics.act_on_users` permission and the CSRF token"
    " (`X-CSRFToken`), or a bearer token listed in `ACTIONS_TOKENS`; else 403. The answer is the recorded"
    " action: 200 done (or partly), 409 refused (an eviction with requests in flight: nothing is sent while the"
    " dashboard shows any), 502 failed, 504 no"
    " worker answered within `ACTIONS_TIMEOUT`; 404 when no NAT companion reports the user, 503 while no producer"
    " publishes or the database cannot log the action (nothing sent)."
)


def _operation(action: str, summary: str) -> None:
    """Mount ``POST /api/users/{user_id}/actions/<action>`` (three of them, alike but for the action)."""

    @router.post(
        f"/api/users/{{userid:user_id}}/actions/{action}",
        response=ACTION_RESPONSES,
        url_name=f"api-user-{action}",
        tags=["actions"],
        operation_id=f"user_{action}",
        summary=summary,
        description=summary + "." + HOW,
        openapi_extra={"requestBody": _body(action)},
    )
    async def operation(request: HttpRequest, user_id: str) -> HttpResponse:
        """The action (``user_action``)."""
        return await user_action(request, user_id, action)


_operation("evict", "End the user's per-user workflow in every NAT worker that holds it (refused while in flight)")
_operation("hold", "Refuse the user's new requests for `seconds` (NAT answers 429 with the time left)")
_operation("release", "End the user's hold early")

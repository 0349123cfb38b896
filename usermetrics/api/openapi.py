"""The JSON API's OpenAPI 3 schema (async view): django-ninja's, at ``/api/openapi.json``, and the URL patterns.

The operations (``operations``: one per endpoint, each delegating to the view that always
answered it) are mounted on one ``NinjaAPI``; ninja builds the schema from their parameters and
the pydantic classes they return. Authentication stays the one check in ``auth``; the schema
declares it as its two security schemes. ``/monitor/users`` is also answered by the ASGI fast
path (``fast.py``) before Django: same rule, same bytes; the schema documents both.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from ninja import NinjaAPI

from usermetrics import services

from . import actions
from .auth import api_access_required
from .operations import router

DESCRIPTION = """Per-user resource usage of NVIDIA NeMo Agent Toolkit (NAT) workflows, live and over time.

Every endpoint needs a staff session (the Django admin login) or `Authorization: Bearer <token>`
with one of `USERMETRICS_API_TOKENS`; anything else is a `401` with a JSON `detail`. Acting on a
user (the `actions` endpoints) needs more: the `usermetrics.act_on_users` permission and the CSRF
token for a session, a token of `USERMETRICS_ACTIONS_TOKENS` for a bearer; else a `403`. A user id in
a path is one segment: `/` is written `~2F` (`%2F` works too), `~` is `~7E`, a leading `.` is `~2E`,
and the empty id is `~`. An unknown
`window` (or `state`, `sort`) falls back to the default, and each document says which it used.
"""

api = NinjaAPI(
    title="usermetrics",
    version=services.VERSION,
    description=DESCRIPTION,
    urls_namespace="usermetrics",
    docs_url=None,  # the docs page is ours (views.api_docs): the admin's chrome, vendored Swagger UI
    openapi_url=None,  # served by ``openapi_json`` below, behind the API's own access check
    openapi_extra={"security": [{"bearer": []}, {"session": []}]},
)
api.add_router("", router)
api.add_router("", actions.router)  # the POSTs that act on a user (evict, hold, release)
# The two ways in, as the one access check (``auth.api_access_required``) takes them.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "one of USERMETRICS_API_TOKENS"},
    "session": {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "a staff login"},
}


@never_cache
@require_GET
@api_access_required
async def openapi_json(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3 schema of this API, built by ninja from ``operations``."""
    return JsonResponse(schema_get(), json_dumps_params={"ensure_ascii": False})


# A user id in a path is one segment (``converters``): no ``/``, ``~`` only as an escape, no leading ``.``.
USER_SEGMENT = {
    "type": "string",
    "pattern": r"^(?:~|(?!\.)(?:[^/~]|~(?:2F|7E|2E))+)$",
    "description": "the user id as one path segment: / is ~2F, ~ is ~7E, a leading . is ~2E, the empty id is ~",
}


def schema_get() -> dict[str, Any]:
    """The OpenAPI document: ninja's, with the security schemes that ``auth`` implements.

    The ``{user_id}`` path parameters get the segment encoding of ``converters`` (ninja sees the
    decoded id, a plain string).
    """
    schema = dict(api.get_openapi_schema(path_prefix=""))
    schema["components"] = {**schema["components"], "securitySchemes": SECURITY_SCHEMES}
    for item in schema["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["in"] == "path" and param["name"] == "user_id":
                    param["schema"] = dict(USER_SEGMENT)
    return schema


def urlpatterns() -> list[Any]:
    """The operations' URL patterns (named as before, in the app's namespace), without ninja's root page."""
    return [p for p in api.urls[0] if getattr(p, "name", None) != "api-root"]

"""Content-Security-Policy for every response, a 503 for the database unreachable, Django's middleware run on the
event loop (sync and async capable middleware), and the client's address.

The policy is django-csp's ``CONTENT_SECURITY_POLICY`` in settings: scripts, styles, images and
fonts from this origin only, with no ``'unsafe-inline'`` and no ``'unsafe-eval'``: data reaches
pages as text and as ``json_script`` blocks, which are not executed. Its one part that depends on
the request, websockets back to the host the page came from, is added here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from csp.constants import HEADER
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware import common
from django.template.response import TemplateResponse

from usermetrics.outage import UNREACHABLE

logger = logging.getLogger(__name__)

# Hosts whose policy a process keeps built (ALLOWED_HOSTS may admit a whole domain, so it is bounded).
POLICY_HOSTS = 64
# What a view's django-csp decorators leave on its response: such an answer gets its own policy.
_VIEW_POLICY = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)


class ResponseMiddleware:
    """A middleware that only looks at the response (sync and async capable): subclasses define ``respond``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]) -> None:
        """Wrap ``get_response``, staying async when it is async."""
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        """Dispatch to the sync or async path."""
        if iscoroutinefunction(self):
            return self._acall(request)
        response = self.get_response(request)
        assert isinstance(response, HttpResponseBase)
        return self.respond(request, response)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        assert not isinstance(response, HttpResponseBase)
        return self.respond(request, await response)

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """The response to send for ``request`` instead of ``response`` (or ``response`` itself)."""
        raise NotImplementedError


class OnTheLoop:
    """For a Django ``MiddlewareMixin`` middleware: in an async stack, its hooks run on the event loop.

    Django's ``MiddlewareMixin`` runs each ``process_request`` and ``process_response`` of an
    async request through ``sync_to_async``: a hop to the request's own thread and back, about
    0.15 ms of CPU each on this machine, and more of waiting for the GIL under load. The hooks of
    the classes below only read and write the request and the response, never the database or a
    file, so they run inline, exactly as written; ``in_thread`` names the calls that may touch the
    database (a session to save), which still go to the thread. Touching the database on the loop
    would not pass unnoticed: Django raises ``SynchronousOnlyOperation``. (A ``process_view``,
    which none of them has, would still be called in a thread.)
    """

    get_response: Any

    def in_thread(self, request: HttpRequest) -> bool:
        """Whether ``process_response`` may touch the database for ``request`` (then it runs in the thread)."""
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        """``MiddlewareMixin.__acall__``, with the hooks called inline."""
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.in_thread(request):
                return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            response = self.process_response(request, response)
        return response


class SessionMiddleware(OnTheLoop, sessions.SessionMiddleware):
    """Django's, on the loop; a session to save (or saved on every request) is saved in the request's thread."""

    def in_thread(self, request: HttpRequest) -> bool:
        """Whether the session will be saved (the database)."""
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(OnTheLoop, messages.MessageMiddleware):
    """Django's, on the loop; messages read or added are stored in the request's thread (they may go to the session)."""

    def in_thread(self, request: HttpRequest) -> bool:
        """Whether the messages will be stored."""
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class AuthenticationMiddleware(OnTheLoop, auth.AuthenticationMiddleware):
    """Django's, on the loop: it only sets ``request.user`` (lazy) and ``request.auser``; the user is read later."""


class CommonMiddleware(OnTheLoop, common.CommonMiddleware):
    """Django's, on the loop: the slash redirect and ``Content-Length``."""


class WebsocketCSPMiddleware(OnTheLoop, CSPMiddleware):
    """django-csp's middleware, with ``ws://`` and ``wss://`` of the request's host added to ``connect-src``.

    Settings hold the rest of the policy; a view that set its own Content-Security-Policy header
    keeps it (django-csp never overwrites one). With ``DEBUG`` on, django-csp sends no policy on
    404 and 500 answers, because Django's debug pages need inline scripts and styles: acceptable
    there; with ``DEBUG`` off, as in production, they have it.

    The policy of a plain answer (no decorator, no nonce, no header of its own) depends on the host
    alone: it is built by django-csp once per host and process, then copied (building it cost a
    fifth of a bearer request's CPU).
    """

    def __init__(self, get_response: Any) -> None:
        """django-csp's set-up, and no policy built yet."""
        super().__init__(get_response)
        self._policies: dict[str, str] = {}

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """django-csp's answer, with a plain answer's policy built once per host."""
        if not self._plain(request, response):
            return super().process_response(request, response)
        host = request.get_host()
        policy = self._policies.get(host)
        if policy is None:
            response = super().process_response(request, response)
            if HEADER in response and len(self._policies) < POLICY_HOSTS:
                self._policies[host] = response[HEADER]
            return response
        response[HEADER] = policy
        # As django-csp does once the header is written: a nonce asked for now could not be in it.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response

    @staticmethod
    def _plain(request: HttpRequest, response: HttpResponseBase) -> bool:
        """Whether django-csp would give ``response`` the policy of every plain answer of its host."""
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}
        return (
            not settings.DEBUG
            and not getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
            and not policy.get("EXCLUDE_URL_PREFIXES")
            and getattr(request, "_csp_nonce", None) is None
            and HEADER not in response
            and not any(hasattr(response, name) for name in _VIEW_POLICY)
        )

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        """The configured parts, plus websockets to the host this request came to (as ALLOWED_HOSTS validated it).

        The host is only known per request, so it cannot be in settings; and ``'self'`` covers
        ``ws:``/``wss:`` to the same host only in newer browsers, so the sources are spelled out.
        """
        parts = super().get_policy_parts(request, response, report_only)
        host = request.get_host()
        update = dict(parts.update or {})  # a copy: a view's @csp_update dict belongs to its response
        # What such a view added to connect-src stays; django-csp takes a string, a set or a list there.
        theirs = update.get("connect-src") or []
        if isinstance(theirs, str):
            theirs = [theirs]
        update["connect-src"] = [*sorted(theirs), f"ws://{host}", f"wss://{host}"]
        parts.update = update
        return parts


class DatabaseUnreachableMiddleware(ResponseMiddleware):
    """A view that needed the database while it is unreachable answers a 503 page that says so, not a 500.

    The dashboard pages degrade by themselves (live data from memory, ``humanize.HISTORY_UNAVAILABLE``);
    what is left is what cannot work without the database, logging in first. ``/api/`` answers
    its own JSON 503 (``api.errors``, lower in the stack, so asked first).
    """

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """``response`` as it is."""
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """The 503 page for an outage error; anything else goes on to Django's 500."""
        if not isinstance(exception, UNREACHABLE):
            return None
        logger.warning("%s %s: database unreachable (%s); answered 503", request.method, request.path, exception)
        response = TemplateResponse(request, "usermetrics/database_unreachable.html", {"title": "Database unreachable"})
        response.status_code = 503
        response["Retry-After"] = "30"
        # Rendered here: a template error now is still inside Django's handler, never a half response.
        return response.render()


def client_address(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind ``TRUSTED_PROXIES`` proxies the one the outermost saw.

    Each proxy appends the address it was connected from to ``X-Forwarded-For`` (nginx's
    ``$proxy_add_x_forwarded_for``), so with N trusted proxies the Nth entry from the right is the
    client; entries left of it are whatever the client sent and are never believed. With none
    configured the header is ignored (django-axes counts failed logins by this address).
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = getattr(settings, "TRUSTED_PROXIES", 0)
    if proxies <= 0:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    return hops[-proxies] if len(hops) >= proxies else remote

"""Content-Security-Policy for every response, a 503 for the database unreachable (sync and async capable
middleware), and the client's address.

Django 5.2 has no CSP support of its own. The policy allows scripts, styles, images and fonts
from this origin only, with no ``'unsafe-inline'`` and no ``'unsafe-eval'``: data reaches pages
as text and as ``json_script`` blocks, which are not executed. Websockets may connect back to
the host the page came from.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.response import TemplateResponse

from usermetrics.outage import UNREACHABLE

logger = logging.getLogger(__name__)

HEADER = "Content-Security-Policy"


def csp_policy(host: str) -> str:
    """The policy for a page served from ``host`` (as validated by ALLOWED_HOSTS)."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            # 'self' covers ws:/wss: to the same host only in newer browsers; say it outright.
            f"connect-src 'self' ws://{host} wss://{host}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
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


class ContentSecurityPolicyMiddleware(ResponseMiddleware):
    """Add the Content-Security-Policy header unless the view set its own."""

    def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """``response`` with our policy unless it has one."""
        if HEADER not in response:
            response[HEADER] = csp_policy(request.get_host())
        return response


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

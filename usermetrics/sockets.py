"""Guards in front of the websocket consumers (async ASGI middleware): our own origins only, and a send budget.

``OwnOriginValidator`` replaces Channels' ``AllowedHostsOriginValidator``, which compares only the
origin's host name with ``ALLOWED_HOSTS``: any other web app on the same host (another port, or
plain http beside https) could open the feed with a staff member's cookie. Here the origin must be
the very scheme, host and port the dashboard was reached on, or one of ``CSRF_TRUSTED_ORIGINS``.

``SendBudget`` bounds what one socket can make Daphne hold. Daphne writes every frame into the
connection's Twisted transport at once, whether or not the client reads: a client that stops
reading grows the server without bound. The budget reads the bytes still unsent in that transport
before each frame and, past ``FEED_MAX_UNSENT_BYTES``, closes the socket with 4008 and drops what
the application still sends. It also carries a close reason to the client, which Daphne 4.2
drops. Both need Daphne's protocol object, which Daphne binds into the ``send`` callable it hands
the application (``functools.partial(server.handle_reply, protocol)``); under any other server
(Channels' test communicator) the budget is off and close messages pass as they are.

``auth_stack`` is Channels' ``AuthMiddlewareStack`` with one change: a handshake reads its session
and user in a worker thread of its own. Channels reads them in the one thread Django keeps for
sync work, behind every sync view and history query of the process: under API load (the soak)
handshakes waited there past Daphne's 5 s connect timeout and were dropped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddleware, get_user
from channels.db import DatabaseSyncToAsync
from channels.security.websocket import WebsocketDenier
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

from usermetrics.conf import get_config

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Close codes the feed uses (documented in the README's close-code table).
CLOSE_TOO_SLOW = 4008  # the client does not read: its unsent frames passed the byte budget
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` with the default port filled in; None when ``netloc`` is not host[:port]."""
    if scheme not in _DEFAULT_PORTS or not netloc or "@" in netloc:
        return None
    host, port = split_domain_port(netloc)
    if not host:
        return None  # split_domain_port gives "" for anything that is not a valid host
    if port and not port.isdigit():
        return None
    return scheme, host, int(port) if port else _DEFAULT_PORTS[scheme]


def request_scheme(scope: Scope) -> str:
    """``https`` or ``http``: how the client reached us (a TLS proxy's word only as Django's settings trust it)."""
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name, secure_value = proxy
        value = _header(scope, name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1"))
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def allowed_hosts() -> list[str]:
    """``ALLOWED_HOSTS`` as Django's HTTP side applies it (with DEBUG's loopback names when empty)."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def origin_allowed(origin: str | None, *, host: str | None, scheme: str, trusted: Iterable[str] = ()) -> bool:
    """Whether a handshake's ``Origin`` is the dashboard's own (``scheme``://``host``) or a trusted one.

    ``host`` is the request's Host header and must itself be allowed (``ALLOWED_HOSTS``), or a
    page on a rebound DNS name could match itself. ``trusted`` takes ``CSRF_TRUSTED_ORIGINS``
    entries: exact origins, or ``https://*.example.com`` for a domain's subdomains.
    """
    if not origin or not host:
        return False
    parts = urlsplit(origin) if origin.isascii() else None
    if parts is None or parts.path or parts.query or parts.fragment:
        return False  # "null", a full URL, a non-ASCII string: not an origin a browser sends
    mine = _origin_tuple(scheme, host.lower())
    theirs = _origin_tuple(parts.scheme, parts.netloc.lower())
    if theirs is None or mine is None:
        return False
    if theirs == mine and validate_host(mine[1], allowed_hosts()):
        return True
    for pattern in trusted:
        pattern_parts = urlsplit(pattern.lower())
        if pattern_parts.netloc.startswith("*."):
            if pattern_parts.scheme == theirs[0] and is_same_domain(parts.netloc.lower(), pattern_parts.netloc[1:]):
                return True
        elif _origin_tuple(pattern_parts.scheme, pattern_parts.netloc) == theirs:
            return True
    return False


class OwnOriginValidator:
    """Refuse a websocket handshake (403) unless its Origin is the dashboard's own or a trusted one."""

    def __init__(self, app: App, *, trusted: Sequence[str] | None = None) -> None:
        """Guard ``app``; ``trusted`` defaults to ``CSRF_TRUSTED_ORIGINS``, read at each handshake."""
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the handshake on, or deny it."""
        if scope["type"] != "websocket":
            raise ValueError("OwnOriginValidator guards websockets only")
        origin = _header(scope, b"origin")
        trusted = self.trusted if self.trusted is not None else settings.CSRF_TRUSTED_ORIGINS
        if origin_allowed(origin, host=_header(scope, b"host"), scheme=request_scheme(scope), trusted=trusted):
            await self.app(scope, receive, send)
            return
        logger.info("Websocket refused: origin %r is not this dashboard's (%s)", origin, scope.get("path", ""))
        await WebsocketDenier()(scope, receive, send)


def daphne_protocol(send: Send) -> Any | None:
    """The Daphne websocket protocol behind ``send``, when Daphne is the server (else None)."""
    if isinstance(send, functools.partial) and send.args:
        protocol = send.args[0]
        if hasattr(protocol, "sendClose") and hasattr(protocol, "transport"):
            return protocol
    return None


def unsent_bytes(protocol: Any) -> int:
    """Bytes written to the connection that the client has not taken yet (Twisted's write buffer).

    Twisted keeps them in ``dataBuffer`` (from ``offset`` on) and ``_tempDataBuffer``; under TLS
    the application's transport is the TLS layer and the bytes wait in the TCP one beneath it.
    """
    transport = getattr(protocol, "transport", None)
    total = 0
    for _ in range(3):  # protocol -> TLS -> TCP at most
        if transport is None:
            break
        if hasattr(transport, "_tempDataLen"):
            buffer = getattr(transport, "dataBuffer", b"")
            total += len(buffer) - int(getattr(transport, "offset", 0)) + int(transport._tempDataLen)
            break
        total += sum(len(chunk) for chunk in getattr(transport, "_appSendBuffer", ()))
        transport = getattr(transport, "transport", None)
    return total


def _reason(text: str) -> str:
    """A close reason within the protocol's 123 bytes of UTF-8."""
    return text.encode()[:123].decode(errors="ignore")


class SendBudget:
    """Close a websocket with 4008 once its unsent frames pass the byte budget; carry close reasons."""

    def __init__(self, app: App) -> None:
        """Guard ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` with a ``send`` that checks the budget before every frame."""
        protocol = daphne_protocol(send) if scope["type"] == "websocket" else None
        if protocol is None:
            await self.app(scope, receive, send)
            return
        budget = get_config().feed_max_unsent_bytes
        closed = False

        async def guarded(message: dict[str, Any]) -> None:
            nonlocal closed
            if closed:
                return  # closed over budget: what the application still sends goes nowhere
            kind = message.get("type")
            if kind == "websocket.send" and protocol.state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED):
                return  # the client is going (its disconnect follows): a frame on its way goes nowhere
            if kind == "websocket.send":
                size = len(message.get("text") or message.get("bytes") or b"")
                pending = unsent_bytes(protocol)
                if pending + size > budget:
                    closed = True
                    logger.warning(
                        "Websocket %s closed: the client does not read (%d bytes unsent, budget %d)",
                        scope.get("path", ""),
                        pending,
                        budget,
                    )
                    # Twisted aborts the connection (its buffer freed) when the close handshake times out.
                    protocol.sendClose(code=CLOSE_TOO_SLOW, reason="too slow: unsent frames passed the budget")
                    return
            elif kind == "websocket.close" and message.get("reason") and protocol.state == protocol.STATE_OPEN:
                # Daphne 4.2 sends the code without the reason: send both ourselves.
                protocol.sendClose(code=message.get("code", 1000), reason=_reason(str(message["reason"])))
                return
            await send(message)

        await self.app(scope, receive, guarded)


class HandshakeAuth(AuthMiddleware):
    """Channels' ``AuthMiddleware``, reading the session and the user off Django's one sync thread."""

    async def resolve_scope(self, scope: Scope) -> None:
        """``scope["user"]`` from the session, in a worker thread (its database connection closed after)."""
        read = DatabaseSyncToAsync(get_user.func, thread_sensitive=False)
        scope["user"]._wrapped = await read(scope)


def auth_stack(inner: App) -> App:
    """Cookies, the session and its user for websocket scopes (``AuthMiddlewareStack``'s order)."""
    return CookieMiddleware(SessionMiddleware(HandshakeAuth(inner)))  # type: ignore[no-any-return]

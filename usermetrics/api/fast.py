"""The ``/monitor/users`` fast path (ASGI): a token-bearing GET served straight from the board.

Scripts and other tools poll ``/monitor/users`` with a bearer token, often and in numbers; the
answer is already made (the producer serialized and compressed it once per refresh). Going
through Django for each one costs several times more than sending the bytes. So a GET of the
whole document with a valid API token and a publishing producer is answered here with
``live.monitor_users_answer``, the view's own rule, and with the shared headers Django sent for
the first such request of that host and scheme (an allow-list: security headers, CSP, cache
control), which is what admits the host too. Everything else (sessions, a bad or missing token, ``?user_id=``, no
producer) goes to Django, which says why.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from usermetrics import services
from usermetrics.conf import get_config

from .auth import token_valid
from .live import monitor_users_answer

PATH = "/monitor/users"
# The headers of Django's answer that every answer of that host shares: its type, caching and the
# security headers. Nothing else is replayed: a cookie, or a header some middleware adds later,
# belongs to the one answer it was made for (the answer's own ETag, Vary and encoding come from
# ``monitor_users_answer``, its length from its body).
_SHARED = {
    b"content-type",
    b"cache-control",
    b"expires",
    b"content-security-policy",
    b"x-content-type-options",
    b"x-frame-options",
    b"referrer-policy",
    b"cross-origin-opener-policy",
    b"strict-transport-security",
}


class MonitorUsersFastPath:
    """Wraps the ASGI application; answers token-bearing ``GET /monitor/users`` itself."""

    def __init__(self, app: Any) -> None:
        """Hand everything else to ``app``."""
        self.app = app
        self._headers: dict[tuple[bytes, ...], list[tuple[bytes, bytes]]] = {}
        self.served = 0  # answers sent here (tests count them)

    def _key(self, scope: dict[str, Any], headers: dict[bytes, bytes]) -> tuple[bytes, ...]:
        proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        forwarded = (
            headers.get(proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode(), b"") if proxy else b""
        )
        return (headers.get(b"host", b""), str(scope.get("scheme", "http")).encode(), forwarded)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer from the board when the request qualifies, else pass it on."""
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or scope.get("path") != PATH
            or scope.get("query_string")
        ):
            return await self.app(scope, receive, send)
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        kind, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if kind.lower() != "bearer" or not token_valid(token.strip(), get_config().api_tokens):
            return await self.app(scope, receive, send)
        if not services.producer_state().publishing:
            return await self.app(scope, receive, send)
        key = self._key(scope, headers)
        base = self._headers.get(key)
        if base is None:
            return await self.app(scope, receive, self._capturing(send, key))
        answer = monitor_users_answer(
            services.board_get(),
            user_id=None,
            if_none_match=headers.get(b"if-none-match", b"").decode("latin-1"),
            accept_encoding=headers.get(b"accept-encoding", b"").decode("latin-1"),
        )
        out = [*base, *((n.lower().encode(), v.encode()) for n, v in answer.headers)]
        out.append((b"content-length", str(len(answer.body)).encode()))
        self.served += 1
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        await send({"type": "http.response.body", "body": answer.body})

    def _capturing(self, send: Any, key: tuple[bytes, ...]) -> Any:
        """``send``, keeping the headers of Django's 200 for ``key``."""

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                self._headers[key] = [(n, v) for n, v in message.get("headers", []) if n.lower() in _SHARED]
            await send(message)

        return capture

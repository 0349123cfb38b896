"""ASGI wrappers in front of Django (async): ``%2F`` in a path segment, and ``nosniff`` on every HTTP response.

Servers decode ``%2F`` to ``/`` before routing (Daphne puts the decoded path in ``scope["path"]``),
so ``/api/users/a%2Fb%2Fc`` would be routed as three segments. The undecoded path survives in
``scope["raw_path"]``: a segment that holds ``%2F`` there is one user id, and is rewritten into
the converter's own form (``a~2Fb~2Fc``) before Django routes it. Static files served by
``ASGIStaticFilesHandler`` never pass Django's ``SecurityMiddleware``, so the header that
stops browsers from sniffing a content type is added here for every response that lacks it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from usermetrics.converters import user_id_to_segment

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_ENCODED_SLASH = re.compile(rb"%2F", re.IGNORECASE)


def path_from_raw(raw_path: bytes) -> str | None:
    """The path Django should route for ``raw_path``, or None when no segment holds ``%2F``.

    A segment with ``%2F`` was quoted the standard way by its client: decoded whole, it is one id,
    written as ``converters.user_id_to_segment`` does. Other segments decode as the server did.
    """
    if not _ENCODED_SLASH.search(raw_path):
        return None
    segments = raw_path.decode("latin-1").split("/")
    return "/".join(
        user_id_to_segment(unquote(s)) if _ENCODED_SLASH.search(s.encode("latin-1")) else unquote(s) for s in segments
    )


class RawPathSlashes:
    """Route ``%2F`` inside a segment as part of that segment (HTTP scopes; websockets are left alone)."""

    def __init__(self, app: App) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite ``path`` from ``raw_path`` when a segment holds ``%2F``, then hand the scope on."""
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw:
            path = path_from_raw(raw.split(b"?", 1)[0])
            if path is not None:
                scope = {**scope, "path": path}
        await self.app(scope, receive, send)


class NoSniff:
    """Add ``X-Content-Type-Options: nosniff`` to every HTTP response that does not carry it."""

    def __init__(self, app: App) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the scope on, adding the header to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_nosniff)

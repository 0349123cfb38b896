"""ASGI entry point (async): Django for HTTP, the live feed for websockets; the face starts with the first scope."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitor_site.settings")

# Django must be set up before anything imports models or the service layer.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from usermetrics import routing  # noqa: E402
from usermetrics.api.fast import MonitorUsersFastPath  # noqa: E402
from usermetrics.conf import get_config  # noqa: E402
from usermetrics.edge import NoSniff, RawPathSlashes  # noqa: E402
from usermetrics.publish.face import faces_start  # noqa: E402
from usermetrics.sockets import OwnOriginValidator, SendBudget, auth_stack  # noqa: E402

# A setting conf cannot read stops Daphne here, at start-up, with its message (not at the first request).
get_config()


class StartFaceOnFirstScope:
    """Start this process's face (and its embedded producer) when the first scope arrives.

    Daphne has no ASGI lifespan, so the first connection is the first moment we run on the loop
    that will serve every later request: the face's follower runs on it, and an embedded producer
    hands its frames to it (the producer's own work runs in a child process, off this loop).
    """

    def __init__(self, app: Any) -> None:
        """Wrap ``app``."""
        self.app = app
        self._started: asyncio.Future[None] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Start the face once, then hand the scope on."""
        if scope["type"] in ("http", "websocket"):
            started = self._started
            # One start per event loop: a server has one; test runs make a new loop per test.
            if started is None or started.get_loop() is not asyncio.get_running_loop():
                started = self._started = asyncio.ensure_future(faces_start())
            await asyncio.shield(started)
        await self.app(scope, receive, send)


# Static files (the admin's CSS, our JS) are served by Django's staticfiles handler so that Daphne
# alone serves a complete dashboard with DEBUG off; a proxy in front may serve STATIC_ROOT instead.
# Websockets: the session's user (read off Django's one sync thread: auth_stack; staff is checked by
# the consumers), and only from our own
# origins (the scheme, host and port we were reached on, or CSRF_TRUSTED_ORIGINS), so another
# site or another app on this host cannot open the feed with a staff member's cookie. SendBudget
# comes first: it needs the send callable exactly as Daphne made it.
application = StartFaceOnFirstScope(
    ProtocolTypeRouter(
        {
            # Tools polling /monitor/users with a token get the board's bytes without Django's round trip.
            # nosniff on static files too (they bypass SecurityMiddleware); ids quoted with %2F route as one
            # segment. The fast path copies Django's own headers (nosniff among them), so it may stay outermost.
            "http": MonitorUsersFastPath(NoSniff(RawPathSlashes(ASGIStaticFilesHandler(django_asgi_app)))),
            "websocket": SendBudget(OwnOriginValidator(auth_stack(URLRouter(routing.websocket_urlpatterns)))),
        }
    )
)

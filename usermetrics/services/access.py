"""Whether an open socket's session still belongs to an active staff member (async), once per refresh.

A socket's ``scope["user"]`` is read once, at the handshake; a logout, a password change, losing
staff or being deactivated must still end the stream. The feed re-reads the session and the user
from the database as each refresh's frame goes out; every socket of one session asks at the same
refresh, so one lookup per session and refresh answers them all.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import import_module
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.contrib import auth
from django.db import DatabaseError
from django.http import HttpRequest

logger = logging.getLogger(__name__)

_checks: dict[tuple[str, str, int, str], asyncio.Future[bool]] = {}
_MAX_CHECKS = 10_000  # distinct sessions per refresh are few; this only bounds a pathological case


def _session_user_is_staff(session_key: str, user_pk: str) -> bool:
    """Django's own reading of a session (backend, auth hash with fallbacks) on a fresh store (sync).

    While the database cannot be read (locked, gone) the answer stays yes: the socket was staff's
    when last checked, and the live feed keeps working from memory through a database outage.
    """
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        user = auth.get_user(request)
    except DatabaseError as exc:
        logger.warning("Cannot re-check websocket sessions (%s); sockets stay open until the database answers", exc)
        return True
    return bool(user.is_authenticated and str(user.pk) == user_pk and user.is_active and user.is_staff)


# In a worker thread of its own, its connection closed after (not in Django's one sync thread,
# where every socket's check each refresh would wait behind the process's sync views).
_check_in_thread = DatabaseSyncToAsync(_session_user_is_staff, thread_sensitive=False)


async def feed_access_check(*, session_key: str | None, user_pk: Any, seq: int, producer: str = "") -> bool:
    """Whether the session ``session_key`` is still ``user_pk``'s, an active staff member's (as of refresh ``seq``)."""
    if not session_key or user_pk is None:
        return False
    key = (session_key, str(user_pk), seq, producer)
    loop = asyncio.get_running_loop()
    future = _checks.get(key)
    if future is None or future.get_loop() is not loop or (future.done() and future.exception() is not None):
        if len(_checks) >= _MAX_CHECKS or any(k[2:] != key[2:] for k in _checks):
            _checks.clear()  # a new refresh: the answers of the last one are no longer the question
        future = _checks[key] = loop.create_task(_check_in_thread(*key[:2]))
    return await asyncio.shield(future)

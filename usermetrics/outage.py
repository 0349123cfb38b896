"""Logins that outlast a database outage (sync and async): the sessions and users a face read last.

Every dashboard request reads its session and its user from the database (and so does every new
websocket). While the database answers, it is read every time: a logout, a password change,
losing staff or being deactivated takes effect at once, on every face. Only while it raises an
outage error (``UNREACHABLE``) does a face fall back to the copy it read last, so that someone
logged in before the outage keeps the live pages, which need no database.

Why a copy in this process rather than a cache (``cached_db`` sessions):

* a per-process cache (LocMem) would be read *first*: a logout on one face would leave the
  session alive on the others until the cache entry expired, outage or not;
* a shared cache (Redis) fixes that but puts Redis in front of every page: a Redis outage, which
  the live pages otherwise survive, would turn them into 500s.

Here the database stays the truth, Redis is not involved, and a copy is served only if it was
read no longer than ``GRACE`` before the database last answered this face: a session last seen
long before the outage (logged out since on another face, perhaps) is not brought back.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends import db
from django.db import InterfaceError, OperationalError
from django.utils import timezone

logger = logging.getLogger(__name__)

# The database is unreachable (gone, cut, locked): an outage, not a bug. A ProgrammingError or
# IntegrityError is a mistake and stays loud; these two are what PostgreSQL gone (refused, cut
# connections) and SQLite locked raise.
UNREACHABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

GRACE = 600.0  # seconds: an open page re-reads its session every refresh and every 30 s fetch
MAX_COPIES = 10_000  # distinct sessions and users a face serves are few; this bounds memory


class LastCopies:
    """The last value read for each key (thread-safe, bounded, least recently read dropped first)."""

    def __init__(self, *, grace: float = GRACE, size: int = MAX_COPIES) -> None:
        """Keep at most ``size`` keys; serve a copy read at most ``grace`` s before the last answer."""
        self.grace, self.size = grace, size
        self._lock = threading.Lock()
        self._copies: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._answered = 0.0  # monotonic time the database last answered a read

    def remember(self, key: str, value: Any) -> None:
        """The database answered ``value`` for ``key`` (None: it has no such key any more)."""
        now = time.monotonic()
        with self._lock:
            self._answered = now
            if value is None:
                self._copies.pop(key, None)
                return
            self._copies[key] = (value, now)
            self._copies.move_to_end(key)
            while len(self._copies) > self.size:
                self._copies.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop ``key``'s copy (a logout, whether or not the database took it)."""
        with self._lock:
            self._copies.pop(key, None)

    def recall(self, key: str) -> Any:
        """``key``'s last copy, or None when there is none or it was read too long before the outage."""
        with self._lock:
            found = self._copies.get(key)
            if found is None or found[1] < self._answered - self.grace:
                return None
            return found[0]

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._copies.clear()
            self._answered = 0.0


sessions = LastCopies()
users = LastCopies()


def _outage(what: str, exc: Exception) -> None:
    logger.warning("Database unreachable (%s): %s from the copy this face read last", exc, what)


class SessionStore(db.SessionStore):
    """Database sessions (``SESSION_ENGINE = "usermetrics.outage"``) that fall back to the last copy in an outage."""

    def _remembered(self, found: Any, key: str | None) -> Any:
        if key is not None:
            sessions.remember(key, None if found is None else (found.session_data, found.expire_date))
        return found

    def _recalled(self, key: str | None, exc: Exception) -> Any:
        copied = sessions.recall(key) if key is not None else None
        if copied is None:
            return None  # an empty session: anonymous, as if logged out
        data, expire_date = copied
        if expire_date <= timezone.now():
            return None
        _outage("session", exc)
        return self.model(session_key=key, session_data=data, expire_date=expire_date)

    def _get_session_from_db(self) -> Any:
        """The session row, read every time; its last copy only while the database is unreachable."""
        key = self.session_key
        try:
            return self._remembered(super()._get_session_from_db(), key)
        except UNREACHABLE as exc:
            return self._recalled(key, exc)

    async def _aget_session_from_db(self) -> Any:
        """``_get_session_from_db`` for async callers (the websocket's access re-check)."""
        key = self.session_key
        try:
            return self._remembered(await super()._aget_session_from_db(), key)
        except UNREACHABLE as exc:
            return self._recalled(key, exc)

    def _written(self, must_create: bool) -> None:
        if self.session_key is not None:
            data = self.encode(self._get_session(no_load=must_create))
            sessions.remember(self.session_key, (data, self.get_expiry_date()))

    def save(self, must_create: bool = False) -> None:
        """Save to the database; what was written is this face's copy (a login survives an outage right after)."""
        super().save(must_create=must_create)
        self._written(must_create)

    async def asave(self, must_create: bool = False) -> None:
        """``save`` for async callers."""
        await super().asave(must_create=must_create)
        self._written(must_create)

    def delete(self, session_key: str | None = None) -> None:
        """Delete from the database; the copy goes first, so a logout never comes back from it."""
        key = session_key or self.session_key
        if key is not None:
            sessions.forget(key)
        super().delete(session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        """``delete`` for async callers."""
        key = session_key or self.session_key
        if key is not None:
            sessions.forget(key)
        await super().adelete(session_key)


class OutageTolerantBackend(ModelBackend):
    """Django's ``ModelBackend`` whose ``get_user`` serves the last copy only while the database is unreachable.

    Permissions are not kept: in an outage a non-superuser has none (the admin's app list is
    empty), which the dashboard pages do not need; staff and active are what they check.
    """

    def _remembered(self, user_id: Any, user: Any) -> Any:
        # A clean copy: permission caches filled later on the request's instance are not kept.
        users.remember(str(user_id), None if user is None else copy.copy(user))
        return user

    def _recalled(self, user_id: Any, exc: Exception) -> Any:
        copied = users.recall(str(user_id))
        if copied is None:
            return None
        _outage("user", exc)
        return copy.copy(copied)

    def get_user(self, user_id: Any) -> Any:
        """The user, read every time (a deactivated user is None at once); its last copy in an outage."""
        try:
            return self._remembered(user_id, super().get_user(user_id))
        except UNREACHABLE as exc:
            return self._recalled(user_id, exc)

    async def aget_user(self, user_id: Any) -> Any:
        """``get_user`` for async callers (websocket handshakes and re-checks)."""
        try:
            return self._remembered(user_id, await super().aget_user(user_id))
        except UNREACHABLE as exc:
            return self._recalled(user_id, exc)

    def _get_permissions(self, user_obj: Any, obj: Any, from_name: str) -> set[str]:
        """The user's or its groups' permissions; none while the database is unreachable (fail closed)."""
        try:
            return super()._get_permissions(user_obj, obj, from_name)
        except UNREACHABLE:
            return set()

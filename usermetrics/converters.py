"""URL converter that gives every user id exactly one URL path segment (sync).

User ids are arbitrary strings. Servers decode ``%2F`` to ``/`` before routing, so an id with a
slash could not be told apart from a longer path (``/api/users/<id>/history``). Inside the
segment ``~`` is the escape: ``/`` is written ``~2F``, ``~`` is ``~7E``, and a leading ``.`` is
``~2E`` (browsers would resolve a ``.`` or ``..`` segment away). The empty id, which a path
segment cannot hold, is the reserved segment ``~`` alone (no other id encodes to it: a ``~`` of
an id is always ``~7E``). Everything else is left to the usual percent-encoding done by ``reverse()``.
"""

from __future__ import annotations

import re

from django.urls import register_converter
from django.urls.converters import get_converters

_ESCAPED = re.compile(r"~(2F|7E|2E)")
_BAD_TILDE = re.compile(r"~(?!2F|7E|2E)")
_DECODE = {"2F": "/", "7E": "~", "2E": "."}
EMPTY_SEGMENT = "~"  # the empty user id


def user_id_to_segment(user_id: str) -> str:
    """Encode a user id into one path segment (before percent-encoding)."""
    if not user_id:
        return EMPTY_SEGMENT
    encoded = user_id.replace("~", "~7E").replace("/", "~2F")
    if encoded.startswith("."):
        encoded = "~2E" + encoded[1:]
    return encoded


def segment_to_user_id(segment: str) -> str:
    """Decode a path segment back into the user id; ValueError for a malformed escape."""
    if segment == EMPTY_SEGMENT:
        return ""
    if _BAD_TILDE.search(segment):
        raise ValueError("malformed ~ escape in user id segment")
    return _ESCAPED.sub(lambda m: _DECODE[m.group(1)], segment)


class UserIdConverter:
    """``<userid:user_id>``: any string (the empty one too), one non-empty segment in the URL."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        """Segment -> user id (a bad escape is a 404, not a 500)."""
        return segment_to_user_id(value)

    def to_url(self, value: str) -> str:
        """User id -> segment."""
        return user_id_to_segment(value)


def converter_register() -> None:
    """Register ``<userid:...>`` for path(); both URL tables (HTTP and websocket) call this, once is enough."""
    if "userid" not in get_converters():
        register_converter(UserIdConverter, "userid")

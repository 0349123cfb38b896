"""ORM fields and helpers (sync): the user-id column that holds any string, and its key."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django import forms
from django.db import models

# PostgreSQL's text cannot hold NUL, which a source may put in a user id: it is stored as this
# escape (two Unicode noncharacters, which no real id holds), and the escape character itself doubled.
_ESC = "\uffff"
_STORED = {"\x00": _ESC + "\ufffe", _ESC: _ESC + _ESC}
_LOADED = {_ESC + "\ufffe": "\x00", _ESC + _ESC: _ESC}
_TO_DB = re.compile("[\x00\uffff]")
_FROM_DB = re.compile("\uffff[\ufffe\uffff]")


def db_text(value: str) -> str:
    """``value`` as the database stores it (NUL escaped); ``db_text_loaded`` undoes it."""
    return _TO_DB.sub(lambda m: _STORED[m.group()], value)


def db_text_loaded(value: str) -> str:
    """The string that ``db_text`` stored as ``value``."""
    return _FROM_DB.sub(lambda m: _LOADED[m.group()], value)


def user_id_printable(user_id: str) -> str:
    """The id with its unprintable characters escaped (``\\x00``): for the texts that name it (a log entry's)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in user_id)


def user_key(user_id: str) -> str:
    """The indexed key of a user id, its SHA-256: ids have any length, a B-tree entry at most about 2.7 kB."""
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


class UserIdField(models.TextField):
    """A user id as a source sent it: any length, any character (NUL too), not indexed (``user_key`` is)."""

    def get_prep_value(self, value: Any) -> Any:
        """Python -> database (lookups with ``=`` and ``__in`` come through here too)."""
        value = super().get_prep_value(value)
        return db_text(value) if isinstance(value, str) else value

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        """Database -> Python."""
        return db_text_loaded(value) if isinstance(value, str) else value

    def formfield(self, **kwargs: Any) -> Any:
        """One line in forms (the admin's silences), not a text area."""
        return super().formfield(**{"widget": forms.TextInput, **kwargs})

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        """Migrations name the field by its public path, which ``usermetrics.models`` keeps wherever it lives."""
        name, _path, args, kwargs = super().deconstruct()
        return name, "usermetrics.models.UserIdField", args, kwargs

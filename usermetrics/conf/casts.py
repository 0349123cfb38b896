"""How one USERMETRICS value is read (sync): numbers, on/off, lists and choices, from their own types or strings.

Settings hand conf the raw strings of the environment (``monitor_site/settings.py``, ``USERMETRICS_ENV``),
and a settings file may write typed values: every cast here takes both. A value it cannot read is an
``ImproperlyConfigured`` that names the key (and the environment variable that sets it, when there is one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

# One cast: the value and the words naming where it came from, to the cast value.
Cast = Callable[[Any, str], Any]

ON = frozenset({"1", "true", "yes", "on"})
OFF = frozenset({"0", "false", "no", "off"})


def where_words(path: tuple[str, ...], env: str | None = None) -> str:
    """``USERMETRICS['HISTORY']['ENABLED']``, with ``(env USERMETRICS_HISTORY)`` when a variable sets it."""
    key = "USERMETRICS" + "".join(f"[{part!r}]" for part in path)
    return f"{key} (env {env})" if env else key


def number(value: Any, where: str) -> float:
    """A float, from a number or a string such as ``"2.5"``."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{where}: could not convert {value!r} to a number") from None


def integer(value: Any, where: str) -> int:
    """A whole number, from an int or a string such as ``"40"`` (never a float cut short)."""
    if isinstance(value, float) and not value.is_integer():
        raise ImproperlyConfigured(f"{where}: could not convert {value!r} to a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{where}: could not convert {value!r} to a whole number") from None


def on_off(value: Any, where: str) -> bool:
    """A bool, from a bool, 0/1, or one of 1/0, true/false, yes/no, on/off in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower() if isinstance(value, str) else None
    if word in ON:
        return True
    if word in OFF:
        return False
    raise ImproperlyConfigured(f"{where} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def optional(cast: Cast) -> Cast:
    """``cast``, except that None or a blank string is None (the key's "decide for me")."""

    def read(value: Any, where: str) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return cast(value, where)

    return read


def text(value: Any, where: str) -> str:
    """A string; None is the empty string."""
    return "" if value is None else str(value)


def strings(value: Any, where: str) -> tuple[str, ...]:
    """A tuple of non-empty, stripped strings, from a list or a comma-separated string."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, Mapping) or not hasattr(items, "__iter__"):
        raise ImproperlyConfigured(f"{where}: a list of strings or a comma-separated string, got {value!r}")
    return tuple(str(item).strip() for item in items if str(item).strip())


def choice(*options: str) -> Cast:
    """One of ``options``, as a string."""

    def read(value: Any, where: str) -> str:
        word = str(value)
        if word not in options:
            raise ImproperlyConfigured(f"{where} must be one of {', '.join(options)}, got {value!r}")
        return word

    return read


def as_is(value: Any, where: str) -> Any:
    """The value unchanged: a structured key (sources, rules) that its own parser reads."""
    return value

"""Names for NAT's user UUIDs: derive them, register them, look labels up cheaply (sync and async).

NAT reports ``user_id = uuid5(uuid5(NAMESPACE_DNS, "nemo-agent-toolkit"), key)``, where the key
is the ``nat-session`` cookie, the JWT's identity claim (``sub``), the API key (``X-API-Key`` or a
non-JWT bearer token), or ``base64("user:password")`` of Basic credentials. Staff register the
credential once; only its label, kind and derived UUID are stored.

Lookups read one ``user_id -> label`` dict that is loaded once and dropped whenever an identity
is saved or deleted in this process, and after ``LABELS_TTL`` seconds so that other processes
(several Daphne workers, the producer) see changes too.
"""

from __future__ import annotations

import base64
import csv
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from channels.db import DatabaseSyncToAsync
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from usermetrics.models import Identity, IdentityKind
from usermetrics.outage import UNREACHABLE

logger = logging.getLogger(__name__)

NAT_USER_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "nemo-agent-toolkit")
LABELS_TTL = 30.0  # seconds before another process's changes show up here

_labels: dict[str, str] | None = None
_labels_loaded_at = 0.0


def user_id_derive(*, kind: str, value: str) -> str:
    """The user id NAT 1.9 reports for ``value`` of ``kind``; ValueError when the value cannot be one.

    ``basic`` takes ``user:password``. ``jwt_sub`` takes the claim NAT uses: ``sub`` (else
    ``email``, else ``preferred_username``) as it appears in the token.
    """
    if kind not in IdentityKind.values:
        raise ValueError(f"kind must be one of {', '.join(IdentityKind.values)}, not {kind!r}")
    if not value:
        raise ValueError("the value is empty")
    key = value
    if kind == IdentityKind.JWT_SUB:
        key = value.strip()  # NAT strips the claim before hashing it
        if not key:
            raise ValueError("the JWT subject is blank")
    elif kind == IdentityKind.BASIC:
        username, sep, _ = value.partition(":")
        if not sep or not username:
            raise ValueError("Basic credentials must be written user:password")
        key = base64.b64encode(value.encode()).decode()
    return str(uuid.uuid5(NAT_USER_ID_NAMESPACE, key))


def identity_register(*, label: str, kind: str, value: str) -> tuple[Identity, bool]:
    """Name the user whose credential is ``value``; returns the identity and whether it is new.

    Registering the same credential again changes its label.
    """
    label = label.strip()
    if not label:
        raise ValueError("the label is empty")
    user_id = user_id_derive(kind=kind, value=value)
    return Identity.objects.update_or_create(user_id=user_id, defaults={"label": label, "kind": kind})


@dataclass
class ImportResult:
    """What an import did: counts, and one message per rejected line (never the secret value)."""

    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


def identities_import(*, rows: TextIO) -> ImportResult:
    """Register every ``label,kind,value`` line of a CSV (a header line is skipped); all or nothing."""
    result = ImportResult()
    parsed: list[tuple[int, str, str, str]] = []
    for number, row in _csv_rows(rows):
        if len(row) != 3:
            result.errors.append(f"line {number}: expected 3 fields label,kind,value, got {len(row)}")
            continue
        label, kind, value = (cell.strip() if i < 2 else cell for i, cell in enumerate(row))
        try:
            user_id_derive(kind=kind, value=value)
            if not label:
                raise ValueError("the label is empty")
        except ValueError as exc:
            result.errors.append(f"line {number}: {exc}")
            continue
        parsed.append((number, label, kind, value))
    if result.errors:
        return result
    with transaction.atomic():
        for _, label, kind, value in parsed:
            _, created = identity_register(label=label, kind=kind, value=value)
            if created:
                result.created += 1
            else:
                result.updated += 1
    return result


def _csv_rows(rows: TextIO) -> Iterator[tuple[int, list[str]]]:
    for number, row in enumerate(csv.reader(rows), start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if number == 1 and [cell.strip().lower() for cell in row] == ["label", "kind", "value"]:
            continue
        yield number, row


def identity_labels() -> dict[str, str]:
    """Every registered ``user_id -> label`` (sync; cached, do not modify the dict; the last read while unreachable)."""
    global _labels, _labels_loaded_at
    labels = _labels
    if labels is None or time.monotonic() - _labels_loaded_at > LABELS_TTL:
        try:
            labels = dict(Identity.objects.values_list("user_id", "label"))
        except UNREACHABLE as exc:
            # Names are a nicety: through an outage the last ones serve (none if never read), and
            # the next lookup tries the database again.
            logger.warning("Identity labels unavailable (%s); showing the last ones read", exc)
            return labels or {}
        _labels, _labels_loaded_at = labels, time.monotonic()
    return labels


async def identity_labels_aget() -> dict[str, str]:
    """Every registered ``user_id -> label`` (async; the database is read in a worker thread when needed).

    The thread is one of its own (closing its connection after), not Django's one sync thread: a
    socket's first frame must not wait behind the process's sync views.
    """
    labels = _labels
    if labels is not None and time.monotonic() - _labels_loaded_at <= LABELS_TTL:
        return labels
    return await DatabaseSyncToAsync(identity_labels, thread_sensitive=False)()


async def user_label_get(*, user_id: str) -> str | None:
    """The label registered for ``user_id``, or None."""
    return (await identity_labels_aget()).get(user_id)


def identity_labels_forget() -> None:
    """Drop the cached labels; the next lookup reads the database."""
    global _labels
    _labels = None


@receiver(post_save, sender=Identity)
@receiver(post_delete, sender=Identity)
def _identity_changed(**kwargs: Any) -> None:
    """A label was added, changed or removed in this process: read them again next time."""
    identity_labels_forget()

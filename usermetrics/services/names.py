"""Names for user ids (sync and async): the registered labels pages and frames show, and importing them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TextIO

from usermetrics import identities

logger = logging.getLogger(__name__)


def labels_get() -> dict[str, str]:
    """Registered names, ``user_id -> label`` (sync; cached, read at most every 30 s)."""
    return identities.identity_labels()


async def labels_aget() -> Mapping[str, str]:
    """Registered names (async; none while the database cannot be read: names are a nicety)."""
    try:
        return await identities.identity_labels_aget()
    except Exception:
        logger.warning("Identity labels unavailable; showing ids without names", exc_info=True)
        return {}


def identities_import(*, rows: TextIO) -> identities.ImportResult:
    """Register every ``label,kind,value`` line of a CSV; all lines or none (``importidentities``)."""
    return identities.identities_import(rows=rows)

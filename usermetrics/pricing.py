"""The price table in force (sync and async, ORM): the settings' prices with the admin's over them, kept briefly.

Every cost the dashboard shows or records comes from ``price_table_get()``: the producer's
history (cost at the time of use), the faces' live costs and the alert rules. The table is read
again at most every ``RELOAD_SECONDS`` in each process, and at once in the process that saved a
price (the admin's save and delete): another process sees a change within that time.
"""

from __future__ import annotations

import logging
import threading
import time

from asgiref.sync import sync_to_async
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from usermetrics.conf import get_config
from usermetrics.models import ModelPrice
from usermetrics.prices import Price, PriceTable

logger = logging.getLogger("usermetrics.pricing")

RELOAD_SECONDS = 10.0

_lock = threading.Lock()
_cached: tuple[float, PriceTable] | None = None


def _load() -> PriceTable:
    """The settings' table with the admin's prices over it; a row in another currency is left out (and logged)."""
    table = get_config().prices
    rows: dict[str, Price] = {}
    for row in ModelPrice.objects.all():
        currency = row.currency.strip().upper()
        if currency != table.currency:
            logger.warning("The price of %r is in %s, not %s: left out", row.model, currency, table.currency)
            continue
        cached = row.cached if row.cached is not None else row.prompt
        rows[row.model] = Price(float(row.prompt), float(row.completion), float(cached), table.currency)
    return table.with_prices(rows)


def price_table_get() -> PriceTable:
    """The prices in force (at most ``RELOAD_SECONDS`` old; the settings' alone while the database is out of reach)."""
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and now - cached[0] < RELOAD_SECONDS:
        return cached[1]
    with _lock:
        try:
            table = _load()
        except DatabaseError:
            # The last table read, or the settings': a cost is better shown from slightly old prices than not at all.
            logger.warning("Prices could not be read from the database", exc_info=True)
            table = cached[1] if cached is not None else get_config().prices
        _cached = (now, table)
        return table


async def aprice_table_get() -> PriceTable:
    """``price_table_get`` for async callers (a database read at most every ``RELOAD_SECONDS``)."""
    cached = _cached
    if cached is not None and time.monotonic() - cached[0] < RELOAD_SECONDS:
        return cached[1]
    return await sync_to_async(price_table_get)()


def price_table_forget() -> None:
    """Read the prices again at the next call (a price was saved or deleted, or a test changed the settings)."""
    global _cached
    _cached = None


@receiver(post_save, sender=ModelPrice)
@receiver(post_delete, sender=ModelPrice)
def _price_changed(**_: object) -> None:
    price_table_forget()


@receiver(setting_changed)
def _settings_changed(*, setting: str, **_: object) -> None:
    if setting == "USERMETRICS":
        price_table_forget()

"""The price table in force: the settings' prices, the admin's over them, read again when one is saved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from usermetrics.conf.build import config_build
from usermetrics.models import ModelPrice
from usermetrics.prices import Price
from usermetrics.pricing import price_table_get

SETTINGS_PRICES = {"PRICES": {"a": {"prompt": 1, "completion": 2}, "b": {"prompt": 3, "completion": 4}}}


@pytest.mark.django_db
def test_price_table_get_puts_the_admins_prices_over_the_settings_and_sees_a_save_at_once():
    with override_settings(USERMETRICS=SETTINGS_PRICES):
        assert price_table_get().price_of("a") == Price(1, 2, 1)
        ModelPrice.objects.create(model="a", prompt=Decimal("0.5"), completion=Decimal("1.5"), currency="USD")
        ModelPrice.objects.create(model="c", prompt=1, completion=1, cached=Decimal("0.1"), currency="usd")
        table = price_table_get()
        assert table.price_of("a") == Price(0.5, 1.5, 0.5) and table.price_of("b") == Price(3, 4, 3)
        assert table.price_of("c") == Price(1, 1, 0.1)
        ModelPrice.objects.filter(model="a").get().delete()
        assert price_table_get().price_of("a") == Price(1, 2, 1)


@pytest.mark.django_db
def test_price_table_get_leaves_out_a_row_in_another_currency(caplog):
    ModelPrice.objects.create(model="eur", prompt=1, completion=1, currency="EUR")
    assert price_table_get().price_of("eur") is None
    assert "in EUR, not USD" in caplog.text


def test_config_refuses_prices_it_cannot_read_naming_the_variable():
    with pytest.raises(ImproperlyConfigured, match=r"env USERMETRICS_PRICES.*in EUR, the table's currency is USD"):
        config_build(
            {"PRICES": '{"m": {"prompt": 1, "completion": 1, "currency": "eur"}}'}, {("PRICES",): "USERMETRICS_PRICES"}
        )
    assert config_build({"PRICES": "{}", "CURRENCY": "eur"}, {}).prices.currency == "EUR"

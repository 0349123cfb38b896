"""The admin of model prices: the list, the currency (the deployment's, another refused), the settings' prices shown."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings
from django.urls import reverse

from usermetrics.models import ModelPrice
from usermetrics.pricing import price_table_get

SETTINGS = {"CURRENCY": "EUR", "PRICES": {"gpt-4o": {"prompt": 2.5, "completion": 10, "cached": 1.25}}}

pytestmark = pytest.mark.django_db


def _form(**values: str) -> dict[str, str]:
    return {"model": "demo-large", "prompt": "3", "completion": "15", "cached": "", "currency": "EUR", **values}


@override_settings(USERMETRICS=SETTINGS)
def test_model_price_admin_add_form_starts_in_the_deployments_currency_and_names_the_settings_models(admin_client):
    page = admin_client.get(reverse("admin:usermetrics_modelprice_add")).content.decode()
    assert 'name="currency" value="EUR"' in page
    assert "Priced by the settings (USERMETRICS_PRICES; a price here wins): gpt-4o." in page


@override_settings(USERMETRICS=SETTINGS)
def test_model_price_admin_saves_a_price_that_the_table_uses_at_once(admin_client):
    response = admin_client.post(reverse("admin:usermetrics_modelprice_add"), _form(currency="eur"))
    assert response.status_code == 302
    row = ModelPrice.objects.get(model="demo-large")
    assert (row.prompt, row.completion, row.cached, row.currency) == (Decimal(3), Decimal(15), None, "EUR")
    price = price_table_get().price_of("demo-large")
    assert price is not None and (price.prompt, price.completion, price.cached) == (3.0, 15.0, 3.0)


@override_settings(USERMETRICS=SETTINGS)
def test_model_price_admin_refuses_another_currency_with_a_clear_message(admin_client):
    response = admin_client.post(reverse("admin:usermetrics_modelprice_add"), _form(currency="USD"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["currency"]
    assert errors == [
        "Prices here are in EUR (USERMETRICS_CURRENCY), not USD: costs in two currencies cannot be added up."
        " Enter the price in EUR."
    ]
    assert not ModelPrice.objects.exists()


@override_settings(USERMETRICS=SETTINGS)
def test_model_price_admin_refuses_a_negative_price(admin_client):
    response = admin_client.post(reverse("admin:usermetrics_modelprice_add"), _form(prompt="-1"))
    assert response.status_code == 200 and "prompt" in response.context["adminform"].form.errors


@override_settings(USERMETRICS=SETTINGS)
def test_model_price_admin_list_shows_the_rows_searches_and_the_settings_prices_read_only(admin_client):
    ModelPrice.objects.create(model="demo-large", prompt=Decimal(3), completion=Decimal(15), currency="EUR")
    ModelPrice.objects.create(model="demo-small", prompt=Decimal("0.2"), completion=Decimal("0.8"), currency="EUR")
    url = reverse("admin:usermetrics_modelprice_changelist")
    page = admin_client.get(url).content.decode()
    assert "demo-large" in page and "demo-small" in page
    for header in ("Model", "Prompt price", "Completion price", "Cached prompt price", "Currency", "Updated at"):
        assert header in page
    assert "gpt-4o: prompt 2.5, completion 10, cached 1.25 EUR per million" in page
    found = admin_client.get(url, {"q": "small"}).content.decode()
    assert "demo-small" in found and "demo-large" not in found


def test_model_price_admin_list_says_when_the_settings_price_nothing(admin_client):
    page = admin_client.get(reverse("admin:usermetrics_modelprice_changelist")).content.decode()
    assert "The settings price no model" in page

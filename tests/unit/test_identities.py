"""Identities: NAT's user id derivation, the registry that stores no secret, the label cache."""

from __future__ import annotations

import pytest

from tests.support.factories import NAT_REPORTED
from usermetrics.identities import (
    identity_labels,
    identity_labels_aget,
    identity_register,
    user_id_derive,
    user_label_get,
)
from usermetrics.models import Identity

pytestmark = pytest.mark.usefixtures("fresh_label_cache")


@pytest.mark.parametrize(("kind", "value", "user_id"), NAT_REPORTED)
def test_identities_derive_the_ids_nat_reports(kind, value, user_id):
    assert user_id_derive(kind=kind, value=value) == user_id


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("password", "x", "kind must be one of"),
        ("basic", "nocolon", "user:password"),
        ("basic", ":pw", "user:password"),
    ],
)
def test_identities_reject_values_nat_would_not_accept(kind, value, message):
    with pytest.raises(ValueError, match=message):
        user_id_derive(kind=kind, value=value)


@pytest.mark.django_db
def test_identities_store_no_secret_and_cache_follows_saves_and_deletes():
    assert identity_labels() == {}
    identity, created = identity_register(label="Bob", kind="api_key", value="key-bob")
    assert created and identity.user_id == "63a4c193-de10-5201-9958-5c32567ba1eb"
    row = Identity.objects.values().get()
    assert "key-bob" not in repr(row)
    assert identity_labels() == {identity.user_id: "Bob"}  # the save dropped the cached empty dict
    identity_register(label="Robert", kind="api_key", value="key-bob")
    assert identity_labels() == {identity.user_id: "Robert"} and Identity.objects.count() == 1
    Identity.objects.all().delete()
    assert identity_labels() == {}


@pytest.mark.django_db(transaction=True)
async def test_identities_async_lookup():
    from asgiref.sync import sync_to_async

    await sync_to_async(identity_register)(label="Alice", kind="cookie", value="cookie-alice")
    assert await user_label_get(user_id="3ca87aca-b34e-511f-b582-23b4c4e4f20b") == "Alice"
    assert await user_label_get(user_id="someone-else") is None
    assert await identity_labels_aget() is await identity_labels_aget()  # cached, not re-read

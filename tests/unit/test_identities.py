"""Identities: NAT's user id derivation, the admin form, the label cache."""

from __future__ import annotations

import pytest
from django.urls import reverse

from usermetrics import identities
from usermetrics.identities import (
    identity_labels,
    identity_labels_aget,
    identity_register,
    user_id_derive,
    user_label_get,
)
from usermetrics.models import Identity

# The user ids a real NAT 1.9.0 server reported for these credentials (nat serve, /monitor/users).
NAT_REPORTED = [
    ("cookie", "cookie-alice", "3ca87aca-b34e-511f-b582-23b4c4e4f20b"),  # Cookie: nat-session=cookie-alice
    ("api_key", "key-bob", "63a4c193-de10-5201-9958-5c32567ba1eb"),  # X-API-Key: key-bob
    ("jwt_sub", "carol", "a51a12c2-3691-5d0a-9cdf-69f27626d170"),  # Bearer JWT with "sub": "carol"
    ("basic", "dave:pw", "d524c096-fff7-5696-a399-2a07510f11cd"),  # Basic dave:pw
]


@pytest.fixture(autouse=True)
def _fresh_label_cache():
    identities.identity_labels_forget()
    yield
    identities.identity_labels_forget()


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


@pytest.mark.django_db
def test_identity_admin_add_derives_the_id_and_stores_no_secret(admin_client):
    url = reverse("admin:usermetrics_identity_add")
    page = admin_client.get(url)
    assert page.status_code == 200 and b'name="value"' in page.content
    response = admin_client.post(url, {"label": "Carol", "kind": "jwt_sub", "value": "carol"})
    assert response.status_code == 302, response.content
    identity = Identity.objects.get()
    assert (identity.label, identity.kind, identity.user_id) == ("Carol", "jwt_sub", NAT_REPORTED[2][2])
    assert identity_labels() == {NAT_REPORTED[2][2]: "Carol"}
    # Search by label in the admin list.
    listing = admin_client.get(reverse("admin:usermetrics_identity_changelist"), {"q": "caro"})
    assert NAT_REPORTED[2][2].encode() in listing.content
    # Renaming needs no credential; the credential is never shown back.
    change = reverse("admin:usermetrics_identity_change", args=[identity.pk])
    assert b"carol" not in admin_client.get(change).content.replace(b"Carol", b"")
    response = admin_client.post(change, {"label": "Carol C.", "kind": "jwt_sub", "value": ""})
    assert response.status_code == 302
    assert identity_labels() == {NAT_REPORTED[2][2]: "Carol C."}


@pytest.mark.django_db
def test_identity_admin_requires_credential_and_refuses_duplicates(admin_client):
    identity_register(label="Bob", kind="api_key", value="key-bob")
    url = reverse("admin:usermetrics_identity_add")
    missing = admin_client.post(url, {"label": "X", "kind": "cookie", "value": ""})
    assert missing.status_code == 200 and b"Enter the credential" in missing.content
    duplicate = admin_client.post(url, {"label": "Bobby", "kind": "api_key", "value": "key-bob"})
    assert duplicate.status_code == 200 and b"already registered as" in duplicate.content
    bad = admin_client.post(url, {"label": "D", "kind": "basic", "value": "nocolon"})
    assert bad.status_code == 200 and b"user:password" in bad.content
    assert b"nocolon" not in bad.content  # the password field is not rendered back

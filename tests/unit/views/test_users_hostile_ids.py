"""Ids a lying source can send (empty, blank, NUL, 10,000 characters) render, link and open everywhere."""

from __future__ import annotations

import json
import random
import re
import string
from datetime import timedelta
from html import unescape

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from tests.support.history_helpers import FixedSource, recorder, snapshot, usage
from usermetrics.clock import utcnow

pytestmark = pytest.mark.django_db(transaction=True)

# The long one is random: a B-tree entry of 10,000 characters that do not compress does not fit.
LONG = "".join(random.Random(10).choices(string.ascii_letters + string.digits, k=10_000))
HOSTILE = ["", " ", "\t \n", "nul\x00id", LONG]
HOSTILE_NAMES = ["empty", "space", "blanks", "nul", "long"]


def _hrefs(html: str) -> dict[str, str]:
    """Row user id -> its link, from the list's table."""
    rows = re.findall(r'<tr data-user-id="([^"]*)".*?<a href="([^"]*)"', html, flags=re.S)
    return {unescape(uid): unescape(href) for uid, href in rows}


@pytest.fixture
async def hostile_live(install_service):
    """Every hostile id reported by one source, next to a plain user; recorded once."""
    now = utcnow()
    users = [usage(uid, total=3, last=now - timedelta(minutes=1)) for uid in [*HOSTILE, "plain"]]
    await sync_to_async(recorder().record)(snapshot(now - timedelta(minutes=1), users))
    await install_service([FixedSource("demo", users)], interval=3600)
    return users


@pytest.fixture
async def hostile_ended(install_service):
    """Every hostile id reported, then gone: ended users the history keeps."""
    now = utcnow()
    before = [usage(uid, total=3, last=now - timedelta(minutes=3)) for uid in [*HOSTILE, "plain"]]
    after = [usage("plain", total=4, last=now)]
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=3), before))
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=1), after))
    await install_service([FixedSource("demo", after)], interval=3600)


@pytest.mark.parametrize("user_id", HOSTILE, ids=HOSTILE_NAMES)
async def test_hostile_ids_render_link_and_open_while_live(hostile_live, staff_client, user_id):
    response = await staff_client.get("/")
    assert response.status_code == 200
    href = _hrefs(response.content.decode())[user_id]
    assert href == reverse("usermetrics:user-detail", args=[user_id])
    detail = await staff_client.get(href)
    assert detail.status_code == 200
    assert (
        json.loads(re.search(r'id="um-config"[^>]*>(.*?)</script>', detail.content.decode(), re.S).group(1))["user_id"]
        == user_id
    )
    api = await staff_client.get(reverse("usermetrics:api-user", args=[user_id]))
    assert api.status_code == 200 and api.json()["user_id"] == user_id
    history = await staff_client.get(reverse("usermetrics:api-user-history", args=[user_id]))
    assert history.status_code == 200
    csv_export = await staff_client.get(reverse("usermetrics:api-user-history-csv", args=[user_id]))
    assert csv_export.status_code == 200
    assert b"".join([chunk async for chunk in csv_export.streaming_content]).count(b"\n") == 2  # header + sample
    listed = await staff_client.get(reverse("usermetrics:api-export-users-json"))
    ids = [row["user_id"] for row in json.loads(b"".join([c async for c in listed.streaming_content]))]
    assert user_id in ids


@pytest.mark.parametrize("user_id", HOSTILE, ids=HOSTILE_NAMES)
async def test_hostile_ids_render_link_and_open_after_they_ended(hostile_ended, staff_client, user_id):
    response = await staff_client.get("/", {"state": "ended"})
    assert response.status_code == 200
    href = _hrefs(response.content.decode())[user_id]
    detail = await staff_client.get(href)
    assert detail.status_code == 200
    assert "ended" in detail.content.decode()
    api = await staff_client.get(reverse("usermetrics:api-user", args=[user_id]))
    assert api.status_code == 200 and api["Usermetrics-User-State"] == "ended"

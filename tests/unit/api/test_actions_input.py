"""Acting on a user through the JSON API: what is refused before anything is sent (bad fields, a reason with control
characters, an id no command can name), and an odd user id logged everywhere."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.test import AsyncClient
from django.urls import reverse

from tests.support.acting import ACT_TOKEN, commands_sent, csrf_client, detail
from tests.support.fake_workers import workers_answering
from tests.unit.conftest import LONG_ID, ODD_ID
from usermetrics.models import UserAction

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "A hold needs seconds"),
        ({"seconds": "soon"}, "seconds must be a number"),
        ({"seconds": 30 * 86400}, "A hold needs seconds"),
        ({"seconds": 60, "reason": 5}, "reason must be a string"),
    ],
)
async def test_api_actions_hold_with_bad_fields_is_400_and_nothing_is_sent(acting, settings, body, words):
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    response = await AsyncClient().post(
        "/api/users/ada/actions/hold", body, content_type="application/json",
        headers={"Authorization": f"Bearer {ACT_TOKEN}"},
    )  # fmt: skip
    assert response.status_code == 400 and words in detail(response)
    assert await commands_sent(acting) == 0


async def test_api_actions_hold_seconds_too_large_for_a_float_is_400_and_nothing_is_sent(acting, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    response = await AsyncClient().post(
        "/api/users/ada/actions/hold", '{"seconds": 1' + "0" * 400 + "}", content_type="application/json",
        headers={"Authorization": f"Bearer {ACT_TOKEN}"},
    )  # fmt: skip
    assert response.status_code == 400 and "seconds must be a number" in detail(response)
    assert await commands_sent(acting) == 0


@pytest.mark.parametrize("reason", ["nul\x00byte", "bell\x07", "escape \x1b[31m"])
async def test_api_actions_a_reason_with_control_characters_is_400_and_nothing_is_sent(acting, settings, reason):
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await AsyncClient().post(
            "/api/users/ada/actions/hold", {"seconds": 60, "reason": reason}, content_type="application/json",
            headers={"Authorization": f"Bearer {ACT_TOKEN}"},
        )  # fmt: skip
    assert response.status_code == 400 and "control characters" in detail(response)
    assert await commands_sent(acting) == 0


async def test_api_actions_on_a_user_id_with_a_slash_unicode_html_and_a_nul_is_logged_everywhere(acting, acting_staff):
    client, token = await csrf_client(acting_staff)
    url = reverse("usermetrics:api-user-hold", args=[ODD_ID])
    async with workers_answering(acting, "nat-1:101", "nat-1:102") as holds:
        response = await client.post(
            url, {"seconds": 60, "reason": "<script>x</script> ü"}, content_type="application/json",
            headers={"X-CSRFToken": token},
        )  # fmt: skip
        assert all(h.get(ODD_ID) is not None for h in holds.values()), response.content
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["user_id"] == ODD_ID
    done = await UserAction.objects.aget()
    assert (done.user_id, done.outcome) == (ODD_ID, "done")
    entry = await LogEntry.objects.aget()
    assert entry.object_id == str(done.pk) and "<script>x</script>" in entry.get_change_message()
    page = (await client.get(reverse("usermetrics:user-detail", args=[ODD_ID]))).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page
    admin_page = (await client.get("/admin/")).content.decode()
    assert "<b>" not in admin_page.split("Recent actions")[1]


async def test_api_actions_on_a_user_id_no_command_can_name_is_400_and_nothing_is_sent(acting, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    response = await AsyncClient().post(
        reverse("usermetrics:api-user-evict", args=[LONG_ID]), headers={"Authorization": f"Bearer {ACT_TOKEN}"}
    )
    assert response.status_code == 400 and detail(response).startswith("No command can name this user")
    assert await commands_sent(acting) == 0 and await UserAction.objects.acount() == 0

"""The user page's Actions panel: buttons by permission, the forms (CSRF), each worker's answer, the hold, the log."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import AsyncClient

from tests.support.fake_workers import workers_answering
from usermetrics.models import UserAction
from usermetrics.publish.face import face_get

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def panel(html: str) -> str:
    """The Actions panel's HTML."""
    return re.search(r'<div class="module um-module um-actions" id="um-actions">.*?\n</div>', html, re.S).group(0)


def buttons(html: str) -> dict[str, str]:
    """Each action button's attributes, by action."""
    return {
        m.group(2): m.group(1)
        for m in re.finditer(r'<button type="submit" class="button"( data-action="(\w+)"[^>]*)>', html)
    }


def messages(html: str) -> list[str]:
    """The admin's message list, as text."""
    return [
        unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in re.findall(r"<li class=\"\w+\">(.*?)</li>", html, re.S)
    ]


async def test_views_actions_staff_without_the_permission_sees_disabled_buttons_and_gets_403(acting, staff_client):
    html = panel((await staff_client.get("/users/ada/")).content.decode())
    assert "You need the &#x27;Can evict, hold and release users&#x27; permission." in html
    assert set(buttons(html)) == {"evict", "hold"}  # release only while held
    assert all(" disabled title=" in attrs for attrs in buttons(html).values())
    assert "No action was taken on this user." in html
    assert (await staff_client.post("/users/ada/actions/evict", {"reason": "x"})).status_code == 403
    assert await UserAction.objects.acount() == 0


async def test_views_actions_form_post_without_the_csrf_token_is_refused(acting, acting_staff):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(acting_staff)
    assert (await client.post("/users/ada/actions/evict", {"reason": "x"})).status_code == 403
    assert await UserAction.objects.acount() == 0


async def test_views_actions_evict_hold_release_each_workers_answer_the_hold_and_the_log(acting, acting_staff):
    client = AsyncClient()
    await client.aforce_login(acting_staff)
    html = panel((await client.get("/users/ada/")).content.decode())
    assert not any("disabled" in attrs for attrs in buttons(html).values())
    assert html.count('name="csrfmiddlewaretoken"') == 2 and "Not held" in html

    async with workers_answering(acting, "nat-1:101"):  # nat-1:102 never answers
        response = await client.post("/users/ada/actions/hold", {"seconds": "900", "reason": "runaway"}, follow=True)
    page = response.content.decode()
    assert messages(page)[:3] == [
        "Hold: ada — partly: 1 worker did not answer.",
        "Worker nat-1:101: done (held until " + messages(page)[1].split("held until ")[1],
        "Worker nat-1:102: no answer (no answer within 0.5 s)",
    ]
    html = panel(page)
    assert re.search(r"Held until <time [^>]+>[\d-]+ [\d:]+ UTC</time> by <strong>staff</strong>: runaway\.", html)
    assert set(buttons(html)) == {"evict", "hold", "release"}

    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await client.post("/users/ada/actions/release", {"reason": "calm again"}, follow=True)
    page = response.content.decode()
    assert messages(page)[0] == "Released ada — done."
    html = panel(page)
    assert "Not held" in html and "release" not in buttons(html)
    rows = re.findall(r'<tr data-outcome="([^"]+)">(.*?)</tr>', html, re.S)
    assert [outcome for outcome, _ in rows] == ["done", "partly"]  # newest first
    release, hold = (" ".join(unescape(re.sub(r"<[^>]+>", "", row)).split()) for _, row in rows)
    assert "staff" in release and "calm again" in release and "nat-1:102: done" in release
    assert "runaway" in hold and "nat-1:102: no answer" in hold


async def test_views_actions_a_user_no_companion_reports_gets_nothing_sent(acting, acting_staff):
    client = AsyncClient()
    await client.aforce_login(acting_staff)
    html = panel((await client.get("/users/cy/")).content.decode())
    assert "No NAT companion reports this user now: there is nothing to evict, but a hold goes" in html
    attributes = buttons(html)
    assert 'disabled title="No NAT companion reports this user"' in attributes["evict"]
    assert "disabled" not in attributes["hold"]  # a user gone can be held before it comes back
    response = await client.post("/users/cy/actions/evict", {"reason": "x"}, follow=True)
    assert messages(response.content.decode())[0] == "User cy is not reported by any NAT companion: nothing was sent."


async def test_views_actions_evict_while_the_board_shows_requests_in_flight_says_so_and_sends_nothing(
    acting, acting_staff
):
    client = AsyncClient()
    await client.aforce_login(acting_staff)
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await client.post("/users/dee/actions/evict", {"reason": "stuck"}, follow=True)
    page = response.content.decode()
    assert messages(page)[:2] == [
        "Evict: dee — refused: 2 requests running.",
        "The dashboard: refused (the dashboard shows requests of this user in flight: no worker was asked)",
    ]
    rows = re.findall(r'<tr data-outcome="([^"]+)">(.*?)</tr>', panel(page), re.S)
    assert [outcome for outcome, _ in rows] == ["refused"]
    assert "refused: 2 requests running" in rows[0][1]


async def test_views_actions_nothing_is_sent_from_an_old_board_while_no_producer_publishes(acting, acting_staff):
    client = AsyncClient()
    await client.aforce_login(acting_staff)
    face_get().follower.stale_after = 0.0  # the last board is already too old: who runs ada now is not known
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await client.post("/users/ada/actions/evict", {"reason": "x"}, follow=True)
    assert messages(response.content.decode())[0].startswith(
        "No action was sent: no producer is publishing: the last board was published at"
    )
    assert await UserAction.objects.acount() == 0

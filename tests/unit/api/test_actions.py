"""Acting on a user through the JSON API: who may (permission, CSRF, ACTIONS_TOKENS), every worker's answer, the log."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from django.contrib.admin.models import LogEntry
from django.db import OperationalError
from django.test import AsyncClient

from tests.support.acting import ACT_TOKEN, commands_sent, csrf_client, detail
from tests.support.fake_workers import workers_answering
from usermetrics import services
from usermetrics.models import UserAction
from usermetrics.publish.face import face_get

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

EVICT = "/api/users/ada/actions/evict"


async def test_api_actions_staff_without_the_permission_gets_403_and_nothing_is_sent(acting, staff_user):
    client, token = await csrf_client(staff_user)
    response = await client.post(
        EVICT, {"reason": "x"}, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 403
    assert "Can evict, hold and release users" in detail(response)
    assert await commands_sent(acting) == 0
    assert await UserAction.objects.acount() == 0


async def test_api_actions_session_post_without_the_csrf_token_is_403(acting, acting_staff):
    client, _ = await csrf_client(acting_staff)
    response = await client.post(EVICT, {"reason": "x"}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in detail(response)
    assert await commands_sent(acting) == 0


async def test_api_actions_evict_with_the_permission_every_answer_and_a_silent_worker_is_no_answer(
    acting, acting_staff
):
    client, token = await csrf_client(acting_staff)
    async with workers_answering(acting, "nat-1:101"):  # nat-1:102 runs but never answers
        response = await client.post(
            EVICT, {"reason": "leaking memory"}, content_type="application/json", headers={"X-CSRFToken": token}
        )
    assert response.status_code == 200, response.content
    doc = json.loads(response.content)
    assert doc["action"] == "evict" and doc["user_id"] == "ada" and doc["by"] == "staff"
    assert doc["outcome"] == "partly" and doc["words"] == "partly: 1 worker did not answer"
    assert set(doc["results"]) == {"nat-1:101", "nat-1:102"}  # the ended worker is not asked
    assert doc["results"]["nat-1:101"]["status"] == "done"
    assert doc["results"]["nat-1:102"]["status"] == "no answer"
    assert doc["results"]["nat-1:102"]["message"] == "no answer within 0.5 s"

    done = await UserAction.objects.aget()
    assert (done.by_user_id, done.by, done.user_id, done.action, done.reason) == (
        acting_staff.pk, "staff", "ada", "evict", "leaking memory",
    )  # fmt: skip
    assert done.results == doc["results"] and done.command_id == doc["command_id"]
    entry = await LogEntry.objects.aget()
    assert (entry.user_id, entry.object_id) == (acting_staff.pk, str(done.pk))
    message = entry.get_change_message()
    assert message.startswith("evict of user ada: partly") and "Reason: leaking memory." in message
    assert "nat-1:101: done (evicted)" in message and "nat-1:102: no answer" in message


async def test_api_actions_evict_while_the_board_shows_requests_in_flight_is_refused_and_nothing_is_sent(
    acting, acting_staff
):
    # dee is idle in the companion stream but runs two requests elsewhere: evicting it in some workers
    # and not in others is what an eviction must never do.
    client, token = await csrf_client(acting_staff)
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await client.post(
            "/api/users/dee/actions/evict", {"reason": "stuck"}, content_type="application/json",
            headers={"X-CSRFToken": token},
        )  # fmt: skip
    assert response.status_code == 409, response.content
    doc = json.loads(response.content)
    assert doc["outcome"] == "refused" and doc["words"] == "refused: 2 requests running"
    assert doc["command_id"] == "" and list(doc["results"]) == ["dashboard"]
    assert doc["results"]["dashboard"]["status"] == "refused" and doc["results"]["dashboard"]["in_flight"] == 2
    assert await commands_sent(acting) == 0
    done = await UserAction.objects.aget()
    assert (done.action, done.outcome, done.reason, done.by_user_id) == ("evict", "refused", "stuck", acting_staff.pk)
    message = (await LogEntry.objects.aget()).get_change_message()
    assert message.startswith("evict of user dee: refused: 2 requests running.")
    # Holding is not evicting: it goes out whatever runs.
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await client.post(
            "/api/users/dee/actions/hold", {"seconds": 60}, content_type="application/json",
            headers={"X-CSRFToken": token},
        )  # fmt: skip
    assert response.status_code == 200 and await commands_sent(acting) == 1


async def test_api_actions_evict_while_requests_of_the_user_are_queued_is_refused_and_nothing_is_sent(acting, settings):
    # NAT's ref_count no longer counts a streamed answer once its session ended; the semaphore's queue still does.
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await AsyncClient().post(
            "/api/users/eve/actions/evict", headers={"Authorization": f"Bearer {ACT_TOKEN}"}
        )
    assert response.status_code == 409 and json.loads(response.content)["words"] == "refused: 3 requests running"
    assert await commands_sent(acting) == 0


async def test_api_actions_evict_refused_by_every_worker_a_request_started_since_says_how_many(acting, acting_staff):
    client, token = await csrf_client(acting_staff)
    async with workers_answering(acting, "nat-1:101", "nat-1:102", status="refused", in_flight=2):
        response = await client.post(EVICT, content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 409
    doc = json.loads(response.content)
    assert doc["outcome"] == "refused" and doc["words"] == "refused: 4 requests running"
    assert {r["in_flight"] for r in doc["results"].values()} == {2}


async def test_api_actions_evict_a_request_started_in_one_worker_since_the_board_is_partly(acting, acting_staff):
    # The race the board cannot close: ada idle on the board, a request of it starts in nat-1:102 before
    # the command arrives; that worker refuses, the other evicts.
    client, token = await csrf_client(acting_staff)
    async with (
        workers_answering(acting, "nat-1:101"),
        workers_answering(acting, "nat-1:102", status="refused", in_flight=1),
    ):
        response = await client.post(EVICT, content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.content
    doc = json.loads(response.content)
    assert doc["outcome"] == "partly" and doc["words"] == "partly: 1 request running"
    assert {w: r["status"] for w, r in doc["results"].items()} == {"nat-1:101": "done", "nat-1:102": "refused"}


async def test_api_actions_bearer_token_acts_only_when_listed_in_actions_tokens(acting, api_tokens, settings):
    bearer = {"Authorization": f"Bearer {api_tokens[0]}"}
    response = await AsyncClient().post(EVICT, {}, content_type="application/json", headers=bearer)
    assert response.status_code == 403 and "ACTIONS_TOKENS" in detail(response)
    assert await commands_sent(acting) == 0

    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    wrong = {"Authorization": f"Bearer {ACT_TOKEN}x"}
    assert (await AsyncClient().post(EVICT, {}, content_type="application/json", headers=wrong)).status_code == 401
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await AsyncClient().post(  # no CSRF token: a bearer request needs none
            EVICT, {"reason": "cron"}, content_type="application/json", headers={"Authorization": f"Bearer {ACT_TOKEN}"}
        )
    assert response.status_code == 200, response.content
    doc = json.loads(response.content)
    assert doc["outcome"] == "done" and doc["by"] == "token:…zzzz"
    assert (await UserAction.objects.aget()).by_user_id is None
    assert await LogEntry.objects.acount() == 0  # the admin's log entries need a Django user: the action list has it


async def test_api_actions_hold_then_release_ends_it(acting, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    bearer = {"Authorization": f"Bearer {ACT_TOKEN}"}
    async with workers_answering(acting, "nat-1:101", "nat-1:102") as holds:
        response = await AsyncClient().post(
            "/api/users/ada/actions/hold", {"seconds": 600, "reason": "runaway"}, content_type="application/json",
            headers=bearer,
        )  # fmt: skip
        assert response.status_code == 200, response.content
        assert all(h.get("ada") is not None and h.get("ada").reason == "runaway" for h in holds.values())
        hold = await sync_to_async(services.user_hold_get)(user_id="ada")
        assert hold is not None and (hold.by, hold.reason) == ("token:…zzzz", "runaway")
        # Form-encoded works as well as JSON.
        response = await AsyncClient().post(
            "/api/users/ada/actions/release", urlencode({"reason": "fixed"}),
            content_type="application/x-www-form-urlencoded", headers=bearer,
        )  # fmt: skip
        assert response.status_code == 200, response.content
        assert all(h.get("ada") is None for h in holds.values())
    assert await sync_to_async(services.user_hold_get)(user_id="ada") is None


@pytest.mark.parametrize("user_id", ["cy", "nobody"])  # reported by a plain NAT source only; reported by none
async def test_api_actions_user_no_companion_reports_is_404_and_nothing_is_sent(acting, settings, user_id):
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    response = await AsyncClient().post(
        f"/api/users/{user_id}/actions/evict", headers={"Authorization": f"Bearer {ACT_TOKEN}"}
    )
    assert response.status_code == 404
    assert detail(response) == f"User {user_id} is not reported by any NAT companion: nothing was sent."
    assert await commands_sent(acting) == 0


@pytest.mark.parametrize("user_id", ["cy", "nobody"])  # reported by a plain NAT source only; reported by none
async def test_api_actions_hold_of_a_user_no_companion_reports_goes_to_every_companion_stream(
    acting, settings, user_id
):
    """A user gone (evicted) or not come yet can be held: its requests are refused when it comes back."""
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    bearer = {"Authorization": f"Bearer {ACT_TOKEN}"}
    async with workers_answering(acting, "nat-1:101", "nat-1:102") as holds:
        response = await AsyncClient().post(
            f"/api/users/{user_id}/actions/hold", {"seconds": 600, "reason": "keep out"},
            content_type="application/json", headers=bearer,
        )  # fmt: skip
        assert response.status_code == 200, response.content
        doc = json.loads(response.content)
        assert doc["outcome"] == "done" and set(doc["results"]) == {"nat-1:101", "nat-1:102"}
        assert all(h.get(user_id) is not None for h in holds.values())
    assert (await sync_to_async(services.user_hold_get)(user_id=user_id)).reason == "keep out"


async def test_api_actions_anonymous_is_401_and_get_is_405(acting):
    assert (await AsyncClient().post(EVICT)).status_code == 401
    response = await AsyncClient().get(EVICT)
    assert response.status_code == 405 and response["Content-Type"] == "application/json"


async def test_api_actions_while_no_producer_publishes_is_503_and_nothing_is_sent(acting, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}
    face_get().follower.stale_after = 0.0  # the last board is already too old
    response = await AsyncClient().post(EVICT, headers={"Authorization": f"Bearer {ACT_TOKEN}"})
    assert response.status_code == 503 and detail(response).startswith("No producer is publishing")
    assert json.loads(response.content)["producer"]["state"] == "absent" and "Retry-After" in response
    assert await commands_sent(acting) == 0 and await UserAction.objects.acount() == 0


async def test_api_actions_while_the_database_cannot_be_written_nothing_is_sent(acting, settings, monkeypatch):
    # Every action is logged: one that cannot be is not taken (it was carried out, then the log failed: a 503
    # saying nothing of the eviction done).
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": [ACT_TOKEN]}

    def down(*args, **kwargs):
        raise OperationalError("the database is down")

    monkeypatch.setattr(UserAction, "save", down)
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await AsyncClient().post(EVICT, headers={"Authorization": f"Bearer {ACT_TOKEN}"})
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert await commands_sent(acting) == 0


async def test_api_actions_the_log_names_a_short_token_without_showing_any_of_it(acting, settings):
    # The log is on every staff member's user page: the last four characters of a six-character token are most of it.
    settings.USERMETRICS = {**settings.USERMETRICS, "ACTIONS_TOKENS": ["s3cr3t"]}
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        response = await AsyncClient().post(EVICT, headers={"Authorization": "Bearer s3cr3t"})
    assert response.status_code == 200 and json.loads(response.content)["by"] == "token"

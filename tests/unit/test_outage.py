"""The database unreachable, in process: logins outlast it, pages show their live part, the API answers 503.

"Unreachable" is made by making every query raise the OperationalError a stopped PostgreSQL or a
locked SQLite raises (``outage``); the real thing, on a real PostgreSQL, is in ``test_faults``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import OperationalError, ProgrammingError
from django.test import AsyncClient

from monitor_site.asgi import application
from tests.support.factories import StaticSource, sample_users
from tests.support.history_helpers import recorder, snapshot
from usermetrics import humanize, outage
from usermetrics.clock import utcnow

WORDING = humanize.HISTORY_UNAVAILABLE


@contextlib.contextmanager
def unreachable(error: Exception | None = None) -> Iterator[None]:
    """Every query of every thread raises ``error`` (default: the OperationalError of a database that is gone)."""
    error = error or OperationalError('connection failed: FATAL: database "um" is not currently accepting connections')
    with (
        mock.patch("django.db.backends.utils.CursorWrapper._execute", side_effect=error),
        mock.patch("django.db.backends.utils.CursorWrapper._executemany", side_effect=error),
    ):
        yield


@pytest.fixture(autouse=True)
def _no_copies() -> Iterator[None]:
    outage.sessions.clear()
    outage.users.clear()
    yield
    outage.sessions.clear()
    outage.users.clear()


# --- the copies ------------------------------------------------------------------------------------


def test_outage_copies_serve_only_what_was_read_shortly_before_the_last_answer():
    clock = iter([0.0, 100.0, 100.0, 100.0, 100.0])
    copies = outage.LastCopies(grace=10, size=10)
    with mock.patch("usermetrics.outage.time.monotonic", side_effect=lambda: next(clock)):
        copies.remember("old", "a")  # read at 0
        copies.remember("new", "b")  # read at 100: the database last answered then
        assert copies.recall("new") == "b"
        assert copies.recall("old") is None  # read 100 s before the last answer: maybe logged out since
        copies.remember("new", None)  # the database says there is no such key any more
        assert copies.recall("new") is None


def test_outage_copies_are_bounded_least_recently_read_first():
    copies = outage.LastCopies(size=2)
    for key in ("a", "b", "a", "c"):
        copies.remember(key, key.upper())
    assert (copies.recall("a"), copies.recall("b"), copies.recall("c")) == ("A", None, "C")


# --- the backend -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_outage_backend_reads_the_database_every_time_while_it_answers(staff_user):
    backend = outage.OutageTolerantBackend()
    assert backend.get_user(staff_user.pk).is_staff
    get_user_model().objects.filter(pk=staff_user.pk).update(is_staff=False)
    assert backend.get_user(staff_user.pk).is_staff is False  # not the copy read a moment ago
    get_user_model().objects.filter(pk=staff_user.pk).update(is_active=False)
    assert backend.get_user(staff_user.pk) is None  # deactivated: refused at once
    with unreachable():
        assert backend.get_user(staff_user.pk) is None  # and no copy brings it back in an outage


@pytest.mark.django_db
def test_outage_backend_serves_the_last_copy_only_while_unreachable(staff_user):
    backend = outage.OutageTolerantBackend()
    read = backend.get_user(staff_user.pk)
    with unreachable():
        copied = backend.get_user(staff_user.pk)
        assert copied is not read and (copied.pk, copied.is_staff, copied.is_active) == (staff_user.pk, True, True)
        assert copied.get_session_auth_hash() == staff_user.get_session_auth_hash()
        assert backend.get_user(staff_user.pk + 1) is None  # never read: nothing to serve
        assert backend.get_all_permissions(copied) == set()  # permissions fail closed
    with unreachable(ProgrammingError("no such table: auth_user")), pytest.raises(ProgrammingError):
        backend.get_user(staff_user.pk)  # a bug, not an outage: it stays loud


@pytest.mark.django_db(transaction=True)
async def test_outage_backend_async_serves_the_last_copy_while_unreachable(staff_user):
    backend = outage.OutageTolerantBackend()
    assert (await backend.aget_user(staff_user.pk)).pk == staff_user.pk
    with unreachable():
        assert (await backend.aget_user(staff_user.pk)).username == "staff"
    await get_user_model().objects.filter(pk=staff_user.pk).aupdate(is_active=False)
    assert await backend.aget_user(staff_user.pk) is None
    with unreachable():
        assert await backend.aget_user(staff_user.pk) is None


# --- the sessions ----------------------------------------------------------------------------------


def _stored_session() -> str:
    """The key of a new session ``{"who": "staff"}``, saved to the database (and so this face's copy)."""
    store = outage.SessionStore()
    store["who"] = "staff"
    store.create()
    return str(store.session_key)


@pytest.mark.django_db
def test_outage_session_is_read_every_time_and_its_copy_serves_in_an_outage():
    key = _stored_session()
    with unreachable():
        assert outage.SessionStore(key).load() == {"who": "staff"}  # what this face wrote
    changed = outage.SessionStore(key)
    changed["who"] = "other"
    changed.save()
    assert outage.SessionStore(key).load() == {"who": "other"}
    outage.SessionStore(key).delete()  # a logout
    with unreachable():
        assert outage.SessionStore(key).load() == {}  # never back from the copy
        assert outage.SessionStore("never-seen-key-0123456789abcdef").load() == {}


@pytest.mark.django_db
def test_outage_session_deleted_elsewhere_is_not_served_from_the_copy():
    key = _stored_session()
    # Logged out on another face: this one reads the database and finds no session.
    outage.SessionStore.get_model_class().objects.filter(session_key=key).delete()
    assert outage.SessionStore(key).load() == {}
    with unreachable():
        assert outage.SessionStore(key).load() == {}


# --- the pages, the API, a new socket --------------------------------------------------------------


@pytest.fixture
async def live_before_outage(install_service, staff_user):
    """Twelve users live and recorded once, and a staff client that loaded the list before the outage."""
    await get_channel_layer().flush()
    users = sample_users()
    await sync_to_async(recorder().record)(snapshot(utcnow(), users))
    await install_service([StaticSource("static", users)], interval=3600)
    client = AsyncClient()
    await client.aforce_login(staff_user)
    response = await client.get("/")
    assert response.status_code == 200 and WORDING not in response.content.decode()
    return client, users


@pytest.mark.django_db(transaction=True)
async def test_outage_pages_show_their_live_part_and_say_history_is_unavailable(live_before_outage):
    client, users = live_before_outage
    first = users[0].user_id
    with unreachable():
        for path in ("/", f"/users/{first}/", "/sources/", "/alerts/", "/?state=ended", "/?state=stuck"):
            response = await client.get(path)
            html = response.content.decode()
            assert response.status_code == 200, (path, response.status_code)
            assert 'id="um-history-down"' in html and WORDING in html, path
        html = (await client.get("/")).content.decode()
        assert first in html and 'id="um-overview"' not in html  # the live rows, no charts
        assert '"window_url": null' in html  # the page does not poll what cannot answer
        detail = (await client.get(f"/users/{first}/")).content.decode()
        assert first in detail and '"history_url": null' in detail


@pytest.mark.django_db(transaction=True)
async def test_outage_a_user_no_source_reports_is_a_503_not_a_404(live_before_outage):
    # It may be an ended user the history keeps: while the database cannot say, "not found" would be a lie.
    client, _ = live_before_outage
    with unreachable():
        page = await client.get("/users/gone-or-never/")
        assert page.status_code == 503 and "The database cannot be reached" in page.content.decode()
        api = await client.get("/api/users/gone-or-never")
        assert api.status_code == 503 and json.loads(api.content) == {"detail": WORDING}
    assert (await client.get("/users/gone-or-never/")).status_code == 404  # back: truly not found


@pytest.mark.django_db(transaction=True)
async def test_outage_history_api_answers_a_json_503(live_before_outage):
    client, users = live_before_outage
    first = users[0].user_id
    with unreachable():
        for path in (
            f"/api/list/window?user_id={first}",
            f"/api/sparklines?user_id={first}",
            "/api/overview/history",
            f"/api/users/{first}/history",
        ):
            response = await client.get(path)
            assert response.status_code == 503, (path, response.status_code)
            assert response["Content-Type"].startswith("application/json") and "Retry-After" in response
            assert json.loads(response.content) == {"detail": WORDING}
        assert (await client.get("/api/status")).status_code == 200  # the live API needs no database


@pytest.mark.django_db(transaction=True)
async def test_outage_a_new_socket_of_a_logged_in_staff_gets_its_snapshot(live_before_outage):
    client, _ = live_before_outage
    headers = [
        (b"host", b"testserver"),
        (b"origin", b"http://testserver"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    with unreachable():
        comm = WebsocketCommunicator(application, "/ws/monitor/", headers=headers)
        try:
            connected, _ = await comm.connect(timeout=5)
            assert connected
            doc = json.loads(await comm.receive_from(timeout=5))
            assert doc["type"] == "snapshot" and doc["total_active_users"] > 0
        finally:
            await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_outage_logging_in_answers_a_503_page_that_says_why(staff_user):
    client = AsyncClient()
    with unreachable():
        response = await client.post("/admin/login/", {"username": "staff", "password": "pw-staff-123"})
        assert response.status_code == 503
        assert "The database cannot be reached" in response.content.decode()
        # Someone not logged in is sent to the login page, not shown a 500.
        assert (await AsyncClient().get("/")).status_code in (302, 503)

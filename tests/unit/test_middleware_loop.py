"""Django's middleware on the event loop (``middleware.OnTheLoop``): an async request through the whole chain keeps
its security (headers, CSRF, sessions, logins and their lockout, messages), and its hooks never take a thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref import sync
from django.conf import settings
from django.contrib import messages
from django.contrib.sessions.models import Session
from django.db.backends.utils import CursorWrapper
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.test import AsyncClient
from django.urls import path
from django.utils.module_loading import import_string

from usermetrics.middleware import OnTheLoop

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-staff-123"  # the staff_user fixture's


@pytest.fixture
def threaded(monkeypatch) -> Iterator[list[Any]]:
    """Every callable an async request hands to a thread (``sync_to_async``), in order."""
    handed: list[Any] = []
    original = sync.SyncToAsync.__init__

    def recording(self: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        handed.append(func)
        original(self, func, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__init__", recording)
    yield handed


def on_the_loop(handed: list[Any]) -> list[Any]:
    """The hooks among ``handed`` that belong to a middleware that runs on the loop."""
    return [f for f in handed if isinstance(getattr(f, "__self__", None), OnTheLoop)]


def middleware_in_threads(handed: list[Any]) -> set[str]:
    """The classes of the middleware whose hooks are among ``handed``."""
    return {type(f.__self__).__name__ for f in handed if "Middleware" in type(getattr(f, "__self__", None)).__name__}


@pytest.fixture
def queries(monkeypatch) -> Iterator[list[str]]:
    """Every SQL statement run in any thread, in order."""
    run: list[str] = []
    original = CursorWrapper._execute_with_wrappers

    def recording(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        run.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", recording)
    yield run


def test_middleware_loop_session_messages_auth_common_and_csp_run_on_the_loop():
    loop = [m for m in settings.MIDDLEWARE if issubclass(import_string(m), OnTheLoop)]
    assert [m.rsplit(".", 1)[1] for m in loop] == [
        "SessionMiddleware",
        "CommonMiddleware",
        "AuthenticationMiddleware",
        "MessageMiddleware",
        "WebsocketCSPMiddleware",
    ]


async def test_middleware_loop_a_bearer_request_takes_no_thread_for_them_and_no_query(
    source, api_tokens, threaded, queries
):
    response = await AsyncClient().get("/api/status", headers={"Authorization": f"Bearer {api_tokens[0]}"})
    assert response.status_code == 200
    assert queries == []
    # Django's own security, CSRF and clickjacking middleware still hop (Django's deploy checks look for them by name).
    assert middleware_in_threads(threaded) == {"SecurityMiddleware", "CsrfViewMiddleware", "XFrameOptionsMiddleware"}
    # The security headers are all there.
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


async def test_middleware_loop_a_staff_session_reads_the_database_and_varies_on_the_cookie(
    source, staff_client, threaded
):
    response = await staff_client.get("/api/status")
    assert response.status_code == 200
    assert "Cookie" in response["Vary"]
    assert on_the_loop(threaded) == []  # read, not saved: nothing of ours in a thread


async def test_middleware_loop_a_login_saves_its_session_in_the_thread(staff_user, threaded):
    client = AsyncClient()
    response = await client.post("/admin/login/?next=/admin/", {"username": "staff", "password": PASSWORD})
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert await Session.objects.filter(session_key=key).aexists()
    assert [f.__self__.__class__.__name__ for f in on_the_loop(threaded)] == ["SessionMiddleware"]
    assert (await client.get("/admin/")).status_code == 200
    # Logging out empties the session: saved (deleted) in the thread, and the cookie goes.
    out = await client.post("/admin/logout/")
    assert out.status_code == 200 and out.cookies[settings.SESSION_COOKIE_NAME].value == ""
    assert not await Session.objects.filter(session_key=key).aexists()
    assert (await client.get("/admin/")).status_code == 302


async def test_middleware_loop_logins_are_still_locked_out(staff_user):
    client = AsyncClient(REMOTE_ADDR="10.0.0.9")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        await client.post("/admin/login/", {"username": "staff", "password": "wrong"})
    refused = await client.post("/admin/login/?next=/", {"username": "staff", "password": PASSWORD})
    assert refused.status_code == 429 and 'id="um-lockout"' in refused.content.decode()
    assert settings.SESSION_COOKIE_NAME not in refused.cookies


async def test_middleware_loop_csrf_still_refuses_a_post_without_its_token(staff_user):
    assert settings.CSRF_USE_SESSIONS is False  # the CSRF secret is read from its cookie, never the session
    client = AsyncClient(enforce_csrf_checks=True)
    refused = await client.post("/admin/login/", {"username": "staff", "password": PASSWORD})
    assert refused.status_code == 403
    form = await client.get("/admin/login/")
    token = form.cookies[settings.CSRF_COOKIE_NAME].value
    login = {"username": "staff", "password": PASSWORD, "csrfmiddlewaretoken": token}
    ok = await client.post("/admin/login/?next=/", login)
    assert ok.status_code == 302


def add_message(request: HttpRequest) -> HttpResponse:
    """Add a message and go to the page that shows it."""
    messages.info(request, "saved, as asked")
    return HttpResponseRedirect("/show/")


def show_messages(request: HttpRequest) -> HttpResponse:
    """The messages, as text."""
    return HttpResponse("|".join(str(m) for m in messages.get_messages(request)))


urlpatterns = [path("add/", add_message), path("show/", show_messages)]


async def test_middleware_loop_messages_are_stored_and_shown_once(db, settings, threaded):
    settings.ROOT_URLCONF = __name__
    client = AsyncClient()
    assert (await client.get("/add/")).status_code == 302
    assert [f.__self__.__class__.__name__ for f in on_the_loop(threaded)] == ["MessageMiddleware"]
    assert (await client.get("/show/")).content == b"saved, as asked"
    assert (await client.get("/show/")).content == b""

"""Live feed under attack, in process: unknown paths, garbage messages, floods, connect churn, logout, origins."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import tracemalloc

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from monitor_site.asgi import application
from tests.support.factories import StaticSource, sample_users
from tests.support.producers import current_producer
from usermetrics import services
from usermetrics.publish.face import face_get

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://testserver"
MiB = 1024 * 1024


@pytest.fixture
async def staff_login(staff_user) -> AsyncClient:
    """A client logged in as staff (its session is the socket's)."""
    client = AsyncClient()
    await client.aforce_login(staff_user)
    return client


def communicator(path: str, client: AsyncClient | None = None, origin: bytes = ORIGIN) -> WebsocketCommunicator:
    """A websocket client of the real application with ``client``'s session and an Origin."""
    headers = [(b"host", b"testserver"), (b"origin", origin)]
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_doc(comm: WebsocketCommunicator) -> dict:
    """The next message as JSON."""
    return json.loads(await comm.receive_from(timeout=5))


# --- item 2: unknown paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/ws/anything", "/ws/monitor/users//", "/ws/monitor/users/~ZZ/", "/", "/ws/monitor/x/y/z"]
)
async def test_consumers_unknown_path_is_refused_at_handshake(source, staff_login, path, caplog):
    for client in (None, staff_login):  # anonymous and staff alike
        caplog.clear()
        comm = communicator(path, client)
        with caplog.at_level(logging.INFO):
            connected, code = await comm.connect(timeout=5)
        assert not connected and code in (403, 1000, None)  # refused before accepting: a 403 on Daphne
        await comm.disconnect()
        lines = [r for r in caplog.records if "no route" in r.getMessage()]
        assert len(lines) == 1 and lines[0].exc_info is None
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- item 3: garbage inbound -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "[" * 2040 + "]" * 2040,
        '{"type": "subscribe", "page": ' + "[" * 1000 + "]" * 1000 + "}",
        '{"type": "subscribe", "page": NaN}',
        '{"type": "subscribe", "page": Infinity, "page_size": -Infinity}',
        '{"type": "subscribe", "page": 1e400}',
        '{"type": "subscribe", "page_size": 1e400, "sort": 1e400, "q": NaN, "state": [], "window": {}}',
        '{"type": "subscribe", "page": ' + "9" * 4000 + "}",
        '{"type": "subscribe", "q": ' + "9" * 4000 + "}",
    ],
)
async def test_consumers_hostile_messages_are_applied_or_ignored(source, staff_login, message):
    comm = communicator("/ws/monitor/", staff_login)
    assert (await comm.connect(timeout=5))[0]
    try:
        await receive_doc(comm)
        await comm.send_to(text_data=message)
        # The socket is still open and answers: a later subscription works.
        await comm.send_json_to({"type": "subscribe", "sort": "user_id", "page_size": 2})
        while True:
            doc = await receive_doc(comm)
            if doc["view"]["page_size"] == 2:
                break
            assert doc["view"]["page"] >= 1  # a hostile subscription that was applied fell back to defaults
        assert [u["user_id"] for u in doc["users"]] == ["u00", "u01"]
    finally:
        await comm.disconnect()


@pytest.mark.parametrize("path", ["/ws/monitor/", "/ws/monitor/users/u01/"])
async def test_consumers_garbage_flood_is_closed_with_a_4xxx_code(source, staff_login, path):
    comm = communicator(path, staff_login)
    assert (await comm.connect(timeout=5))[0]
    try:
        await receive_doc(comm)
        for i in range(30):
            await comm.send_to(text_data="[" * 2040 + "]" * 2040 if i % 2 else "garbage")
        message = await comm.receive_output(timeout=5)
        while message["type"] == "websocket.send":
            message = await comm.receive_output(timeout=5)
        assert message["type"] == "websocket.close"
        assert 4000 <= message["code"] < 5000 and message["code"] != 1011
        assert message["reason"]
    finally:
        await comm.disconnect()


# --- item 4: a subscribe flood is coalesced --------------------------------------------------------


async def test_consumers_subscribe_flood_is_coalesced_latest_wins(source, staff_login):
    comm = communicator("/ws/monitor/", staff_login)
    assert (await comm.connect(timeout=5))[0]
    try:
        await receive_doc(comm)
        flood = 300
        for i in range(flood):
            await comm.send_json_to({"type": "subscribe", "sort": "user_id", "page_size": 1, "page": i % 12 + 1})
        await comm.send_json_to({"type": "subscribe", "sort": "user_id", "page_size": 3, "page": 2})
        answers = 0
        while True:
            doc = await receive_doc(comm)
            answers += 1
            if doc["view"]["page_size"] == 3:
                break
        assert [u["user_id"] for u in doc["users"]] == ["u03", "u04", "u05"]
        # At most one subscription is in flight: the ones that queued behind it were replaced by the last.
        assert answers < flood // 10
        assert await comm.receive_nothing(timeout=0.3)
    finally:
        await comm.disconnect()


# --- item 5: logout, staff lost, deactivated --------------------------------------------------------


async def _expect_close(comm: WebsocketCommunicator) -> dict:
    message = await comm.receive_output(timeout=5)
    while message["type"] == "websocket.send":
        message = await comm.receive_output(timeout=5)
    return message


@pytest.mark.parametrize("how", ["logout", "staff_lost", "deactivated", "password_changed"])
@pytest.mark.parametrize("path", ["/ws/monitor/", "/ws/monitor/users/u01/"])
async def test_consumers_close_within_one_refresh_of_losing_access(source, staff_user, staff_login, how, path):
    comm = communicator(path, staff_login)
    assert (await comm.connect(timeout=5))[0]
    other = AsyncClient()  # another staff member's socket stays open
    await other.aforce_login(await sync_to_async(_other_staff)())
    bystander = communicator(path, other)
    assert (await bystander.connect(timeout=5))[0]
    try:
        await receive_doc(comm)
        await receive_doc(bystander)
        await current_producer().refresh()
        await receive_doc(comm)  # still staff: frames keep coming
        await receive_doc(bystander)
        if how == "logout":
            await staff_login.alogout()
        else:
            await sync_to_async(_change)(staff_user, how)
        await current_producer().refresh()
        message = await _expect_close(comm)
        assert message == {"type": "websocket.close", "code": 4401, "reason": message["reason"]}
        assert message["reason"]
        await receive_doc(bystander)
    finally:
        await comm.disconnect()
        await bystander.disconnect()
    assert face_get().registry.channels() == []


async def test_consumers_a_check_begun_before_the_logout_does_not_cover_the_next_refresh(
    source, staff_login, monkeypatch
):
    # The re-check of refresh N read the session while it was still valid, and answers late (a busy
    # database); refresh N+1 came after the logout meanwhile. Its check must still run, or the
    # socket stays open until some later refresh (forever, if none comes).
    real = services.feed_access_check
    gate, first_read = asyncio.Event(), asyncio.Event()

    async def slow_first_answer(**kwargs) -> bool:
        answer = await real(**kwargs)
        if not first_read.is_set():
            first_read.set()
            await gate.wait()
        return answer

    monkeypatch.setattr(services, "feed_access_check", slow_first_answer)
    comm = communicator("/ws/monitor/", staff_login)
    assert (await comm.connect(timeout=5))[0]
    try:
        await receive_doc(comm)
        await current_producer().refresh()
        await receive_doc(comm)  # its check has read the session (still staff's) and waits to answer
        await asyncio.wait_for(first_read.wait(), 5)
        await staff_login.alogout()
        await current_producer().refresh()
        await receive_doc(comm)  # the refresh after the logout: its frame, and its check must follow
        gate.set()
        message = await _expect_close(comm)
        assert message["type"] == "websocket.close" and message["code"] == 4401
    finally:
        gate.set()
        await comm.disconnect()


def _other_staff():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username="other", password="pw-other-123", is_staff=True)


def _change(user, how: str) -> None:
    if how == "staff_lost":
        user.is_staff = False
    elif how == "deactivated":
        user.is_active = False
    else:
        user.set_password("a-new-password-456")
    user.save()


# --- item 6: origins -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        b"http://testserver:9999",
        b"https://testserver",
        b"ws://testserver",
        b"wss://testserver",
        b"http://testserver:80@evil.example",
        b"http://TESTSERVER.evil.example",
    ],
)
async def test_consumers_other_port_or_scheme_is_refused(source, staff_login, origin):
    comm = communicator("/ws/monitor/", staff_login, origin=origin)
    connected, _ = await comm.connect(timeout=5)
    assert not connected
    await comm.disconnect()


@pytest.mark.parametrize("origin", [b"http://testserver", b"http://TestServer:80", b"https://dash.example.com"])
async def test_consumers_own_and_trusted_origins_are_accepted(source, staff_login, origin, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://dash.example.com"]
    comm = communicator("/ws/monitor/", staff_login, origin=origin)
    connected, _ = await comm.connect(timeout=5)
    try:
        assert connected
        await receive_doc(comm)
    finally:
        await comm.disconnect()


# --- the soak: handshakes behind a busy sync thread ------------------------------------------------


async def test_consumers_handshake_is_not_queued_behind_djangos_sync_thread(source, staff_login):
    # Django runs sync views and history queries in one thread; a handshake that read its session
    # there waited behind all of them (the soak's faces dropped handshakes past Daphne's 5 s).
    await services.labels_aget()  # names are cached for 30 s: the first frame needs no query
    held, release = threading.Event(), threading.Event()

    def busy() -> None:
        held.set()
        release.wait(30)

    blocker = asyncio.ensure_future(sync_to_async(busy)())  # thread_sensitive: Django's one sync thread
    await asyncio.to_thread(held.wait, 10)
    try:
        comm = communicator("/ws/monitor/", staff_login)
        connected, _ = await comm.connect(timeout=10)
        assert connected and (await receive_doc(comm))["type"] == "snapshot"
        assert not blocker.done()  # the sync thread was busy all along
        await comm.disconnect()
    finally:
        release.set()
        await blocker


@pytest.mark.django_db(transaction=True)
async def test_consumers_connect_churn_leaves_no_group_members(install_service, staff_user, settings):
    # In process on the in-memory layer: the face's registry (who gets which frames) must empty;
    # the directory a face advertises in Redis is checked on a real Daphne (tests/stack/test_faults.py).
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    await layer.flush()
    await install_service([StaticSource("static", sample_users())], interval=3600)
    client = AsyncClient()
    await client.aforce_login(staff_user)
    headers = [
        (b"host", b"testserver"),
        (b"origin", b"http://testserver"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    paths = ["/ws/monitor/", "/ws/monitor/?sort=user_id&page_size=3", "/ws/monitor/users/u01/", "/ws/nothing"]

    async def cycle(i: int) -> None:
        comm = WebsocketCommunicator(application, paths[i % len(paths)], headers=headers)
        connected, _ = await comm.connect(timeout=5)
        if connected:
            await comm.receive_from(timeout=5)
            if i % 3 == 0:  # leave while a subscription is being applied
                await comm.send_json_to({"type": "subscribe", "page": i % 5 + 1, "page_size": 2})
        await comm.disconnect()

    for i in range(50):  # warm: every code path and cache once
        await cycle(i)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(500):
            await cycle(i)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    registry = face_get().registry
    assert registry.channels() == [] and registry.receivers() == [] and registry.subscriptions() == {}
    assert {group: members for group, members in layer.groups.items() if members} == {}
    assert grown < 2 * MiB, f"{grown} bytes still allocated after 500 cycles"

"""Live feed: consumers against the real ASGI application, the producer's once-per-view serialization, budgets."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient
from django.urls import reverse

from monitor_site.asgi import application
from tests.support.factories import StaticSource, sample_users, usage
from tests.support.producers import current_producer
from usermetrics.consumers import UserListConsumer
from usermetrics.identities import identity_register, user_id_derive
from usermetrics.metrics import PerUserMonitorResponse
from usermetrics.publish import flag_tracker
from usermetrics.publish.face import face_get

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://testserver"


@pytest.fixture
async def staff_cookie(staff_user) -> bytes:
    """A logged-in staff session as a Cookie header value."""
    client = AsyncClient()
    await client.aforce_login(staff_user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(path: str, cookie: bytes | None = None, origin: bytes = ORIGIN) -> WebsocketCommunicator:
    """A websocket client of the real application with the given session and Origin."""
    headers = [(b"host", b"testserver"), (b"origin", origin)]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_frame(comm: WebsocketCommunicator) -> tuple[PerUserMonitorResponse, dict]:
    """The next frame, validated as the seed model, and as plain JSON for the metadata."""
    text = await comm.receive_from(timeout=5)
    return PerUserMonitorResponse.model_validate_json(text), json.loads(text)


async def test_consumers_staff_first_frame_is_a_monitor_response(source, staff_cookie):
    comm = communicator("/ws/monitor/", staff_cookie)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    try:
        parsed, doc = await receive_frame(comm)
        assert parsed.total_active_users == 12
        assert len(parsed.users) == 12
        assert doc["type"] == "snapshot"
        assert doc["seq"] >= 1
        assert doc["view"]["sort"] == "-last_activity" and doc["view"]["matched"] == 12
        assert doc["summary"]["users"] == 12 and doc["summary"]["requests"] == sum(range(0, 120, 10))
        assert doc["sources"][0]["name"] == "static" and doc["sources"][0]["state"] == "ok"
        assert doc["stale"] == []
        assert list(doc)[:3] == ["timestamp", "total_active_users", "users"]
        # Most recent activity first: u00 was active 0 minutes before the others.
        assert [u.user_id for u in parsed.users][:3] == ["u00", "u01", "u02"]
        assert await comm.receive_nothing(timeout=0.2)
    finally:
        await comm.disconnect()


@pytest.mark.parametrize("path", ["/ws/monitor/", "/ws/monitor/users/u01/"])
async def test_consumers_anonymous_and_non_staff_are_refused(source, plain_user, path):
    comm = communicator(path)
    connected, _ = await comm.connect(timeout=5)
    assert not connected
    await comm.disconnect()

    client = AsyncClient()
    await client.aforce_login(plain_user)
    comm = communicator(path, f"sessionid={client.cookies['sessionid'].value}".encode())
    connected, _ = await comm.connect(timeout=5)
    assert not connected
    await comm.disconnect()


@pytest.mark.parametrize("origin", [b"http://evil.example", b"http://testserver.evil.example", b"null"])
async def test_consumers_foreign_origin_is_refused(source, staff_cookie, origin):
    comm = communicator("/ws/monitor/", staff_cookie, origin=origin)
    connected, _ = await comm.connect(timeout=5)
    assert not connected
    await comm.disconnect()


async def subscribe(comm: WebsocketCommunicator, **view: object) -> tuple[PerUserMonitorResponse, dict]:
    await comm.send_json_to({"type": "subscribe", **view})
    return await receive_frame(comm)


async def test_consumers_subscription_pages_sorts_and_filters(source, staff_cookie):
    comm = communicator("/ws/monitor/", staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        await receive_frame(comm)
        parsed, doc = await subscribe(comm, page=2, page_size=5, sort="user_id", q="", state="")
        assert [u.user_id for u in parsed.users] == ["u05", "u06", "u07", "u08", "u09"]
        assert doc["view"] | {} == {
            **doc["view"],
            "page": 2,
            "page_size": 5,
            "pages": 3,
            "matched": 12,
            "clamped": False,
        }
        assert parsed.total_active_users == 12

        parsed, doc = await subscribe(comm, page=1, page_size=100, sort="-total_requests")
        assert [u.user_id for u in parsed.users][:2] == ["u11", "u10"]

        parsed, doc = await subscribe(comm, sort="user_id", state="active")
        assert [u.user_id for u in parsed.users] == ["u00", "u03", "u06", "u09"]
        parsed, doc = await subscribe(comm, sort="user_id", state="errors")
        assert [u.user_id for u in parsed.users] == ["u04", "u08"]
        parsed, doc = await subscribe(comm, sort="-user_id", state="idle", q="U1")
        assert [u.user_id for u in parsed.users] == ["u11", "u10"]
        assert doc["view"]["matched"] == 2 and parsed.total_active_users == 12

        # A page past the end is clamped to the last page; nonsense falls back to the defaults.
        parsed, doc = await subscribe(comm, page=99, page_size=5, sort="user_id")
        assert doc["view"]["page"] == 3 and [u.user_id for u in parsed.users] == ["u10", "u11"]
        parsed, doc = await subscribe(comm, page="x", page_size=-3, sort="password", state="<b>")
        assert doc["view"]["sort"] == "-last_activity" and doc["view"]["page_size"] == 1
        assert doc["view"]["state"] == "" and doc["view"]["page"] == 1

        # Anything that is not a subscription is ignored: no answer, and the socket stays open.
        for junk in ("not json", "[]", '{"type": "refresh"}', "x" * 10_000):
            await comm.send_to(text_data=junk)
        await comm.send_to(bytes_data=b"\x00\x01")
        assert await comm.receive_nothing(timeout=0.2)
        parsed, doc = await subscribe(comm, sort="user_id", page_size=3)
        assert [u.user_id for u in parsed.users] == ["u00", "u01", "u02"]
    finally:
        await comm.disconnect()


async def test_consumers_query_string_is_the_initial_view(source, staff_cookie):
    comm = communicator("/ws/monitor/?sort=user_id&page_size=2&page=3", staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        parsed, _ = await receive_frame(comm)
        assert [u.user_id for u in parsed.users] == ["u04", "u05"]
    finally:
        await comm.disconnect()


async def test_consumers_one_frame_per_refresh(source, staff_cookie):
    comm = communicator("/ws/monitor/", staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        _, first = await receive_frame(comm)
        source.users = [*sample_users()[1:], usage("newcomer", minutes_ago=-5)]
        await current_producer().refresh()
        parsed, doc = await receive_frame(comm)
        assert doc["seq"] == first["seq"] + 1
        assert parsed.users[0].user_id == "newcomer"
        assert "u00" not in {u.user_id for u in parsed.users}
        assert doc["gone"] == ["u00"]  # on the page before, in no source now
        assert await comm.receive_nothing(timeout=0.2)
    finally:
        await comm.disconnect()


@pytest.mark.parametrize("user_id", ["solo", "a/b c", "<img src=x onerror=alert(1)>", "..", "naïve-ユーザー"])
async def test_consumers_per_user_socket(install_service, staff_cookie, user_id):
    await get_channel_layer().flush()
    src = StaticSource("static", [*sample_users(), usage(user_id, requests=7)])
    await install_service([src], interval=3600)
    path = reverse("usermetrics:user-detail", args=[user_id]).replace("/users/", "/ws/monitor/users/", 1)
    comm = communicator(_daphne_path(path), staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        parsed, doc = await receive_frame(comm)
        assert [u.user_id for u in parsed.users] == [user_id]
        assert parsed.total_active_users == len(src.users)
        assert doc["view"] == {"kind": "user", "user_id": user_id, "found": True, "clamped": False}
        assert doc["origins"] == ["static"]
        await comm.send_json_to({"type": "subscribe", "page": 2})  # push-only: ignored
        assert await comm.receive_nothing(timeout=0.2)

        src.users = [u for u in src.users if u.user_id != user_id]
        await current_producer().refresh()
        parsed, doc = await receive_frame(comm)
        assert parsed.users == [] and doc["view"]["found"] is False
    finally:
        await comm.disconnect()


def _daphne_path(url: str) -> str:
    """The path as Daphne puts it in the scope: percent-decoded as UTF-8."""
    return unquote(url)


async def test_consumers_frames_fit_the_budget_with_10k_users(install_service, staff_cookie, settings):
    await get_channel_layer().flush()
    many = [usage(f"user-{i:05d}@example.com" + "x" * (i % 50), requests=i, active=i % 2) for i in range(10_000)]
    await install_service([StaticSource("big", many)], interval=3600)
    budget = 512 * 1024  # the default
    comm = communicator("/ws/monitor/", staff_cookie)
    assert (await comm.connect(timeout=10))[0]
    try:
        text = await comm.receive_from(timeout=10)
        assert len(text.encode()) <= budget
        for page_size in (100, 500, 10_000):
            await comm.send_json_to({"type": "subscribe", "page_size": page_size, "sort": "user_id"})
            text = await comm.receive_from(timeout=10)
            assert len(text.encode()) <= budget
            assert PerUserMonitorResponse.model_validate_json(text).total_active_users == 10_000

        # A smaller budget shrinks the page, says so, and keeps the requested page's first user in view.
        small = 64 * 1024
        settings.USERMETRICS = {**settings.USERMETRICS, "FEED_MAX_FRAME_BYTES": small}
        await comm.send_json_to({"type": "subscribe", "page_size": 500, "page": 3, "sort": "user_id"})
        text = await comm.receive_from(timeout=10)
        doc = json.loads(text)
        assert len(text.encode()) <= small
        assert doc["view"]["clamped"] is True and doc["view"]["requested_page_size"] == 500
        assert 0 < doc["view"]["page_size"] < 500 and len(doc["users"]) == doc["view"]["page_size"]
        assert doc["users"][0]["user_id"] <= "user-01000" <= doc["users"][-1]["user_id"] + "~"
        await current_producer().refresh()
        text = await comm.receive_from(timeout=10)
        assert len(text.encode()) <= small
    finally:
        await comm.disconnect()


async def test_consumers_serialize_once_per_view_per_tick(source, staff_cookie):
    views = [{"sort": "user_id"}, {"sort": "user_id"}, {"sort": "-error_count"}]
    comms: list[WebsocketCommunicator] = []
    try:
        for i in range(12):
            comm = communicator("/ws/monitor/", staff_cookie)
            assert (await comm.connect(timeout=5))[0]
            comms.append(comm)
            await receive_frame(comm)
            await subscribe(comm, **views[i % len(views)])
        user_comm = communicator("/ws/monitor/users/u01/", staff_cookie)
        assert (await user_comm.connect(timeout=5))[0]
        comms.append(user_comm)
        await receive_frame(user_comm)

        registry = face_get().registry
        producer = current_producer()
        assert sorted(registry.counts().values()) == [1, 4, 8]  # two list views and one user view
        for _ in range(3):
            before = producer.frames.frames_built
            await producer.refresh()
            frames = await asyncio.gather(*(c.receive_from(timeout=5) for c in comms))
            assert producer.frames.frames_built - before == 3  # one per distinct view, not per client
            assert len(set(frames)) == 3
    finally:
        for comm in comms:
            await comm.disconnect()
    assert registry.subscriptions() == {}  # every view is dropped once nobody watches it


async def test_consumers_frames_carry_registered_names(install_service, staff_cookie):
    await get_channel_layer().flush()
    uid = user_id_derive(kind="api_key", value="secret-key-of-grace")
    await sync_to_async(identity_register)(label="Grace Hopper", kind="api_key", value="secret-key-of-grace")
    await install_service([StaticSource("static", [*sample_users(), usage(uid)])], interval=3600)
    comm = communicator("/ws/monitor/", staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        _, doc = await receive_frame(comm)
        assert doc["labels"] == {uid: "Grace Hopper"}
        parsed, doc = await subscribe(comm, q="hopper")  # the search matches names too
        assert [u.user_id for u in parsed.users] == [uid] and doc["labels"] == {uid: "Grace Hopper"}
    finally:
        await comm.disconnect()
    comm = communicator(f"/ws/monitor/users/{uid}/", staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        _, doc = await receive_frame(comm)
        assert doc["label"] == "Grace Hopper" and doc["evicted_at"] is None
    finally:
        await comm.disconnect()


async def test_consumers_per_user_frame_lists_each_source_record(install_service, staff_cookie):
    await get_channel_layer().flush()
    await install_service(
        [StaticSource("nat-a", [usage("shared", requests=3)]), StaticSource("nat-b", [usage("shared", requests=4)])],
        interval=3600,
    )
    comm = communicator("/ws/monitor/users/shared/", staff_cookie)
    assert (await comm.connect(timeout=5))[0]
    try:
        parsed, doc = await receive_frame(comm)
        assert parsed.users[0].requests.total_requests == 7
        assert doc["origins"] == ["nat-a", "nat-b"]
        assert [(p["source"], p["record"]["requests"]["total_requests"]) for p in doc["parts"]] == [
            ("nat-a", 3),
            ("nat-b", 4),
        ]
    finally:
        await comm.disconnect()


async def test_consumers_a_socket_drops_frames_of_a_view_it_left_and_refreshes_it_has():
    consumer = UserListConsumer()
    sent: list[dict[str, Any]] = []

    async def base_send(message: dict[str, Any]) -> None:
        sent.append(message)

    consumer.base_send = base_send
    consumer.access_task = asyncio.get_running_loop().create_future()  # this refresh's re-check is running
    consumer.group = "new"
    await consumer.metrics_update({"text": "old view", "seq": 9, "producer": "p", "group": "old"})
    await consumer.metrics_update({"text": "new view", "seq": 9, "producer": "p", "group": "new"})
    await consumer.metrics_update({"text": "again", "seq": 9, "producer": "p", "group": "new"})
    assert [m["text"] for m in sent] == ["new view"]
    consumer.access_task.cancel()


async def test_consumers_serve_flag_views_from_flags_read_once(recorded_flags, staff_user, monkeypatch):
    await get_channel_layer().flush()
    reads = []
    real = flag_tracker.flag_stats
    monkeypatch.setattr(flag_tracker, "flag_stats", lambda *a, **kw: reads.append(1) or real(*a, **kw))
    client = AsyncClient()
    await client.aforce_login(staff_user)
    comm = communicator("/ws/monitor/?state=stuck", f"sessionid={client.cookies['sessionid'].value}".encode())
    assert (await comm.connect(timeout=5))[0]
    try:
        doc = json.loads(await comm.receive_from(timeout=5))
        assert [u["user_id"] for u in doc["users"]] == ["dave"] and doc["view"]["state"] == "stuck"
        await comm.send_to(text_data=json.dumps({"type": "subscribe", "state": "erroring"}))
        doc = json.loads(await comm.receive_from(timeout=5))
        assert [u["user_id"] for u in doc["users"]] == ["bob"]
        for _ in range(2):
            await current_producer().refresh()
            assert [u["user_id"] for u in json.loads(await comm.receive_from(timeout=5))["users"]] == ["bob"]
        # The window stats were read when the producer started; within FLAGS_REFRESH it reuses them.
        assert reads == []
    finally:
        await comm.disconnect()

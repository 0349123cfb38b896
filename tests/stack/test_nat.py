"""Against real NAT 1.9.0 servers: identities and labels, counts, in-flight, merging, outages, eviction.

The dashboard's service layer (MonitorService over NatHttpSources) and its JSON API read real
`nat serve` processes that run the test plugin's per-user workflow (tests/support/nat_plugin).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.urls import reverse

from tests.support.daphne import Daphne, http_get, server_env, wait_until
from tests.support.machine import free_port
from tests.support.nat_server import NatServer, ensure_nat_venv
from usermetrics import identities, services
from usermetrics.identities import identity_register, user_id_derive
from usermetrics.metrics import PerUserMonitorResponse
from usermetrics.monitor import MonitorService
from usermetrics.nat import NatHttpSource
from usermetrics.selection import ViewSpec, view_filter
from usermetrics.snapshot import Snapshot

pytestmark = [pytest.mark.nat, pytest.mark.django_db(transaction=True)]

WAIT = 20.0  # seconds: the bound on every wait for a server to reach a state


@pytest.fixture(scope="module")
def nat_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NatServer]]:
    """Four NAT servers, started together: a, b (overlapping users), evict (1 s timeout), off (no monitoring)."""
    executable = ensure_nat_venv()
    work = tmp_path_factory.mktemp("nat")
    servers = {
        "a": NatServer(executable, work, name="nat-a"),
        "b": NatServer(executable, work, name="nat-b"),
        "evict": NatServer(executable, work, name="nat-evict", per_user_workflow_timeout=1, cleanup_interval=0.5),
        "off": NatServer(executable, work, name="nat-off", monitoring=False),
    }
    try:
        for server in servers.values():
            server.start()
        for server in servers.values():
            server.wait_ready()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def source(server: NatServer, **kwargs: object) -> NatHttpSource:
    """A dashboard source reading ``server``."""
    return NatHttpSource(server.name, server.url, timeout=5.0, **kwargs)


def unsigned_jwt(claims: dict[str, object]) -> str:
    """A JWT NAT decodes without verifying (its default when no validator is configured)."""

    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    # NAT does not check the signature, but it must be valid base64url.
    signature = base64.urlsafe_b64encode(b"not-verified").rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.{signature}"


IDENTITIES = {
    # label: (kind, value, how a client sends it)
    "Alice (cookie)": ("cookie", "alice-session-1", {"cookies": {"nat-session": "alice-session-1"}}),
    "Bob (API key)": ("api_key", "bob-key-123", {"headers": {"X-API-Key": "bob-key-123"}}),
    "Carol (JWT)": (
        "jwt_sub",
        "carol@idp",
        {"headers": {"Authorization": "Bearer " + unsigned_jwt({"sub": "carol@idp"})}},
    ),
    "Dave (Basic)": ("basic", "dave:pw-4", {"auth": ("dave", "pw-4")}),
}


def uid(label: str) -> str:
    """The user id NAT derives for one of IDENTITIES."""
    kind, value, _ = IDENTITIES[label]
    return user_id_derive(kind=kind, value=value)


async def call(server: NatServer, message: str, label: str) -> int:
    """POST one workflow request to ``server`` as the identity ``label``; returns the HTTP status."""
    how = IDENTITIES[label][2]
    async with httpx.AsyncClient(base_url=server.url, timeout=30, cookies=how.get("cookies")) as client:
        response = await client.post(
            "/v1/workflow", json={"message": message}, headers=how.get("headers"), auth=how.get("auth")
        )
    return response.status_code


async def until(service: MonitorService, check: Callable[[Snapshot], bool], what: str) -> Snapshot:
    """Refresh until ``check(snapshot)`` holds, at most WAIT seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT
    while True:
        snapshot = await service.refresh()
        if check(snapshot):
            return snapshot
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}; sources: {[h.as_dict() for h in snapshot.sources]}")
        await asyncio.sleep(0.1)


async def test_nat_identities_counts_errors_latencies_and_labels(nat_servers, install_service, staff_client):
    a = nat_servers["a"]
    for label, (kind, value, _) in IDENTITIES.items():
        await sync_to_async(identity_register)(label=label, kind=kind, value=value)
    assert await call(a, "sleep:0.3", "Alice (cookie)") == 200
    assert await call(a, "quick", "Alice (cookie)") == 200
    assert await call(a, "fail", "Bob (API key)") != 200
    assert await call(a, "quick", "Bob (API key)") == 200
    assert await call(a, "sleep:0.1", "Carol (JWT)") == 200
    assert await call(a, "quick", "Dave (Basic)") == 200

    service = await install_service([source(a)])
    snapshot = await until(
        service,
        lambda s: {uid(label) for label in IDENTITIES} <= set(s.by_id),
        "all four identities",
    )
    alice, bob, carol, dave = (snapshot.by_id[uid(label)] for label in IDENTITIES)
    assert alice.requests.total_requests == 2 and alice.requests.error_count == 0
    assert 140 <= alice.requests.avg_latency_ms < 1000  # (300 + ~1) / 2
    assert bob.requests.total_requests == 2 and bob.requests.error_count == 1
    assert carol.requests.total_requests == 1 and 100 <= carol.requests.avg_latency_ms < 1000
    assert dave.requests.total_requests == 1 and dave.requests.error_count == 0
    assert all(not u.session.is_active and u.session.ref_count == 0 for u in (alice, bob, carol, dave))
    # Timestamps arrive naive from NAT and leave aware UTC.
    assert alice.session.created_at.utcoffset() == timedelta(0)
    # NAT writes the layout the reader cuts by users: no body was validated whole, and reading the
    # unchanged server again validates nobody again.
    parser = service.monitor.sources[0].parser
    assert parser.whole_bodies == 0 and parser.validated >= 4
    validated = parser.validated
    again = await service.monitor.refresh()
    assert parser.validated == validated and again.by_id[alice.user_id] is alice

    # The labels: the uuid NAT reports maps to the registered name; search finds it by label.
    identities.identity_labels_forget()
    labels = await identities.identity_labels_aget()
    assert {labels[user.user_id] for user in (alice, bob, carol, dave)} == set(IDENTITIES)
    board = services.board_get()
    assert [board.ids[i] for i in view_filter(board, ViewSpec(q="carol"), labels=labels)] == [carol.user_id]

    # The JSON API serves the same users.
    response = await staff_client.get("/monitor/users")
    doc = PerUserMonitorResponse.model_validate_json(response.content)
    assert {u.user_id for u in doc.users} == set(snapshot.by_id)
    response = await staff_client.get(reverse("usermetrics:api-user", args=[bob.user_id]))
    assert json.loads(response.content)["requests"]["error_count"] == 1
    status = json.loads((await staff_client.get("/api/status")).content)
    (entry,) = status["sources"]
    assert entry["name"] == "nat-a" and entry["state"] == "ok" and entry["users"] >= 4
    assert entry["url"] == a.url and entry["last_error"] is None


async def test_nat_request_in_flight_shows_ref_count_one(nat_servers, install_service, staff_client, tmp_path):
    a = nat_servers["a"]
    release = tmp_path / "release"
    service = await install_service([source(a)])
    held = asyncio.create_task(call(a, f"hold:{release}", "Dave (Basic)"))
    try:
        snapshot = await until(
            service,
            lambda s: uid("Dave (Basic)") in s.by_id and s.by_id[uid("Dave (Basic)")].session.ref_count == 1,
            "the held request to be in flight",
        )
        dave = snapshot.by_id[uid("Dave (Basic)")]
        assert dave.session.is_active and dave.requests.active_requests == 1
        assert snapshot.evicted_at(dave.user_id) is None  # in flight: not due for eviction
        response = await staff_client.get(reverse("usermetrics:api-user", args=[dave.user_id]))
        assert json.loads(response.content)["session"] == {**json.loads(response.content)["session"], "ref_count": 1}
    finally:
        await asyncio.to_thread(Path(release).touch)
        assert await asyncio.wait_for(held, WAIT) == 200
    after = await until(
        service, lambda s: s.by_id[uid("Dave (Basic)")].session.ref_count == 0, "the held request to finish"
    )
    assert not after.by_id[uid("Dave (Basic)")].session.is_active


async def test_nat_two_servers_merge_an_overlapping_user(nat_servers, install_service):
    a, b = nat_servers["a"], nat_servers["b"]
    alice = uid("Alice (cookie)")
    service = await install_service([source(a), source(b)])
    before = (await service.refresh()).user_parts(alice)
    before_a = sum(u.requests.total_requests for name, u in before if name == a.name)
    assert await call(b, "sleep:0.2", "Alice (cookie)") == 200
    assert await call(b, "fail", "Alice (cookie)") != 200
    assert await call(b, "quick", "Bob (API key)") == 200
    snapshot = await until(service, lambda s: b.name in s.origins.get(alice, ()), "alice on both servers")
    parts = dict(snapshot.user_parts(alice))
    assert set(parts) == {a.name, b.name} and snapshot.origins[alice] == (a.name, b.name)
    merged = snapshot.by_id[alice]
    one, two = parts[a.name], parts[b.name]
    assert one.requests.total_requests == before_a and two.requests.total_requests == 2
    assert merged.requests.total_requests == one.requests.total_requests + 2
    assert merged.requests.error_count == one.requests.error_count + two.requests.error_count == 1
    weighted = (
        one.requests.avg_latency_ms * one.requests.total_requests + two.requests.avg_latency_ms * 2
    ) / merged.requests.total_requests
    assert merged.requests.avg_latency_ms == round(weighted, 2)
    assert merged.session.created_at == min(one.session.created_at, two.session.created_at)
    assert merged.session.last_activity == max(one.session.last_activity, two.session.last_activity)
    assert merged.memory.exit_stack_size == one.memory.exit_stack_size + two.memory.exit_stack_size
    # One row per user id.
    assert [u.user_id for u in snapshot.users].count(alice) == 1
    assert {h.name: h.state for h in snapshot.sources} == {a.name: "ok", b.name: "ok"}


async def test_nat_monitoring_switched_off_is_down_and_says_so(nat_servers, install_service, staff_client):
    await install_service([source(nat_servers["off"]), source(nat_servers["a"])])
    status = json.loads((await staff_client.get("/api/status")).content)
    off, a = status["sources"]
    assert off["state"] == "down" and "per-user monitoring is switched off on that server" in off["last_error"]
    assert a["state"] == "ok"  # the other source is not blocked


async def test_nat_server_stopped_is_down_with_users_kept_then_recovers(nat_servers, install_service, staff_client):
    b = nat_servers["b"]
    bob = uid("Bob (API key)")
    assert await call(b, "quick", "Bob (API key)") == 200
    service = await install_service([source(b), source(nat_servers["a"])], down_after=0)
    first = await until(service, lambda s: bob in s.by_id, "bob on nat-b")
    kept = first.user_parts(bob)
    await asyncio.to_thread(b.stop)

    down = await service.refresh()
    health = down.health_by_name[b.name]
    assert health.state == "down" and health.users_stale
    assert health.last_success == first.health_by_name[b.name].last_success and health.last_error
    assert down.user_parts(bob) == kept  # the last good users stay on screen
    assert down.user_is_stale(bob)
    assert down.health_by_name[nat_servers["a"].name].state == "ok"
    status = json.loads((await staff_client.get("/api/status")).content)
    entry = next(s for s in status["sources"] if s["name"] == b.name)
    assert entry["state"] == "down" and entry["users_stale"] is True
    assert entry["users"] == first.health_by_name[b.name].users > 0

    await asyncio.to_thread(b.start)
    await asyncio.to_thread(b.wait_ready)
    recovered = await until(service, lambda s: s.health_by_name[b.name].state == "ok", "nat-b to recover")
    # A restarted NAT has forgotten its users: the kept ones go, nothing stale is shown as live.
    assert b.name not in recovered.origins.get(bob, ())
    if bob in recovered.by_id:  # still reported by nat-a, live
        assert not recovered.user_is_stale(bob)
    assert await call(b, "quick", "Bob (API key)") == 200
    back = await until(service, lambda s: b.name in s.origins.get(bob, ()), "bob back on nat-b")
    assert dict(back.user_parts(bob))[b.name].requests.total_requests == 1


async def test_nat_evicted_user_disappears_cleanly(nat_servers, install_service, staff_client):
    server = nat_servers["evict"]
    carol = uid("Carol (JWT)")
    service = await install_service([source(server, per_user_workflow_timeout=timedelta(seconds=1))])
    assert await call(server, "quick", "Carol (JWT)") == 200
    seen = await service.refresh()
    if carol in seen.by_id:  # NAT may evict it before this first look, on a slow machine
        due = seen.evicted_at(carol)
        assert due is not None and due == seen.by_id[carol].session.last_activity + timedelta(seconds=1)
    gone = await until(service, lambda s: carol not in s.by_id, "NAT to evict carol")
    assert gone.health_by_name[server.name].state == "ok"
    assert gone.health_by_name[server.name].users == len(gone.users)
    response = await staff_client.get(reverse("usermetrics:api-user", args=[carol]))
    assert response.status_code == 404
    doc = PerUserMonitorResponse.model_validate_json((await staff_client.get("/monitor/users")).content)
    assert carol not in {u.user_id for u in doc.users}


def test_nat_whole_stack_two_servers_by_env(nat_servers, tmp_path):
    """Daphne configured only by NAT_SOURCES: merged users, health, one server away and back."""
    a, b = nat_servers["a"], nat_servers["b"]
    alice = uid("Alice (cookie)")
    for server in (a, b):
        assert asyncio.run(call(server, "quick", "Alice (cookie)")) == 200
    token = "nat-whole-stack-" + "t" * 24
    env = server_env(
        tmp_path,
        USERMETRICS_DEMO="",  # unset: NAT_SOURCES alone decides, and it turns the demo off
        USERMETRICS_API_TOKENS=token,
        USERMETRICS_REFRESH_INTERVAL="0.3",
        USERMETRICS_SOURCE_DOWN_AFTER="0",
        NAT_SOURCES=f"nat-a={a.url},nat-b={b.url}",
    )
    daphne = Daphne(free_port(), env, tmp_path / "daphne.log")
    base = daphne.base

    def status() -> dict[str, str]:
        code, body = http_get(base + "/api/status", token)
        return {s["name"]: s["state"] for s in json.loads(body)["sources"]} if code == 200 else {}

    def nat_total(server: NatServer) -> int:
        users = httpx.get(f"{server.url}/monitor/users", params={"user_id": alice}, timeout=5).json()["users"]
        return sum(u["requests"]["total_requests"] for u in users)

    def dashboard_alice() -> dict | None:
        code, body = http_get(base + "/monitor/users", token)
        users = {u["user_id"]: u for u in json.loads(body)["users"]} if code == 200 else {}
        return users.get(alice)

    try:
        daphne.start()
        wait_until(lambda: status() == {"nat-a": "ok", "nat-b": "ok"}, what="both sources ok", proc=daphne.proc)
        expected = nat_total(a) + nat_total(b)
        wait_until(
            lambda: (dashboard_alice() or {}).get("requests", {}).get("total_requests") == expected,
            what="alice merged over both servers",
            proc=daphne.proc,
        )
        _, body = http_get(base + "/monitor/users", token)
        assert not any(u["user_id"].endswith("@example.com") for u in json.loads(body)["users"])  # no demo

        a.stop()
        wait_until(lambda: status() == {"nat-a": "down", "nat-b": "ok"}, what="nat-a down", proc=daphne.proc)
        assert dashboard_alice() is not None  # kept, as stale
        a.start()
        a.wait_ready()
        wait_until(lambda: status() == {"nat-a": "ok", "nat-b": "ok"}, what="nat-a back", proc=daphne.proc)
        # nat-a restarted empty: alice's numbers are nat-b's alone now, not the old sum.
        wait_until(
            lambda: (dashboard_alice() or {}).get("requests", {}).get("total_requests") == nat_total(b),
            what="alice from nat-b only",
            proc=daphne.proc,
        )
    finally:
        daphne.stop()


async def test_nat_checksources_command(nat_servers, settings):
    settings.USERMETRICS = {
        **settings.USERMETRICS,
        "SOURCES": [{"NAME": "a", "URL": nat_servers["a"].url}, {"NAME": "off", "URL": nat_servers["off"].url}],
    }
    out = io.StringIO()
    await sync_to_async(call_command)("checksources", "--no-fail", stdout=out)
    text = out.getvalue()
    assert f"a (nat {nat_servers['a'].url}): ok" in text
    assert "off (nat" in text and "down, 0 users" in text and "switched off" in text

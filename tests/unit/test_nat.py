"""NatHttpSource against a scripted HTTP transport: validation, tolerance, 404, size cap, config."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from usermetrics.nat import (
    MonitoringDisabled,
    NatBody,
    NatHttpSource,
    ResponseTooLarge,
    SourceError,
    parse_nat_sources,
    source_entry_parse,
)

USER = {
    "user_id": "3ca87aca-b34e-511f-b582-23b4c4e4f20b",
    "session": {
        "created_at": "2026-11-25T15:00:48.133278",
        "last_activity": "2026-11-25T15:00:48.337082",
        "ref_count": 0,
        "is_active": False,
    },
    "requests": {"total_requests": 1, "active_requests": 0, "avg_latency_ms": 203.68, "error_count": 0},
    "memory": {"per_user_functions_count": 0, "per_user_function_groups_count": 0, "exit_stack_size": 1},
}


def nat_body(*users: dict, **extra: object) -> bytes:
    """A /monitor/users body as NAT 1.9.0 writes it (naive local timestamps)."""
    return json.dumps(
        {"timestamp": "2026-11-25T15:00:49.045158", "total_active_users": len(users), "users": list(users), **extra}
    ).encode()


def source_for(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> NatHttpSource:
    return NatHttpSource("nat", "http://nat.test:8000/", transport=httpx.MockTransport(handler), **kwargs)


async def test_nat_source_fetches_validates_and_sends_headers():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=nat_body(USER))

    source = source_for(handler, headers={"Authorization": "Bearer proxy-token"})
    response = await source.fetch()
    assert [u.user_id for u in response.users] == [USER["user_id"]]
    assert response.users[0].requests.avg_latency_ms == 203.68
    (request,) = seen
    assert str(request.url) == "http://nat.test:8000/monitor/users"
    assert request.headers["authorization"] == "Bearer proxy-token"
    assert "proxy-token" not in repr(source)
    await source.aclose()


async def test_nat_source_tolerates_unknown_fields_and_llm_usage_blocks():
    user = {
        **USER,
        "llm_usage": {"total_tokens": 120, "prompt_tokens": 100, "completion_tokens": 20},
        "requests": {**USER["requests"], "p99_latency_ms": 9.5},
        "something_new": [1, 2, 3],
    }
    source = source_for(lambda request: httpx.Response(200, content=nat_body(user, server_version="1.9.0")))
    response = await source.fetch()
    assert response.users[0].user_id == USER["user_id"]
    assert "llm_usage" not in response.users[0].model_dump_json()


async def test_nat_source_404_means_monitoring_is_switched_off():
    source = source_for(lambda request: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(MonitoringDisabled, match="per-user monitoring is switched off on that server"):
        await source.fetch()


async def test_nat_source_other_status_and_invalid_body_are_errors():
    source = source_for(lambda request: httpx.Response(502, text="bad gateway"))
    with pytest.raises(SourceError, match="HTTP 502"):
        await source.fetch()
    broken = {**USER, "requests": {**USER["requests"], "total_requests": -1}}
    source = source_for(lambda request: httpx.Response(200, content=nat_body(broken)))
    with pytest.raises(SourceError, match=r"not a PerUserMonitorResponse: 1 error\(s\), first at users.0.requests"):
        await source.fetch()


async def test_nat_source_stops_reading_past_the_size_cap():
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            sent.append(1)
            yield b"x" * 1024

    source = source_for(lambda request: httpx.Response(200, content=endless()), max_response_bytes=4096)
    with pytest.raises(ResponseTooLarge, match="over the cap of 4096 bytes"):
        await source.fetch()
    assert len(sent) <= 5  # stopped at the cap, not after reading everything

    declared = source_for(
        lambda request: httpx.Response(200, content=b"{}", headers={"Content-Length": "999999"}),
        max_response_bytes=4096,
    )
    with pytest.raises(ResponseTooLarge, match="999999 bytes"):
        await declared.fetch()


async def test_nat_source_in_service_converts_naive_times_and_reports_404_health(install_service):
    berlin = ZoneInfo("Europe/Berlin")
    good = source_for(lambda request: httpx.Response(200, content=nat_body(USER)), timezone=berlin)
    off = NatHttpSource("off", "http://off.test", transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    snapshot = (await install_service([good, off])).monitor.last_snapshot
    usage = snapshot.by_id[USER["user_id"]]
    # 15:00 in Berlin in November (UTC+1) is 14:00 UTC.
    assert usage.session.created_at == datetime(2026, 11, 25, 14, 0, 48, 133278, tzinfo=UTC)
    health = snapshot.health_by_name
    assert health["nat"].state == "ok" and health["nat"].url == "http://nat.test:8000"
    assert health["off"].state == "down"
    assert "per-user monitoring is switched off on that server" in health["off"].last_error


def test_nat_sources_env_format():
    assert parse_nat_sources(" a=http://h1:8000 , b=http://h2:9000/,,http://h3:7000 ") == [
        {"NAME": "a", "URL": "http://h1:8000"},
        {"NAME": "b", "URL": "http://h2:9000/"},
        {"NAME": "h3:7000", "URL": "http://h3:7000"},
    ]
    assert parse_nat_sources("") == []


def test_nat_source_from_a_parsed_entry():
    a = NatHttpSource.from_entry(source_entry_parse({"NAME": "a", "URL": "http://h1:8000"}), default_timeout=4)
    assert (a.name, a.endpoint, a.timeout, a.timezone, a.per_user_workflow_timeout) == (
        "a",
        "http://h1:8000/monitor/users",
        4.0,
        None,
        None,
    )
    entry = source_entry_parse(
        {
            "NAME": "b",
            "URL": "http://h2:8000",
            "TIMEOUT": 1.5,
            "HEADERS": {"Authorization": "Bearer t"},
            "TIMEZONE": "Europe/Berlin",
            "PER_USER_WORKFLOW_TIMEOUT": 600,
            "MAX_RESPONSE_BYTES": 1000,
        }
    )
    assert "Bearer" not in repr(entry)
    b = NatHttpSource.from_entry(entry, default_timeout=4)
    assert b.timeout == 1.5 and b.headers == {"Authorization": "Bearer t"}
    assert b.timezone == ZoneInfo("Europe/Berlin") and b.per_user_workflow_timeout == timedelta(minutes=10)
    assert b.max_response_bytes == 1000


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"NAME": "a"}, "needs NAME and URL"),
        ({"NAME": "a", "URL": "h1:8000"}, "must start with http"),
        ({"NAME": "a", "URL": "http://h", "TIMEZONE": "Mars/Base"}, "unknown TIMEZONE"),
        ({"NAME": "a", "URL": "http://h", "HEADER": {}}, "unknown keys"),
        ({"NAME": "a", "URL": "http://h", "TIMEOUT": "soon"}, "could not convert"),
    ],
)
def test_nat_source_bad_entries_say_what_is_wrong(entry, message):
    with pytest.raises(ValueError, match=message):
        source_entry_parse(entry)


def test_nat_body_reuses_the_records_of_users_that_did_not_change():
    parser = NatBody(ZoneInfo("Europe/Berlin"))
    other = {**USER, "user_id": "other"}
    first = parser.read(nat_body(USER, other))
    moved = {**other, "requests": {**other["requests"], "total_requests": 2}}
    second = parser.read(nat_body(USER, moved, server_version="1.9.0"))
    assert second.users[0] is first.users[0]  # unchanged: the very same record, not validated again
    assert second.users[1] is not first.users[1] and second.users[1].requests.total_requests == 2
    assert (parser.reused, parser.validated) == (1, 3)
    # Converted to UTC as it was read: 15:00 in Berlin in November is 14:00 UTC.
    assert first.users[0].session.created_at == datetime(2026, 11, 25, 14, 0, 48, 133278, tzinfo=UTC)


def test_nat_body_tells_duplicate_records_of_one_user_apart():
    parser = NatBody(None)
    busy = {**USER, "session": {**USER["session"], "ref_count": 1, "is_active": True}}
    first = parser.read(nat_body(USER, busy))  # one user twice: NAT with an extra endpoint
    second = parser.read(nat_body(USER, busy))
    assert [u.session.ref_count for u in second.users] == [0, 1]
    assert second.users[0] is first.users[0] and second.users[1] is first.users[1]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"[1, 2]", "body"),
        (b"{not json", "not JSON"),
        (nat_body({**USER, "requests": {**USER["requests"], "total_requests": -1}}), "users.0.requests.total_requests"),
        (nat_body(USER, {"user_id": "x"}), "users.1.session"),
    ],
)
def test_nat_body_says_where_it_is_not_a_monitor_response(body, where):
    with pytest.raises(SourceError, match="not a PerUserMonitorResponse") as caught:
        NatBody(None).read(body)
    assert where in str(caught.value)

"""NatHttpSource against a scripted HTTP transport: validation, tolerance, 404, size cap, config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.factories import USER, nat_body
from usermetrics.nat import (
    MonitoringDisabled,
    NatHttpSource,
    ResponseTooLarge,
    SourceError,
    parse_nat_sources,
    source_entry_parse,
)


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

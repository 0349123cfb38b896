"""Prometheus /metrics: parses with prometheus-client, aggregates only, token or address access."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.alert_helpers import firing_source_down
from tests.support.history_helpers import FixedSource, histogram, recorder, snapshot, usage
from usermetrics.clock import utcnow
from usermetrics.extras import Extras
from usermetrics.models import AlertRule

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_IDS = ["secret-user-7f3a", "another.person@example.com"]
SCRAPE_TOKEN = "scrape-" + "m" * 30


@pytest.fixture
def scrape_token(settings) -> str:
    """A configured /metrics token."""
    settings.USERMETRICS = {**settings.USERMETRICS, "METRICS_TOKENS": [SCRAPE_TOKEN]}
    return SCRAPE_TOKEN


@pytest.fixture
async def scraped(install_service):
    """A service over two users (one busy) and one ended user in the history."""
    now = utcnow()
    users = [
        usage(SECRET_IDS[0], total=10, errors=2, avg=200.0, ref=2, stack=3, last=now),
        usage(SECRET_IDS[1], total=30, errors=0, avg=100.0, last=now),
    ]
    await install_service([FixedSource("nat-a", users), FixedSource("nat-b", [])])
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=1), [*users, usage("ended-user-x", total=1)]))
    await sync_to_async(rec.record)(snapshot(now, users))


def _families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_prometheus_metrics_parse_and_hold_no_user_id(scraped, scrape_token):
    response = await AsyncClient().get("/metrics", headers={"Authorization": f"Bearer {scrape_token}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for user_id in [*SECRET_IDS, "ended-user-x"]:
        assert user_id not in text
    metrics = _families(text)
    assert metrics["usermetrics_users"] == {
        (("state", "active"),): 1.0,
        (("state", "idle"),): 1.0,
        (("state", "ended"),): 1.0,
    }
    assert metrics["usermetrics_requests"][()] == 40
    assert metrics["usermetrics_errors"][()] == 2
    assert metrics["usermetrics_in_flight_requests"][()] == 2
    assert metrics["usermetrics_latency_mean_seconds"][()] == pytest.approx((10 * 200 + 30 * 100) / 40 / 1000)
    assert metrics["usermetrics_source_up"] == {(("source", "nat-a"),): 1.0, (("source", "nat-b"),): 1.0}
    assert set(metrics["usermetrics_source_staleness_seconds"]) == {(("source", "nat-a"),), (("source", "nat-b"),)}
    assert "usermetrics_refresh_duration_seconds" in metrics
    assert "usermetrics_last_refresh_age_seconds" in metrics
    assert metrics["usermetrics_refreshes_total"][()] >= 1
    # Only bounded labels anywhere: state and source.
    labels = {name for samples in metrics.values() for key in samples for name, _ in key}
    assert labels <= {"state", "source"}


async def test_prometheus_access_by_address_is_opt_in(scraped, settings, scrape_token):
    # Loopback is not let in by default: behind the README's proxy every client is loopback.
    assert (await AsyncClient().get("/metrics")).status_code == 401
    assert (await _scrape_from("::1")).status_code == 401
    settings.USERMETRICS = {**settings.USERMETRICS, "METRICS_ALLOW": ["10.0.0.0/8"]}
    assert (await AsyncClient().get("/metrics")).status_code == 401
    assert (await _scrape_from("10.1.2.3")).status_code == 200
    assert (await _scrape_from("11.1.2.3")).status_code == 401


async def _scrape_from(address: str):
    """Call the view with a request from ``address`` (the test client always says 127.0.0.1)."""
    from django.test import AsyncRequestFactory

    from usermetrics.api.prometheus import metrics

    request = AsyncRequestFactory().get("/metrics")
    request.META["REMOTE_ADDR"] = address
    return await metrics(request)


async def test_prometheus_access_by_token(scraped, api_tokens, scrape_token):
    client = AsyncClient()
    denied = await client.get("/metrics")
    assert denied.status_code == 401 and b"usermetrics_" not in denied.content
    assert denied["WWW-Authenticate"] == 'Bearer realm="usermetrics-metrics"'
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"] == 'Bearer realm="usermetrics-metrics"'
    assert json.loads(wrong.content) == {"detail": "Invalid bearer token."}
    assert (await client.get("/metrics", headers={"Authorization": "Basic abc"})).status_code == 401
    ok = await client.get("/metrics", headers={"Authorization": f"Bearer {scrape_token}"})
    assert ok.status_code == 200
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {api_tokens[1]}"})).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer anything"}])
async def test_prometheus_without_a_configured_token_says_how_to_set_one(scraped, headers):
    response = await AsyncClient().get("/metrics", headers=headers)  # from loopback, the proxy's address
    assert response.status_code == 403 and b"usermetrics_" not in response.content
    detail = json.loads(response.content)["detail"]
    assert "USERMETRICS_METRICS_TOKENS" in detail and "USERMETRICS_METRICS_ALLOW" in detail


def test_prometheus_address_allowed_handles_ipv6_and_bad_entries(settings):
    from usermetrics.api.prometheus import address_allowed

    settings.USERMETRICS = {**settings.USERMETRICS, "METRICS_ALLOW": ["::1", "not-an-ip", "192.168.0.0/16"]}
    assert address_allowed("::1")
    assert address_allowed("192.168.4.2")
    assert not address_allowed("127.0.0.1")
    assert not address_allowed("garbage")


@pytest.mark.usefixtures("seeded_rules")
async def test_prometheus_shows_the_alerts_firing_gauge_per_rule(producer_with_alerts, alerts_to, receiver, settings):
    alerts_to(receiver().url)
    await firing_source_down(producer_with_alerts)
    settings.USERMETRICS = {**settings.USERMETRICS, "METRICS_TOKENS": ["scrape-" + "m" * 30]}
    scraped = await AsyncClient().get("/metrics", headers={"Authorization": "Bearer scrape-" + "m" * 30})
    metrics = _families(scraped.content.decode())
    firing = metrics["usermetrics_alerts_firing"]
    assert firing[(("rule", "source-down"),)] == 1.0
    assert firing[(("rule", "user-stuck"),)] == 0.0
    # One series per enabled rule, labelled by the rule only: never by user or source.
    enabled = await sync_to_async(lambda: set(AlertRule.objects.filter(enabled=True).values_list("name", flat=True)))()
    assert {dict(k)["rule"] for k in firing} == enabled and all(len(k) == 1 for k in firing)


class CompanionSource(FixedSource):
    """A companion stream as the monitor reads one: users with extras, its workers and what it skipped."""

    kind = "nat-stream"

    def __init__(self, name: str, users: list, extras: dict[str, Extras]) -> None:
        super().__init__(name, users)
        self.extras_now = extras
        self.workers = [
            {"label": "w1", "state": "ok", "dropped": 2},
            {"label": "w2", "state": "ok", "dropped": 1},
            {"label": "w0", "state": "ended", "dropped": 5},
        ]

    def extras(self) -> dict[str, Extras]:
        return self.extras_now

    def workers_summary(self) -> list[dict]:
        return self.workers

    def skipped_by_kind(self) -> dict[str, int]:
        return {"an entry that is not a report": 4, "another deployment": 1}


async def test_prometheus_companions_histogram_queues_and_streams(install_service, scrape_token):
    fast, slow = [10.0] * 10, [1000.0] * 20
    source = CompanionSource(
        "nat", [usage(SECRET_IDS[0], total=10, avg=10.0)], {SECRET_IDS[0]: Extras(latency=histogram(*fast))}
    )
    producer = await install_service([source, FixedSource("plain", [usage("plain-user")])], interval=3600)
    producer.recorder = rec = recorder()
    await sync_to_async(rec.record)(snapshot(utcnow() - timedelta(minutes=1), []))  # recording since before
    await producer.tick()  # the user's life starts while recorded: its 10 requests count
    await rec.flush()
    source.users = [usage(SECRET_IDS[0], total=30, avg=670.0, ref=11), usage(SECRET_IDS[1], total=1, avg=1.0)]
    source.extras_now = {
        SECRET_IDS[0]: Extras(latency=histogram(*fast, *slow), queued=3, max_concurrency=8),
        SECRET_IDS[1]: Extras(latency=histogram(1.0), max_concurrency=8),
    }
    await producer.tick()
    await rec.flush()
    await producer.tick()  # the board's meta carries what the recorder counted so far
    response = await AsyncClient().get("/metrics", headers={"Authorization": f"Bearer {scrape_token}"})
    text = response.content.decode()
    assert all(user_id not in text for user_id in SECRET_IDS)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["usermetrics_request_latency_ms"].type == "histogram"
    metrics = _families(text)
    buckets = {dict(k)["le"]: v for k, v in metrics["usermetrics_request_latency_ms_bucket"].items()}
    # Cumulative, Prometheus-style: every request at or below each bound; +Inf is the count.
    wanted = {"0.5": None, "1.0": 1, "7.5": 1, "10.0": 11, "750.0": 11, "1000.0": 31, "300000.0": 31, "+Inf": 31}
    assert {le: buckets.get(le) for le in wanted} == wanted and list(buckets.values()) == sorted(buckets.values())
    assert metrics["usermetrics_request_latency_ms_count"][()] == 31
    assert metrics["usermetrics_request_latency_ms_sum"][()] == pytest.approx(30 * 670.0 + 1.0)  # NAT's own timer
    assert metrics["usermetrics_queued_requests"][()] == 3
    assert metrics["usermetrics_users_saturated"][()] == 1
    assert metrics["usermetrics_nat_workers"] == {
        (("source", "nat"), ("state", "running")): 2.0,
        (("source", "nat"), ("state", "ended")): 1.0,
    }  # "plain" is not a companion stream: no series
    assert metrics["usermetrics_nat_reports_dropped"] == {(("source", "nat"),): 3.0}
    assert metrics["usermetrics_nat_stream_skipped_total"] == {
        (("kind", "an entry that is not a report"), ("source", "nat")): 4.0,
        (("kind", "another deployment"), ("source", "nat")): 1.0,
    }
    labels = {name for samples in metrics.values() for key in samples for name, _ in key}
    assert labels <= {"state", "source", "le", "kind"}

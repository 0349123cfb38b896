"""Prometheus ``GET /metrics`` (async view, sync collector): aggregates only, never a per-user label.

A user id as a label value would give every user its own time series: unbounded cardinality that
breaks Prometheus at our user counts. Sources are few and configured, so ``source`` is a label;
so are alert rules (``rule``: the enabled rules' names, bounded by the rule set).
Access: a bearer token (``METRICS_TOKENS`` or the API tokens), or, opt-in, a client address in
``METRICS_ALLOW`` (addresses or networks; empty by default: behind a local proxy every client is
loopback, so an address proves nothing there).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from itertools import accumulate

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from usermetrics_nat.histogram import BOUNDS_MS

from usermetrics import services
from usermetrics.conf import get_config

from .auth import bearer_check, json_error

logger = logging.getLogger(__name__)


class SnapshotCollector(Collector):
    """Turns one snapshot (and the recorder's process totals) into metric families."""

    def __init__(self, state: services.ScrapeState) -> None:
        """Report ``state``."""
        self.state = state

    def collect(self) -> Iterator[Metric]:
        """The metric families of this scrape."""
        st = self.state
        t = st.board.totals
        by_state = GaugeMetricFamily("usermetrics_users", "Users by lifecycle state.", labels=["state"])
        by_state.add_metric(["active"], t.active)
        by_state.add_metric(["idle"], t.users - t.active)
        if st.ended is not None:
            by_state.add_metric(["ended"], st.ended)
        yield by_state
        yield GaugeMetricFamily(
            "usermetrics_requests",
            "Lifetime requests of the users the sources report now (drops when users are evicted).",
            value=t.requests,
        )
        yield GaugeMetricFamily(
            "usermetrics_errors",
            "Lifetime failed requests of the users the sources report now.",
            value=t.errors,
        )
        yield GaugeMetricFamily(
            "usermetrics_in_flight_requests",
            "Requests in flight over all users.",
            value=t.in_flight,
        )
        yield GaugeMetricFamily(
            "usermetrics_latency_mean_seconds",
            "Request-weighted mean of the users' lifetime average latency.",
            value=t.avg_latency_ms / 1000,
        )
        yield GaugeMetricFamily(
            "usermetrics_exit_stack_resources",
            "Resources held on the users' exit stacks.",
            value=t.exit_stack,
        )
        rec = st.observed
        if rec is not None:
            # Monotonic per process (Prometheus handles the reset at a restart): use rate() on these.
            yield CounterMetricFamily(
                "usermetrics_observed_requests", "Requests seen by the history recorder.", value=rec.requests
            )
            yield CounterMetricFamily(
                "usermetrics_observed_errors",
                "Failed requests seen by the history recorder.",
                value=rec.errors,
            )
            yield CounterMetricFamily(
                "usermetrics_observed_latency_seconds",
                "Sum of the latency of the requests seen by the recorder: rate(this) / rate(requests) = mean.",
                value=rec.latency_ms / 1000,
            )
        up = GaugeMetricFamily(
            "usermetrics_source_up", "1 when the source's last refresh succeeded.", labels=["source"]
        )
        stale = GaugeMetricFamily(
            "usermetrics_source_staleness_seconds",
            "Seconds since the source last answered (absent before it ever did).",
            labels=["source"],
        )
        source_users = GaugeMetricFamily("usermetrics_source_users", "Users the source reported.", labels=["source"])
        duration = GaugeMetricFamily(
            "usermetrics_source_fetch_duration_seconds", "How long the source's last fetch took.", labels=["source"]
        )
        slowest = 0.0
        for health in st.board.sources:
            up.add_metric([health.name], 1 if health.state == "ok" else 0)
            if health.last_success is not None:
                stale.add_metric([health.name], max(0.0, (st.now - health.last_success).total_seconds()))
            source_users.add_metric([health.name], health.users)
            if health.last_duration_ms is not None:
                duration.add_metric([health.name], health.last_duration_ms / 1000)
                slowest = max(slowest, health.last_duration_ms / 1000)
        yield from (up, stale, source_users, duration)
        yield from companion_families(st)
        yield from llm_families(st)
        # Sources are fetched at once, so a refresh takes as long as its slowest source.
        yield GaugeMetricFamily(
            "usermetrics_refresh_duration_seconds", "Duration of the last refresh (its slowest source).", value=slowest
        )
        yield GaugeMetricFamily(
            "usermetrics_last_refresh_age_seconds",
            "Seconds since the last refresh.",
            value=max(0.0, (st.now - st.board.timestamp).total_seconds()),
        )
        yield GaugeMetricFamily(
            "usermetrics_producer_up",
            "1 while a producer publishes boards this face can read.",
            value=int(st.producer.publishing),
        )
        yield GaugeMetricFamily(
            "usermetrics_refresh_interval_seconds", "Configured refresh interval.", value=st.interval
        )
        yield CounterMetricFamily(
            "usermetrics_refreshes", "Refreshes done by the producer that published the board.", value=st.refreshes
        )
        if st.alerts.known:
            firing = GaugeMetricFamily(
                "usermetrics_alerts_firing",
                "Subjects (users, sources, or 1 for a count) firing per enabled alert rule, silenced ones included.",
                labels=["rule"],
            )
            for rule, count in sorted(st.alerts.by_rule.items()):
                firing.add_metric([rule], count)
            yield firing


def companion_families(st: services.ScrapeState) -> Iterator[Metric]:
    """What NAT companions add: the latency histogram over every user, the queues, and each companion stream's health.

    The histogram is the recorder's (every recorded request of every user the companions report,
    monotonic per producer process like the ``observed`` counters), so ``rate()`` and
    ``histogram_quantile()`` work on it; its ``_sum`` is NAT's own latency sum of the same requests.
    """
    if st.latency is not None:
        counts, sum_ms = st.latency
        # Prometheus buckets are cumulative: each ``le`` counts every request at or below it.
        cumulative = list(accumulate(counts))
        bounds = [floatToGoString(b) for b in BOUNDS_MS] + ["+Inf"]
        yield HistogramMetricFamily(
            "usermetrics_request_latency_ms",
            "Latency of the requests recorded, every user NAT companions report (ms; _sum: NAT's own timer).",
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=round(sum_ms, 3),
        )
    yield GaugeMetricFamily(
        "usermetrics_queued_requests", "Requests waiting on their user's semaphore now, all users.", value=st.queued
    )
    yield GaugeMetricFamily(
        "usermetrics_users_saturated", "Users with a request queued on their semaphore now.", value=st.saturated
    )
    workers = GaugeMetricFamily(
        "usermetrics_nat_workers",
        "A companion stream's NAT workers: running, and ended recently (the ones its source still lists).",
        labels=["source", "state"],
    )
    skipped = CounterMetricFamily(
        "usermetrics_nat_stream_skipped", "Stream entries and lines skipped, by kind.", labels=["source", "kind"]
    )
    dropped = GaugeMetricFamily(
        "usermetrics_nat_reports_dropped",
        "Reports the running workers could not send (Redis away), as they last said.",
        labels=["source"],
    )
    for health in st.board.sources:
        if health.workers is None:  # not a companion stream
            continue
        running = [w for w in health.workers if w.get("state") == "ok"]
        workers.add_metric([health.name, "running"], len(running))
        workers.add_metric([health.name, "ended"], len(health.workers) - len(running))
        dropped.add_metric([health.name], sum(int(w.get("dropped", 0)) for w in running))
        for kind, n in sorted((health.skipped or {}).items()):
            skipped.add_metric([health.name, kind], n)
    yield from (workers, skipped, dropped)


# The kinds of token ``usermetrics_llm_tokens`` counts, by where each sits in a ``Usage``. No "total" kind: it is
# prompt + completion, and summing the kinds would count twice (cached is within prompt, reasoning within completion).
TOKEN_KINDS = (("prompt", 1), ("completion", 2), ("cached", 3), ("reasoning", 4))


def llm_families(st: services.ScrapeState) -> Iterator[Metric]:
    """LLM calls, tokens and cost per model, and tool calls, over the users the sources report now.

    Gauges, like ``usermetrics_requests``: they add NAT's lifetime counters of the users reported now,
    so they drop when a user is evicted (and the cost moves when a price changes). ``model`` is bounded:
    the 50 models with the most tokens, the rest as ``other``; never a user label.
    """
    calls = GaugeMetricFamily(
        "usermetrics_llm_calls", "LLM calls of the users reported now, per model (drops when users are evicted).",
        labels=["model"],
    )  # fmt: skip
    tokens = GaugeMetricFamily(
        "usermetrics_llm_tokens",
        "Tokens of those calls per model and kind (cached is part of prompt, reasoning part of completion).",
        labels=["model", "kind"],
    )
    cost = GaugeMetricFamily(
        "usermetrics_llm_cost",
        "What those calls cost at the prices in force, per priced model (a model without a price is left out).",
        labels=["model", "currency"],
    )
    for total in st.llm:
        calls.add_metric([total.model], total.usage[0])
        for kind, k in TOKEN_KINDS:
            tokens.add_metric([total.model, kind], total.usage[k])
        if total.cost is not None:
            cost.add_metric([total.model, st.currency], total.cost)
    yield from (calls, tokens, cost)
    yield GaugeMetricFamily(
        "usermetrics_tool_calls", "Tool calls of the users reported now (drops when users are evicted).",
        value=st.tool_calls,
    )  # fmt: skip


def render(state: services.ScrapeState) -> bytes:
    """The text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(state))
    return generate_latest(registry)


def address_allowed(address: str) -> bool:
    """True when ``address`` is in one of the METRICS_ALLOW addresses or networks."""
    try:
        ip = ipaddress.ip_address(address.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    for entry in get_config().metrics_allow:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            logger.warning("Ignoring METRICS_ALLOW entry %r: not an address or network", entry)
    return False


NO_TOKEN = (
    "/metrics needs a bearer token and none is configured: set USERMETRICS_METRICS_TOKENS (or"
    " USERMETRICS_API_TOKENS) and scrape with 'Authorization: Bearer <token>'; or list the scraper's"
    " addresses in USERMETRICS_METRICS_ALLOW (never behind a local proxy: every client is loopback there)."
)
REALM = "usermetrics-metrics"


@never_cache
@require_GET
async def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition of the current aggregates."""
    config = get_config()
    tokens = (*config.metrics_tokens, *config.api_tokens)
    if request.headers.get("Authorization"):
        if not tokens:
            return json_error(NO_TOKEN, 403)
        refused = bearer_check(request, tokens)
        if refused:
            return json_error(refused, 401, realm=REALM)
    elif not address_allowed(request.META.get("REMOTE_ADDR", "")):
        if not tokens:
            return json_error(NO_TOKEN, 403)
        return json_error("Authentication required: send 'Authorization: Bearer <token>'.", 401, realm=REALM)
    return HttpResponse(render(await services.scrape_get()), content_type=CONTENT_TYPE_LATEST)

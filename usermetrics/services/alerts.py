"""Alerts for the faces (sync): what fires as the producer published it, the alerts page, and a test send.

The count in every page's header and on ``/metrics`` comes from the latest board (``Board.meta``,
``usermetrics.firing``), never from the database; the alerts page reads the incidents.
"""

from __future__ import annotations

from usermetrics.alerts.delivery import RouteResult, routes_parse, routes_probe
from usermetrics.alerts.messages import probe_message
from usermetrics.alerts.overview import AlertsOverview, alerts_overview
from usermetrics.board import Board
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.firing import Firing, firing_of
from usermetrics.models import AlertRule

from .live import board_get
from .names import labels_get


def alerts_firing(board: Board | None = None) -> Firing:
    """The alerts firing as of ``board`` (default: the latest published one)."""
    return firing_of((board or board_get()).meta)


def alerts_overview_get() -> AlertsOverview:
    """The alerts page: incidents firing and recent, deliveries, rules, silences."""
    return alerts_overview(config=get_config().alerts, labels=labels_get(), now=utcnow())


def alert_routes() -> list[str]:
    """Every configured route: the defaults, then each enabled rule's own (each once)."""
    urls = list(get_config().alerts.urls)
    for text in AlertRule.objects.filter(enabled=True).exclude(routes="").values_list("routes", flat=True):
        urls += routes_parse(text)
    return list(dict.fromkeys(urls))


def alerts_test_send(*, urls: list[str] | None = None) -> list[RouteResult]:
    """Send one test notification through ``urls`` (default: every configured route) now; each route's result.

    [] when no route is configured. Each send is recorded as a ``test`` delivery (not retried).
    """
    now = utcnow()
    return routes_probe(alert_routes() if urls is None else urls, probe_message(now), now=now)

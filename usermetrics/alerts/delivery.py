"""Delivery (sync, a thread of its own): the outbox of notifications, sent through Apprise with retries.

Every notification to every route is a ``Delivery`` row before anything is sent, so neither a
failing receiver nor a stopping process loses one. The courier thread sends what is due; a
failure is tried again after ``RETRY_MIN`` seconds, doubling up to ``RETRY_MAX``, until it is
sent or ``GIVE_UP_AFTER`` has passed (then it is ``failed``: logged, and shown on the alerts
page). It never runs on the producer's loop, so a slow or dead receiver never delays a refresh.
Apprise URLs carry secrets: pages and logs show only ``route_label``, and Apprise's own words
about a failure are scrubbed of every part of the URL but its scheme, host and port.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

import apprise
from apprise.utils.parse import parse_urls
from django.db import OperationalError, close_old_connections, connections
from django.db.models import Min

from usermetrics.clock import Clock, utcnow
from usermetrics.conf import AlertsConfig
from usermetrics.models import Delivery, DeliveryState

from .messages import Message

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 120.0  # an attempt in progress holds its row this long (two couriers never send one twice)
RECORD_TRIES = 5  # an outcome that cannot be written at once (a locked database) is tried again: else it is sent twice
POLL_SECONDS = 5.0  # the courier looks for due deliveries at least this often (rows other processes wrote)
BATCH = 50


def routes_parse(text: str | Iterable[str]) -> list[str]:
    """Apprise URLs from text: one per line, or separated by commas or spaces (Apprise's own splitting)."""
    return [u for u in parse_urls(text) if u]


def route_valid(url: str) -> bool:
    """Whether Apprise knows what to do with ``url``."""
    return apprise.Apprise.instantiate(url) is not None


def route_label(url: str) -> str:
    """A route as pages and logs show it: Apprise's privacy form, down to scheme, host and port.

    Apprise masks passwords and known services' tokens, but a webhook's path, headers and query
    can be secrets too (an ntfy topic, a token in the path): those are cut to an ellipsis.
    """
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return "(not an Apprise URL)"
    private = urlsplit(plugin.url(privacy=True))
    rest = "/…" if (private.path.strip("/") or private.query) else ""
    return f"{plugin.service_name}: {private.scheme}://{private.netloc}{rest}"


def _secrets(url: str) -> list[str]:
    """Every part of ``url`` that is not its scheme, host or port, longest first."""
    parts = urlsplit(url)
    found = {parts.username or "", parts.password or ""}
    found.update(re.split(r"[/?&=#,+]", parts.path + "?" + parts.query + "#" + parts.fragment))
    found.update(unquote(p) for p in list(found))
    host = {parts.hostname or "", str(parts.port or "")}
    return sorted((s for s in found if len(s) >= 3 and s not in host), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every secret-bearing part of ``url`` replaced by ``****``."""
    for secret in _secrets(url):
        text = text.replace(secret, "****")
    return text


def send(url: str, message: Message) -> tuple[bool, str]:
    """Send ``message`` to one route now (blocking: call it off the loop); whether it went, and why not."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return False, "not an Apprise URL"
    try:
        result = notifier.notify(body=message.body, title=message.title, notify_type=message.notify_type)
    except Exception as exc:  # a plugin bug must not kill the courier
        return False, scrub(f"{type(exc).__name__}: {exc}", url)
    if result:
        return True, ""
    words = "; ".join(entry.message for entry in result.logs()) or "Apprise reported a failure"
    return False, scrub(words, url)


def deliveries_new(
    message: Message, urls: Iterable[str], *, kind: str, now: datetime, incident_id: int | None = None
) -> list[Delivery]:
    """Unsaved outbox rows of ``message``, one per route, due now."""
    return [
        Delivery(
            incident_id=incident_id,
            kind=kind,
            title=message.title[:500],
            body=message.body,
            notify_type=message.notify_type,
            url=url,
            route=route_label(url)[:500],
            created_at=now,
            next_attempt_at=now,
        )
        for url in urls
    ]


@dataclass(frozen=True)
class RouteResult:
    """What a route said to a test send."""

    route: str
    ok: bool
    error: str


def routes_probe(urls: Iterable[str], message: Message, *, now: datetime) -> list[RouteResult]:
    """Send ``message`` to each route now, record each as a ``test`` delivery, and say how each went."""
    results: list[RouteResult] = []
    for row in deliveries_new(message, urls, kind="test", now=now):
        ok, error = send(row.url, message)
        row.attempts = 1
        row.state = DeliveryState.SENT if ok else DeliveryState.FAILED
        row.sent_at = now if ok else None
        row.last_error = error
        row.save()
        results.append(RouteResult(row.route, ok, error))
    return results


class Courier:
    """The outbox's sender: a daemon thread that sends due deliveries and retries failed ones with backoff."""

    def __init__(self, config: AlertsConfig, *, clock: Clock = utcnow) -> None:
        """Retry as ``config`` says; read the time from ``clock``."""
        self.config = config
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failures = 0

    def wake(self) -> None:
        """New deliveries are in the outbox: send them now (starts the thread on first use)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="usermetrics-alerts-courier", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (a send in progress finishes; what is left waits in the outbox)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                close_old_connections()
                try:
                    self.run_due()
                    wait = self._next_wait()
                except Exception:
                    logger.exception("The alert outbox could not be read; trying again shortly")
                    wait = POLL_SECONDS
                self._wake.wait(wait)
        finally:
            connections.close_all()

    def _next_wait(self) -> float:
        due = Delivery.objects.filter(state=DeliveryState.PENDING).aggregate(at=Min("next_attempt_at"))["at"]
        if due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, (due - self.clock()).total_seconds()))

    def run_due(self) -> int:
        """Send every delivery due now (sync); how many went."""
        went = 0
        while not self._stop.is_set():
            now = self.clock()
            due = list(
                Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).order_by(
                    "next_attempt_at", "id"
                )[:BATCH]
            )
            if not due:
                return went
            for row in due:
                went += self._attempt(row, now)
        return went

    def _attempt(self, row: Delivery, now: datetime) -> int:
        # Claim this attempt: only one courier (an old leader's, a new one's) gets the update.
        claimed = Delivery.objects.filter(pk=row.pk, state=DeliveryState.PENDING, attempts=row.attempts).update(
            attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS)
        )
        if not claimed:
            return 0
        ok, error = send(row.url, Message(row.title, row.body, row.notify_type))
        done = self.clock()
        attempts = row.attempts + 1
        if ok:
            _record(row.pk, state=DeliveryState.SENT, sent_at=done, last_error="")
            self.sent += 1
            if attempts > 1:
                logger.info("Alert delivered to %s after %d attempts", row.route, attempts)
            return 1
        self.failures += 1
        if (done - row.created_at).total_seconds() >= self.config.give_up_after:
            _record(row.pk, state=DeliveryState.FAILED, last_error=error)
            logger.error("Alert to %s given up after %d attempts: %s", row.route, attempts, error)
            return 0
        backoff = min(self.config.retry_max, self.config.retry_min * 2 ** (attempts - 1))
        _record(row.pk, next_attempt_at=done + timedelta(seconds=backoff), last_error=error)
        logger.warning("Alert to %s failed (attempt %d, next in %.0f s): %s", row.route, attempts, backoff, error)
        return 0


def _record(pk: int, **fields: object) -> None:
    """Write an attempt's outcome, trying again while the database is locked (the send already happened)."""
    for attempt in range(RECORD_TRIES):
        try:
            Delivery.objects.filter(pk=pk).update(**fields)
            return
        except OperationalError:
            if attempt == RECORD_TRIES - 1:
                raise  # the claim expires and the delivery is tried again: sent twice rather than lost
            time.sleep(0.1 * (attempt + 1))

"""Data sources: things with a name that fetch a PerUserMonitorResponse (async).

A source may be slow, fail or hang; the service layer calls ``fetch()`` with a timeout and keeps
the last good answer, so a source only has to answer truthfully or raise. No Django here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import ValidationError

from usermetrics.metrics import PerUserMetricsCollector, PerUserMonitorResponse, SessionManagerLike

logger = logging.getLogger(__name__)


@runtime_checkable
class Source(Protocol):
    """A named producer of NAT-shaped per-user metrics."""

    name: str
    kind: str
    # Zone of the source's naive timestamps (NAT reports naive local time); None: the dashboard's.
    timezone: tzinfo | None
    # The source's per_user_workflow_timeout when known (to say when an idle user is evicted).
    per_user_workflow_timeout: timedelta | None

    async def fetch(self) -> PerUserMonitorResponse:
        """Return every user the source knows of now, or raise."""
        ...


class LocalSource:
    """The collector over an in-process session manager (ours, or NAT's own)."""

    kind = "local"

    def __init__(
        self,
        name: str,
        session_manager: SessionManagerLike,
        *,
        workload: object | None = None,
        timezone: tzinfo | None = None,
    ) -> None:
        """Collect from ``session_manager``; ``workload`` (a DemoWorkload) is run by ``start()``."""
        self.name = name
        self.session_manager = session_manager
        self.collector = PerUserMetricsCollector(session_manager)
        self.workload = workload
        self.timezone = timezone
        timeout = getattr(session_manager, "per_user_workflow_timeout", None)
        self.per_user_workflow_timeout: timedelta | None = timeout if isinstance(timeout, timedelta) else None
        self._workload_task: asyncio.Task[None] | None = None

    async def fetch(self) -> PerUserMonitorResponse:
        """Collect every user's metrics under the session manager's lock."""
        return await self.collector.collect_all_metrics()

    async def start(self) -> None:
        """Start the session manager's cleanup and the workload, if any, on the running loop."""
        start = getattr(self.session_manager, "start", None)
        if callable(start):
            start()
        run = getattr(self.workload, "run", None)
        if callable(run) and (self._workload_task is None or self._workload_task.done()):
            self._workload_task = asyncio.get_running_loop().create_task(run(), name=f"workload-{self.name}")

    async def aclose(self) -> None:
        """Stop the workload and close the session manager."""
        if self._workload_task is not None:
            self._workload_task.cancel()
            await asyncio.gather(self._workload_task, return_exceptions=True)
            self._workload_task = None
        cancel = getattr(self.workload, "cancel", None)
        if callable(cancel):
            await cancel()
        aclose = getattr(self.session_manager, "aclose", None)
        if callable(aclose):
            await aclose()


# --- NAT servers over HTTP ----------------------------------------------------------------------

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MONITOR_PATH = "/monitor/users"


class SourceError(Exception):
    """A source answered, but not with per-user metrics we can use."""

    # True when retrying soon will not help (the service then calls the source down at once).
    down_at_once = False


class MonitoringDisabled(SourceError):
    """The NAT server has no ``/monitor/users``: per-user monitoring is switched off there."""

    down_at_once = True


class ResponseTooLarge(SourceError):
    """The response is larger than the source's cap."""


class NatHttpSource:
    """One NAT server's ``GET <base>/monitor/users``, polled with an async HTTP client."""

    kind = "nat"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        timezone: tzinfo | None = None,
        per_user_workflow_timeout: timedelta | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Poll the NAT server at base ``url``; ``headers`` go with every request (e.g. a proxy's bearer token).

        ``timezone`` is the zone of the server's naive timestamps (None: this host's);
        ``transport`` replaces the network in tests.
        """
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Source {name!r}: URL must start with http:// or https://, got {url!r}")
        self.name = name
        self.url = url.rstrip("/")
        self.endpoint = self.url + MONITOR_PATH
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.timezone = timezone
        self.per_user_workflow_timeout = per_user_workflow_timeout
        self.max_response_bytes = max_response_bytes
        self._transport = transport
        # One client per event loop: an httpx pool is bound to the loop that opened its connections.
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        """Name and URL; never the headers, which may hold a token."""
        return f"NatHttpSource({self.name!r}, {self.url!r})"

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(
                headers={"Accept": "application/json", **self.headers},
                timeout=httpx.Timeout(self.timeout),
                transport=self._transport,
                follow_redirects=False,
            )
            self._client_loop = loop
        return self._client

    async def fetch(self) -> PerUserMonitorResponse:
        """Fetch and validate every user of the server; raise on any failure."""
        client = self._get_client()
        async with client.stream("GET", self.endpoint) as response:
            if response.status_code == 404:
                raise MonitoringDisabled(
                    "per-user monitoring is switched off on that server "
                    f"(GET {MONITOR_PATH} answered 404; set general.enable_per_user_monitoring: true)"
                )
            if response.status_code != 200:
                raise SourceError(f"GET {MONITOR_PATH} answered HTTP {response.status_code}")
            body = await self._read_capped(response)
        try:
            # Unknown fields and blocks (an ``llm_usage`` some docs mention) are ignored by the models.
            return PerUserMonitorResponse.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise SourceError(
                f"not a PerUserMonitorResponse: {exc.error_count()} error(s), first at {where}: {first['msg']}"
            ) from None

    async def _read_capped(self, response: httpx.Response) -> bytes:
        cap = self.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ResponseTooLarge(f"response of {int(declared)} bytes is over the cap of {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                # Stop reading here: a runaway or hostile server must not fill our memory.
                raise ResponseTooLarge(f"response is over the cap of {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the HTTP client when it belongs to the running loop (else just forget it)."""
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()
        self._client_loop = None

    @classmethod
    def from_entry(cls, entry: SourceEntry, *, default_timeout: float) -> NatHttpSource:
        """The source one validated configuration entry describes."""
        zone = ZoneInfo(entry.timezone) if entry.timezone else None
        evict = entry.per_user_workflow_timeout
        return cls(
            entry.name,
            entry.url,
            timeout=entry.timeout or default_timeout,
            headers=entry.headers,
            timezone=zone,
            per_user_workflow_timeout=timedelta(seconds=evict) if evict is not None else None,
            max_response_bytes=entry.max_response_bytes,
        )


SOURCE_KEYS = frozenset(
    {"NAME", "URL", "TIMEOUT", "HEADERS", "TIMEZONE", "PER_USER_WORKFLOW_TIMEOUT", "MAX_RESPONSE_BYTES"}
)


@dataclass(frozen=True)
class SourceEntry:
    """One NAT server of the configuration, validated and cast (``USERMETRICS["SOURCES"]`` or ``NAT_SOURCES``)."""

    name: str
    url: str
    timeout: float | None = None  # None: the configured SOURCE_TIMEOUT
    headers: Mapping[str, str] = field(default_factory=dict)
    timezone: str | None = None  # IANA zone of the server's naive timestamps; None: this host's
    per_user_workflow_timeout: float | None = None  # seconds, when known
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __repr__(self) -> str:
        """Name and URL; never the headers, which may hold a token."""
        return f"SourceEntry({self.name!r}, {self.url!r})"


def source_entry_parse(entry: Mapping[str, Any]) -> SourceEntry:
    """Validate and cast one ``SOURCES`` entry; ValueError says what is wrong with it."""
    unknown = set(entry) - SOURCE_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in source {entry.get('NAME')!r}")
    name, url = entry.get("NAME"), entry.get("URL")
    if not name or not url:
        raise ValueError(f"every source needs NAME and URL, got {sorted(entry)}")
    name, url = str(name), str(url)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"source {name!r}: URL must start with http:// or https://, got {url!r}")
    zone_name = entry.get("TIMEZONE") or None
    if zone_name is not None:
        try:
            ZoneInfo(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"source {name!r}: unknown TIMEZONE {zone_name!r}") from None
    headers = entry.get("HEADERS") or {}
    if not isinstance(headers, Mapping):
        raise ValueError(f"source {name!r}: HEADERS must be a dict of header name to value")
    evict = entry.get("PER_USER_WORKFLOW_TIMEOUT")
    try:
        return SourceEntry(
            name=name,
            url=url,
            timeout=float(entry["TIMEOUT"]) if entry.get("TIMEOUT") else None,
            headers={str(k): str(v) for k, v in headers.items()},
            timezone=str(zone_name) if zone_name is not None else None,
            per_user_workflow_timeout=float(evict) if evict is not None else None,
            max_response_bytes=int(entry.get("MAX_RESPONSE_BYTES") or DEFAULT_MAX_RESPONSE_BYTES),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"source {name!r}: {exc}") from None


def nat_sources_build(entries: Iterable[SourceEntry], *, default_timeout: float) -> list[NatHttpSource]:
    """One ``NatHttpSource`` per configured entry, in order."""
    return [NatHttpSource.from_entry(entry, default_timeout=default_timeout) for entry in entries]


def parse_nat_sources(value: str) -> list[dict[str, str]]:
    """``NAT_SOURCES``: ``"name=http://host:port,name2=http://host2:port"`` as ``SOURCES`` entries.

    A bare URL is named by its host:port.
    """
    entries: list[dict[str, str]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or "://" in name:
            url = item
            name = httpx.URL(item).netloc.decode() or item
        entries.append({"NAME": name.strip(), "URL": url.strip()})
    return entries

"""NAT servers as sources (async fetch, sync parsing, no Django): ``GET <base>/monitor/users`` and its settings.

``NatHttpSource`` polls one server with an async HTTP client (a timeout, extra headers, a streamed
size cap) and hands each body, chunk by chunk, to its ``nat_body.NatBody``, which converts NAT's
naive local timestamps to UTC and validates only the users that changed since the last body. ``SourceEntry``
is one configured server, from ``USERMETRICS["SOURCES"]`` or the ``NAT_SOURCES`` string.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from usermetrics.metrics import PerUserMonitorResponse
from usermetrics.nat_body import NatBody, SourceError
from usermetrics.nat_stream import NatStreamSource, stream_key, without_credentials

__all__ = ["MonitoringDisabled", "NatBody", "NatHttpSource", "ResponseTooLarge", "SourceEntry", "SourceError"]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MONITOR_PATH = "/monitor/users"


class MonitoringDisabled(SourceError):
    """The NAT server has no ``/monitor/users``: per-user monitoring is switched off there."""

    down_at_once = True


class ResponseTooLarge(SourceError):
    """The response is larger than the source's cap."""


class NatHttpSource:
    """One NAT server's ``GET <base>/monitor/users``, polled with an async HTTP client."""

    kind = "nat"
    times_utc = True  # its parser makes every time aware UTC as it reads it (the monitor need not)

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
        self.parser = NatBody(timezone)
        self.last_body_bytes: int | None = None  # the size of the last body read (the sources page shows it)
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
            cap = self.max_response_bytes
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise ResponseTooLarge(f"response of {int(declared)} bytes is over the cap of {cap} bytes")
            # Read as it streams in: the body is cut by users on the way, never held whole.
            reader = self.parser.reader()
            async for chunk in response.aiter_bytes():
                if reader.size + len(chunk) > cap:
                    # Stop reading here: a runaway or hostile server must not fill our memory.
                    raise ResponseTooLarge(f"response is over the cap of {cap} bytes")
                reader.feed(chunk)
        self.last_body_bytes = reader.size  # the sources page shows it (MonitorService copies it to the health)
        return reader.finish()

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
    {
        "NAME",
        "URL",
        "TIMEOUT",
        "HEADERS",
        "TIMEZONE",
        "PER_USER_WORKFLOW_TIMEOUT",
        "MAX_RESPONSE_BYTES",
        "STREAM",
        "DEPLOYMENT",
    }
)
STREAM_SCHEMES = ("redis://", "rediss://", "unix://")  # a source at such a URL is a companion stream


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
    stream: str | None = None  # a companion stream's key (None: usermetrics:nat:<deployment>)
    deployment: str | None = None  # the NAT deployment a companion stream reports (None: the source's name)

    @property
    def is_stream(self) -> bool:
        """Whether the source is a NAT deployment's companion stream in Redis (else a NAT server over HTTP)."""
        return self.url.startswith(STREAM_SCHEMES)

    @property
    def deployment_name(self) -> str:
        """A companion stream's deployment (``DEPLOYMENT``, else the name): the only one read, and commanded."""
        return self.deployment or self.name

    @property
    def stream_key(self) -> str:
        """A companion stream's Redis key (its commands go to ``<key>:commands``)."""
        return stream_key(self.name, stream=self.stream, deployment=self.deployment)

    def __repr__(self) -> str:
        """Name and URL without its credentials; never the headers, which may hold a token."""
        return f"SourceEntry({self.name!r}, {without_credentials(self.url)!r})"


def source_entry_parse(entry: Mapping[str, Any]) -> SourceEntry:
    """Validate and cast one ``SOURCES`` entry; ValueError says what is wrong with it."""
    unknown = set(entry) - SOURCE_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in source {entry.get('NAME')!r}")
    name, url = entry.get("NAME"), entry.get("URL")
    if not name or not url:
        raise ValueError(f"every source needs NAME and URL, got {sorted(entry)}")
    name, url = str(name), str(url)
    if not url.startswith(("http://", "https://", *STREAM_SCHEMES)):
        raise ValueError(
            f"source {name!r}: URL must start with http:// or https:// (a NAT server) or redis://, rediss://"
            f" or unix:// (a NAT deployment's companion stream), got {httpx.URL(url).scheme or url!r}"
        )
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
            stream=str(entry["STREAM"]) if entry.get("STREAM") else None,
            deployment=str(entry["DEPLOYMENT"]) if entry.get("DEPLOYMENT") else None,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"source {name!r}: {exc}") from None


def nat_sources_build(
    entries: Iterable[SourceEntry], *, default_timeout: float, interval: float = 2.0
) -> list[NatHttpSource | NatStreamSource]:
    """One source per configured entry, in order: a NAT server over HTTP, or a deployment's companion stream."""
    sources: list[NatHttpSource | NatStreamSource] = []
    for entry in entries:
        if entry.is_stream:
            evict = entry.per_user_workflow_timeout
            sources.append(
                NatStreamSource(
                    entry.name,
                    entry.url,
                    stream=entry.stream,
                    deployment=entry.deployment,
                    timeout=entry.timeout or default_timeout,
                    interval=interval,
                    per_user_workflow_timeout=timedelta(seconds=evict) if evict is not None else None,
                    max_report_bytes=entry.max_response_bytes,
                )
            )
        else:
            sources.append(NatHttpSource.from_entry(entry, default_timeout=default_timeout))
    return sources


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

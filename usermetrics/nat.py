"""NAT servers as sources (async fetch, sync parsing, no Django): ``GET <base>/monitor/users`` and its settings.

``NatHttpSource`` polls one server with an async HTTP client (a timeout, extra headers, a streamed
size cap) and parses each body once, converting NAT's naive local timestamps to UTC as it reads
them and validating only the users that changed since the last body (``NatBody``). ``SourceEntry``
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
from pydantic import ValidationError
from pydantic_core import from_json

from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.snapshot import to_utc

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


class NatBody:
    """Reads successive ``/monitor/users`` bodies of one server, validating only the users that changed.

    A user whose fields read the same as in the previous body gets the very record object it got
    then (already converted to UTC), so the board packs it without serializing it again. Each
    changed user is validated on its own as ``PerUserResourceUsage``; unknown fields and blocks
    (an ``llm_usage`` some versions' docs mention) are ignored, as by the models.
    """

    def __init__(self, zone: tzinfo | None) -> None:
        """Read naive timestamps in ``zone`` (None: this host's)."""
        self.zone = zone
        # user id (or (user id, n) for its n-th extra record) -> (what was read, the record made of it)
        self._previous: dict[str | tuple[str, int], tuple[tuple[Any, ...], PerUserResourceUsage]] = {}
        self.reused = 0
        self.validated = 0

    def read(self, body: bytes) -> PerUserMonitorResponse:
        """Parse ``body``; SourceError says where it is not a PerUserMonitorResponse."""
        try:
            doc = from_json(body)
        except ValueError as exc:
            raise SourceError(f"not a PerUserMonitorResponse: the body is not JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("users", []), list):
            raise SourceError("not a PerUserMonitorResponse: 1 error(s), first at body: Input should be an object")
        raw_users = doc.pop("users", [])
        head = _validated(PerUserMonitorResponse, {**doc, "users": []}, where="")
        del doc
        previous, current = self._previous, {}
        users: list[PerUserResourceUsage] = []
        for index in range(len(raw_users)):
            # Each raw user is dropped as soon as it is read: a 100,000-user body is not held twice.
            raw, raw_users[index] = raw_users[index], None
            key_id = raw.get("user_id") if isinstance(raw, dict) else None
            mark = _marks(raw)
            key: str | tuple[str, int] = ""
            if isinstance(key_id, str) and mark is not None:
                key = key_id
                duplicate = 0
                while key in current:  # a second record of the same user (NAT with an extra endpoint)
                    duplicate += 1
                    key = (key_id, duplicate)
                hit = previous.get(key)
                if hit is not None and hit[0] == mark:
                    self.reused += 1
                    users.append(hit[1])
                    current[key] = hit
                    continue
            usage = _validated(PerUserResourceUsage, raw, where=f"users.{index}")
            [usage] = to_utc([usage], self.zone)
            self.validated += 1
            users.append(usage)
            if isinstance(key_id, str) and mark is not None:
                current[key] = (mark, usage)
        self._previous = current
        return PerUserMonitorResponse.model_construct(
            timestamp=head.timestamp, total_active_users=head.total_active_users, users=users
        )


def _marks(raw: Any) -> tuple[Any, ...] | None:
    """Every value the model reads from a raw user, as a comparable tuple (None: not shaped like one).

    Written out field by field: it runs for every user of every body. A missing field reads as
    None, which no valid user has, so "missing" and "present" never compare equal.
    """
    if type(raw) is not dict:
        return None
    s, r, m = raw.get("session"), raw.get("requests", {}), raw.get("memory", {})
    if type(s) is not dict or type(r) is not dict or type(m) is not dict:
        return None
    g, h, k = s.get, r.get, m.get
    return (
        raw.get("user_id"),
        g("created_at"),
        g("last_activity"),
        g("ref_count"),
        g("is_active"),
        h("total_requests"),
        h("active_requests"),
        h("avg_latency_ms"),
        h("error_count"),
        k("per_user_functions_count"),
        k("per_user_function_groups_count"),
        k("exit_stack_size"),
    )


def _validated(model: type[Any], data: Any, *, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        parts = [*(where.split(".") if where else []), *(str(part) for part in first["loc"])]
        loc = ".".join(parts) or "body"
        raise SourceError(
            f"not a PerUserMonitorResponse: {exc.error_count()} error(s), first at {loc}: {first['msg']}"
        ) from None


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
        self.parser = NatBody(timezone)
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
        return self.parser.read(body)

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

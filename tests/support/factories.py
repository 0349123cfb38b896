"""Test data (sync helpers): user records, snapshots and boards, sources that answer what they hold, NAT documents."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from usermetrics_nat.histogram import BUCKETS, bucket_of

from tests.support.machine import ROOT
from usermetrics.clock import utcnow
from usermetrics.extras import Extras
from usermetrics.merging import merge
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.packing import BoardCache, board_build
from usermetrics.selection import FLAG_STATES
from usermetrics.snapshot import Snapshot, SourceHealth

# The one source of the version: the project's metadata, written from pyproject.toml.
PYPROJECT_VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# User ids that test every way an id can be awkward in a URL, a page or a frame.
ODD_IDS = [
    "alice",
    "a/b/c",
    "/leading-and-trailing/",
    "with space",
    "100% sure",
    "%2F-literal",
    "naïve-ユーザー-пользователь",
    "quote'\"double",
    "<img src=x onerror=alert(1)>",
    "tilde~7E~2F~",
    "..",
    ".hidden",
    "question?hash#amp&eq=",
    "back\\slash",
    "plus+sign",
    "line\nbreak",
    "x" * 1000,
]

# A fixed "now" for records, so that tests do not depend on the wall clock.
BASE_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def usage(user_id: str, *, requests: int = 1, errors: int = 0, active: int = 0, minutes_ago: float = 1.0):
    """A validated user record."""
    last = BASE_TIME - timedelta(minutes=minutes_ago)
    return PerUserResourceUsage.model_validate(
        {
            "user_id": user_id,
            "session": {"created_at": last, "last_activity": last, "ref_count": active, "is_active": active > 0},
            "requests": {
                "total_requests": requests,
                "active_requests": active,
                "avg_latency_ms": 12.5,
                "error_count": errors,
            },
            "memory": {"per_user_functions_count": 2, "per_user_function_groups_count": 1, "exit_stack_size": 3},
        }
    )


class StaticSource:
    """A source that answers with whatever list ``users`` holds now, or raises ``error`` when set."""

    kind = "test"
    timezone = None
    per_user_workflow_timeout = None

    def __init__(self, name: str, users: list[PerUserResourceUsage]) -> None:
        self.name = name
        self.users = users
        self.error: Exception | None = None

    async def fetch(self) -> PerUserMonitorResponse:
        if self.error is not None:
            raise self.error
        return PerUserMonitorResponse(total_active_users=len(self.users), users=list(self.users))


def sample_users() -> list[PerUserResourceUsage]:
    """Twelve users: u00..u11; every third is active, every fourth has errors."""
    return [
        usage(
            f"u{i:02d}",
            requests=i * 10,
            errors=(i if i % 4 == 0 else 0),
            active=(1 if i % 3 == 0 else 0),
            minutes_ago=i,
        )
        for i in range(12)
    ]


def record(user_id: str, **sections: dict[str, object]) -> PerUserResourceUsage:
    """A user record with sensible values at ``BASE_TIME``, overridable per section (``session={...}``)."""
    doc: dict[str, dict[str, object] | str] = {
        "user_id": user_id,
        "session": {"created_at": BASE_TIME, "last_activity": BASE_TIME, "ref_count": 0, "is_active": False},
        "requests": {"total_requests": 1, "active_requests": 0, "avg_latency_ms": 10.0, "error_count": 0},
        "memory": {"per_user_functions_count": 1, "per_user_function_groups_count": 0, "exit_stack_size": 1},
    }
    for section, values in sections.items():
        doc[section] = {**doc[section], **values}  # type: ignore[dict-item]
    return PerUserResourceUsage.model_validate(doc)


class ScriptedSource:
    """A source whose answers the test scripts, one per fetch (the last repeats): a list, an exception, or 'hang'."""

    kind = "test"
    timezone = None
    per_user_workflow_timeout = None

    def __init__(self, name: str, *answers: object) -> None:
        self.name = name
        self.answers = list(answers)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> PerUserMonitorResponse:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == "hang":
            await asyncio.sleep(3600)
        if isinstance(answer, Exception):
            raise answer
        return PerUserMonitorResponse(total_active_users=len(answer), users=answer)


class ManualClock:
    """A clock for the monitor that moves only when the test says so."""

    def __init__(self, start: datetime = BASE_TIME) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def board_of(
    users: list[PerUserResourceUsage],
    *,
    seq: int = 1,
    timeout: float | None = None,
    flags=None,
    extras: Mapping[str, Extras] | None = None,
):
    """A board of ``users`` from one healthy source ``s`` (``timeout``: its per-user workflow timeout).

    ``extras``: what NAT companions say of some of them (``extras.Extras`` by user id).
    """
    health = SourceHealth(name="s", kind="t", state="ok", per_user_workflow_timeout=timeout)
    snapshot = merge([("s", users)], seq=seq, timestamp=BASE_TIME, sources=[health], extras=extras)
    return board_build(
        snapshot, producer="p", published_at=utcnow(), cache=BoardCache(), flags=flags, flag_names=FLAG_STATES
    )


def health(name: str, *, state: str = "ok", timeout: float | None = None) -> SourceHealth:
    """A source's health (``timeout``: its per-user workflow timeout, in seconds)."""
    return SourceHealth(name=name, kind="test", state=state, per_user_workflow_timeout=timeout)


def merged(*reports: tuple[str, list[PerUserResourceUsage]], timeouts: dict[str, float] | None = None) -> Snapshot:
    """The snapshot of ``reports`` (source name, its users) at ``BASE_TIME``, every source healthy."""
    sources = [health(name, timeout=(timeouts or {}).get(name)) for name, _ in reports]
    return merge(reports, seq=1, timestamp=BASE_TIME, sources=sources)


# The user ids a real NAT 1.9.0 server reported for these credentials (nat serve, /monitor/users).
NAT_REPORTED = [
    ("cookie", "cookie-alice", "3ca87aca-b34e-511f-b582-23b4c4e4f20b"),  # Cookie: nat-session=cookie-alice
    ("api_key", "key-bob", "63a4c193-de10-5201-9958-5c32567ba1eb"),  # X-API-Key: key-bob
    ("jwt_sub", "carol", "a51a12c2-3691-5d0a-9cdf-69f27626d170"),  # Bearer JWT with "sub": "carol"
    ("basic", "dave:pw", "d524c096-fff7-5696-a399-2a07510f11cd"),  # Basic dave:pw
]


# One user of a /monitor/users body as NAT 1.9.0 writes it (naive local times), for the NAT readers' tests.
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


# Every path the JSON API's OpenAPI schema documents.
API_PATHS = {
    "/monitor/users",
    "/api/users/{user_id}",
    "/api/status",
    "/api/sources",
    "/api/users/{user_id}/history",
    "/api/users/{user_id}/history.csv",
    "/api/users/{user_id}/history.json",
    "/api/overview/history",
    "/api/sparklines",
    "/api/list/window",
    "/api/export/users.csv",
    "/api/export/users.json",
    "/api/users/{user_id}/actions/evict",
    "/api/users/{user_id}/actions/hold",
    "/api/users/{user_id}/actions/release",
}


def extras_of(latencies_ms: list[float] = (), **queue: object) -> Extras:
    """A user's companion extras: its requests' latencies counted into the histogram, and ``queue``'s fields."""
    counts = [0] * BUCKETS
    for ms in latencies_ms:
        counts[bucket_of(ms)] += 1
    return Extras(latency=tuple(counts), **queue)


class CompanionSource(StaticSource):
    """A ``StaticSource`` that also says what a companion stream says: extras per user, its workers, skips."""

    kind = "nat-stream"

    def __init__(
        self,
        name: str,
        users: list[PerUserResourceUsage],
        extras: Mapping[str, Extras],
        workers: list[dict[str, object]] | None = None,
        skipped: dict[str, int] | None = None,
    ) -> None:
        super().__init__(name, users)
        self.extras_now = dict(extras)
        self.workers = workers or []
        self.skipped = skipped or {}

    def extras(self) -> Mapping[str, Extras]:
        """Each user's extras as of the last fetch."""
        return self.extras_now

    def workers_summary(self) -> list[dict[str, object]]:
        """The workers, as ``Workers.summary`` lists them."""
        return self.workers

    def skipped_by_kind(self) -> dict[str, int]:
        """Entries skipped, by kind."""
        return self.skipped

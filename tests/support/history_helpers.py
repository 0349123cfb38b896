"""Helpers for history tests (sync): hand-made users and snapshots with explicit timestamps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from usermetrics_nat.histogram import BUCKETS, bucket_of

from usermetrics.conf import HistoryConfig
from usermetrics.extras import Extras
from usermetrics.history.recorder import Recorder
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.snapshot import Snapshot, SourceHealth

T0 = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
CREATED = T0 - timedelta(hours=1)
MIN = timedelta(minutes=1)

CONFIG = HistoryConfig(
    enabled=True,
    sample_interval=0.0,
    raw_retention_days=7.0,
    rollup_retention_days=90.0,
    maintenance_interval=10.0**9,
    batch_size=500,
)


def usage(
    user_id: str,
    *,
    total: int = 0,
    errors: int = 0,
    avg: float = 0.0,
    ref: int = 0,
    stack: int = 0,
    functions: int = 1,
    created: datetime = CREATED,
    last: datetime | None = None,
) -> PerUserResourceUsage:
    """One user's record with the given counters."""
    return PerUserResourceUsage.model_validate(
        {
            "user_id": user_id,
            "session": {
                "created_at": created,
                "last_activity": last or created,
                "ref_count": ref,
                "is_active": ref > 0,
            },
            "requests": {"total_requests": total, "active_requests": ref, "avg_latency_ms": avg, "error_count": errors},
            "memory": {
                "per_user_functions_count": functions,
                "per_user_function_groups_count": 0,
                "exit_stack_size": stack,
            },
        }
    )


def snapshot(
    ts: datetime,
    users: list[PerUserResourceUsage],
    *,
    seq: int = 1,
    source: str = "demo",
    extras: Mapping[str, Extras] | None = None,
) -> Snapshot:
    """A snapshot of ``users`` at ``ts`` from one healthy source (``extras``: what companions say of them)."""
    health = SourceHealth(name=source, kind="local", state="ok", last_success=ts, users=len(users))
    return Snapshot(
        timestamp=ts,
        seq=seq,
        users=users,
        by_id={u.user_id: u for u in users},
        origins={u.user_id: (source,) for u in users},
        parts={},
        sources=[health],
        extras=extras or {},
    )


def recorder(**overrides: float) -> Recorder:
    """A recorder with test settings (``sample_interval=60.0`` ...): every change written, no automatic maintenance."""
    values = {**vars(CONFIG), **overrides}
    return Recorder(HistoryConfig(**values))


class FixedSource:
    """A source that reports the users it is given (change ``users`` between refreshes)."""

    kind = "fixed"
    timezone = None

    def __init__(self, name: str, users: list[PerUserResourceUsage], *, timeout: timedelta | None = None) -> None:
        """Report ``users``; ``timeout`` is the per-user workflow timeout it claims."""
        self.name = name
        self.users = users
        self.per_user_workflow_timeout = timeout

    async def fetch(self) -> PerUserMonitorResponse:
        """The users as they are now."""
        return PerUserMonitorResponse(total_active_users=len(self.users), users=self.users)


def histogram(*latencies_ms: float) -> tuple[int, ...]:
    """A cumulative latency histogram counting ``latencies_ms`` (``usermetrics_nat.histogram`` buckets)."""
    counts = [0] * BUCKETS
    for ms in latencies_ms:
        counts[bucket_of(ms)] += 1
    return tuple(counts)

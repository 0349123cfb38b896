"""Seed layer (sync models, async collector, no Django, no NAT): NAT's per-user monitoring models and collector.

Names, fields, types, constraints, defaults and descriptions are those of ``nat.runtime.metrics``
so that documents round-trip between NAT and usermetrics. The one copy: the dashboard imports it
as ``usermetrics.metrics``; the companion runs it inside each NAT worker.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)


class PerUserSessionMetrics(BaseModel):
    """Session lifecycle metrics for a per-user workflow."""

    created_at: datetime = Field(description="When the per-user workflow was created")
    last_activity: datetime = Field(description="Last time the workflow was accessed")
    ref_count: int = Field(ge=0, description="Current number of active references (in-flight requests)")
    is_active: bool = Field(description="Whether the workflow is currently being used")


class PerUserRequestMetrics(BaseModel):
    """Request-level metrics for a per-user workflow."""

    total_requests: int = Field(ge=0, default=0, description="Total number of requests processed")
    active_requests: int = Field(ge=0, default=0, description="Number of currently active requests")
    avg_latency_ms: float = Field(ge=0, default=0.0, description="Average request latency in milliseconds")
    error_count: int = Field(ge=0, default=0, description="Total number of failed requests")


class PerUserMemoryMetrics(BaseModel):
    """Memory/resource count metrics for a per-user workflow."""

    per_user_functions_count: int = Field(ge=0, default=0, description="Number of per-user functions built")
    per_user_function_groups_count: int = Field(ge=0, default=0, description="Number of per-user function groups built")
    exit_stack_size: int = Field(ge=0, default=0, description="Number of resources in the async exit stack")


class PerUserResourceUsage(BaseModel):
    """Combined resource usage metrics for a single per-user workflow."""

    user_id: str = Field(description="The user identifier")
    session: PerUserSessionMetrics = Field(description="Session lifecycle metrics")
    requests: PerUserRequestMetrics = Field(description="Request-level metrics")
    memory: PerUserMemoryMetrics = Field(description="Memory/resource count metrics")


class PerUserMonitorResponse(BaseModel):
    """Response model for the /monitor/users endpoint."""

    timestamp: datetime = Field(default_factory=datetime.now, description="When the metrics were collected")
    total_active_users: int = Field(ge=0, description="Number of users with active per-user workflows")
    users: list[PerUserResourceUsage] = Field(default_factory=list, description="Per-user resource usage details")


class SessionManagerLike(Protocol):
    """What the collector reads from a session manager: NAT's private per-user contract."""

    _per_user_builders: dict[str, Any]
    _per_user_builders_lock: Any  # an asyncio.Lock, or anything usable with ``async with``


class PerUserMetricsCollector:
    """Collector for per-user workflow metrics.

    Reads a session manager's per-user builders under its global lock, exactly as
    NAT's collector does; works by duck typing on NAT's ``SessionManager`` and on
    ``usermetrics.runtime.SessionManager``.
    """

    def __init__(self, session_manager: SessionManagerLike) -> None:
        """Keep a reference to the session manager to collect from."""
        self._session_manager = session_manager
        # user_id -> (fingerprint of the builder info, metrics built from it). Most users do not
        # change between two refreshes, and building validated models is the expensive part.
        self._cache: dict[str, tuple[tuple[Any, ...], PerUserResourceUsage]] = {}

    async def collect_user_metrics(self, user_id: str) -> PerUserResourceUsage | None:
        """Collect metrics for one user; ``None`` when the user has no per-user workflow."""
        async with self._session_manager._per_user_builders_lock:
            builder_info = self._session_manager._per_user_builders.get(user_id)
            if builder_info is None:
                return None
            return self._build_user_metrics(user_id, builder_info)

    async def collect_all_metrics(self) -> PerUserMonitorResponse:
        """Collect metrics for every per-user workflow; a user that fails is logged and skipped."""
        users: list[PerUserResourceUsage] = []
        # Reuse only while _build_user_metrics is ours: an override may read other fields.
        reuse = type(self)._build_user_metrics is PerUserMetricsCollector._build_user_metrics and (
            "_build_user_metrics" not in vars(self)
        )
        previous, cache = self._cache, {}
        async with self._session_manager._per_user_builders_lock:
            for user_id, builder_info in self._session_manager._per_user_builders.items():
                key = _fingerprint(builder_info) if reuse else None
                hit = previous.get(user_id) if key is not None else None
                if hit is not None and hit[0] == key:
                    cache[user_id] = hit
                    users.append(hit[1])
                    continue
                try:
                    usage = self._build_user_metrics(user_id, builder_info)
                except Exception:
                    logger.exception("Failed to collect metrics for user %s", user_id)
                    continue
                users.append(usage)
                if key is not None:
                    cache[user_id] = (key, usage)
        self._cache = cache
        return PerUserMonitorResponse(timestamp=datetime.now(), total_active_users=len(users), users=users)

    def _build_user_metrics(self, user_id: str, builder_info: Any) -> PerUserResourceUsage:
        """Build one user's metrics from its builder info (NAT's ``PerUserBuilderInfo`` shape)."""
        total_requests = builder_info.total_requests
        ref_count = builder_info.ref_count
        avg_latency = builder_info.total_latency_ms / total_requests if total_requests > 0 else 0.0
        builder = builder_info.builder
        exit_stack = getattr(builder, "_exit_stack", None)
        # NAT counts the callbacks of the builder's AsyncExitStack when it can see them, else 0.
        if exit_stack and hasattr(exit_stack, "_exit_callbacks"):
            exit_stack_size = len(exit_stack._exit_callbacks)
        else:
            exit_stack_size = 0
        # One validation call over the nested document: the same checks as building the four
        # models one by one (ge=0 and types), at a fraction of the cost for large user counts.
        return PerUserResourceUsage.model_validate(
            {
                "user_id": user_id,
                "session": {
                    "created_at": builder_info.created_at,
                    "last_activity": builder_info.last_activity,
                    "ref_count": ref_count,
                    "is_active": ref_count > 0,
                },
                "requests": {
                    "total_requests": total_requests,
                    "active_requests": ref_count,
                    "avg_latency_ms": round(avg_latency, 2),
                    "error_count": builder_info.error_count,
                },
                "memory": {
                    "per_user_functions_count": len(builder._per_user_functions),
                    "per_user_function_groups_count": len(builder._per_user_function_groups),
                    "exit_stack_size": exit_stack_size,
                },
            }
        )


def _fingerprint(builder_info: Any) -> tuple[Any, ...] | None:
    """Everything ``_build_user_metrics`` reads, as a comparable tuple; None when it cannot be read."""
    try:
        builder = builder_info.builder
        exit_stack = getattr(builder, "_exit_stack", None)
        callbacks = getattr(exit_stack, "_exit_callbacks", None) if exit_stack else None
        return (
            builder,
            builder_info.created_at,
            builder_info.last_activity,
            builder_info.ref_count,
            builder_info.total_requests,
            builder_info.error_count,
            builder_info.total_latency_ms,
            len(builder._per_user_functions),
            len(builder._per_user_function_groups),
            -1 if callbacks is None else len(callbacks),
        )
    except Exception:
        return None  # let _build_user_metrics raise and log it

"""Seed layer (sync models, async collector, no Django): NAT's per-user monitoring models and collector.

One copy, shared with the NAT companion that runs it inside NAT's workers: the code lives in
``usermetrics_nat.metrics`` (``companion/``, installable on its own into NAT's environment); this
module is its name in the dashboard. Names, fields, types, constraints, defaults and
descriptions are those of ``nat.runtime.metrics``.
"""

from __future__ import annotations

from usermetrics_nat.metrics import (
    PerUserMemoryMetrics,
    PerUserMetricsCollector,
    PerUserMonitorResponse,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
    SessionManagerLike,
)

__all__ = [
    "PerUserMemoryMetrics",
    "PerUserMetricsCollector",
    "PerUserMonitorResponse",
    "PerUserRequestMetrics",
    "PerUserResourceUsage",
    "PerUserSessionMetrics",
    "SessionManagerLike",
]

"""One NAT worker's view of its users (sync, no Django): a share per user and endpoint, and the worker's last state.

``Workers`` (``usermetrics.workers``) keeps a ``Worker`` per reporting process and merges each
user's ``Share``s across workers. A share read from a report line is running; one whose worker
ended, or whose workflow there ended while the user runs elsewhere, is kept ``frozen``: its
counters as they were, nothing in flight or waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from usermetrics_nat.histogram import Counts, dense
from usermetrics_nat.report import Line, WorkerIdentity

from usermetrics.extras import Usage
from usermetrics.metrics import PerUserRequestMetrics, PerUserResourceUsage, PerUserSessionMetrics

Key = tuple[int, str]  # (endpoint, user_id) within one worker


@dataclass
class Share:
    """One worker's view of one user on one endpoint."""

    digest: int  # hash of its line as received: an unchanged line is not validated again
    usage: PerUserResourceUsage
    latency: Counts
    queued: int
    max_concurrency: int
    wait_ms: float
    run_ms: float
    llm: tuple[tuple[str, Usage], ...] = ()
    tool_calls: int = 0
    ended_with: str = ""  # frozen because its worker ended: that worker's key (it may report again)


@dataclass
class Worker:
    """The last state of one reporting worker process."""

    identity: WorkerIdentity
    seq: int = 0
    seen_at: float = 0.0  # when its last report was applied (the source's clock)
    interval: float = 2.0
    dropped: int = 0  # reports it could not send (Redis down), as it last said
    gaps: int = 0  # reports of it that never arrived here (numbering jumped)
    shares: dict[Key, Share] = field(default_factory=dict)


def share_of(raw: bytes, line: Line) -> Share:
    """The share a report line says (``raw``: the line as received)."""
    x = line.x
    return Share(
        digest=hash(raw),
        usage=line.u,
        latency=dense(x.latency),
        queued=x.queued,
        max_concurrency=x.max_concurrency,
        wait_ms=x.wait_ms,
        run_ms=x.run_ms,
        llm=tuple((u.m, (u.calls, u.prompt, u.completion, u.cached, u.reasoning, u.total)) for u in x.llm),
        tool_calls=x.tool_calls,
    )


def new_life(before: Share, after: Share) -> bool:
    """The worker's line of a user starts another life of its workflow there (rebuilt between two reports)."""
    b, a = before.usage, after.usage
    return (
        a.session.created_at != b.session.created_at
        or a.requests.total_requests < b.requests.total_requests
        or sum(after.latency) < sum(before.latency)
    )


def frozen(share: Share, ended_with: str = "") -> Share:
    """An ended share: its counters as they were, nothing in flight or waiting (``ended_with``: its worker ended)."""
    u = share.usage
    s, r = u.session, u.requests
    usage = PerUserResourceUsage.model_construct(
        user_id=u.user_id,
        session=PerUserSessionMetrics.model_construct(
            created_at=s.created_at, last_activity=s.last_activity, ref_count=0, is_active=False
        ),
        requests=PerUserRequestMetrics.model_construct(
            total_requests=r.total_requests,
            active_requests=0,
            avg_latency_ms=r.avg_latency_ms,
            error_count=r.error_count,
        ),
        memory=u.memory,
    )
    return Share(0, usage, share.latency, 0, 0, share.wait_ms, share.run_ms, share.llm, share.tool_calls, ended_with)

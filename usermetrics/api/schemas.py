"""The JSON API's documents as pydantic classes (no I/O): what the OpenAPI schema says each endpoint returns.

NAT's own classes (``usermetrics.metrics``) are used as they are for NAT's endpoints; these
describe the documents usermetrics adds (one user's, with what NAT companions add to it and its
cost, in ``user_schemas``; the history's windows, tokens and charts in ``history_schemas``). They
are the schema's source, never a second serializer: the views still write their bodies as before,
and a test (schemathesis) checks the bodies against these descriptions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# One user's document and what NAT companions add to it live in their own module; named here too.
from .user_schemas import CostDoc as CostDoc
from .user_schemas import LatencyDoc as LatencyDoc
from .user_schemas import LlmDoc as LlmDoc
from .user_schemas import QueueDoc as QueueDoc
from .user_schemas import UserDoc as UserDoc


class ErrorDetail(BaseModel):
    """Every error of the JSON API: ``detail`` says why (404s name the ``user_id``, 503s the producer)."""

    model_config = ConfigDict(extra="allow")

    detail: str
    user_id: str | None = None


class ProducerState(BaseModel):
    """Whether a producer publishes boards, and the last one's time and sequence number."""

    state: str = Field(description="ok, or why not: none yet / stopped publishing")
    last_publish: datetime | None
    seq: int
    producer: str | None
    words: str


class WorkerDoc(BaseModel):
    """One NAT worker of a companion stream, running or recently ended (``Workers.summary``)."""

    host: str
    pid: int
    started_at: datetime
    nat_version: str
    config: str = Field(description="the NAT config it serves (its workflow's name)")
    label: str = Field(description="what the pages call it: host:pid")
    state: Literal["ok", "ended"] = Field(description="ok: reporting (the pages say live); ended: stopped reporting")
    users: int
    reports: int = Field(description="reports applied (its last report's number)")
    interval: float = Field(description="its reporting interval, in seconds")
    dropped: int = Field(description="reports it could not send while Redis was away, as it last said")
    gaps: int = Field(description="reports of it that never arrived here")
    silent_s: float | None = Field(description="seconds from its last report to the last refresh")


class SourceHealthDoc(BaseModel):
    """One source's health, as of the last refresh."""

    name: str
    kind: str = Field(description="local (an in-process collector) or nat (a NAT server over HTTP)")
    state: Literal["ok", "stale", "down"]
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failing_since: datetime | None
    last_duration_ms: float | None = Field(description="how long the last fetch took")
    last_body_bytes: int | None = Field(None, description="size of the last answer's body (NAT sources)")
    users: int
    users_stale: bool
    url: str | None
    per_user_workflow_timeout: float | None
    workers: list[WorkerDoc] | None = Field(None, description="a companion stream's NAT workers; null for others")
    skipped: dict[str, int] | None = Field(None, description="a companion stream's entries skipped, by kind")


class StatusDoc(BaseModel):
    """``/api/status``: the sources, the producer, the last refresh and the settings that time them."""

    version: str
    refresh_interval: float
    source_timeout: float
    source_down_after: float
    last_refresh: datetime | None
    seq: int
    total_users: int
    producer: ProducerState
    sources: list[SourceHealthDoc]


class UserExportRow(BaseModel):
    """One user of ``/api/export/users.json`` (the CSV has the same columns)."""

    user_id: str
    state: Literal["active", "idle", "ended"]
    sources: str
    created_at: datetime
    last_activity: datetime
    ended_at: datetime | None
    in_flight: int
    total_requests: int
    error_count: int
    avg_latency_ms: float
    p50_ms: float | None = Field(description="NAT companion's latency percentiles; null without one")
    p95_ms: float | None
    p99_ms: float | None
    queued: int | None = Field(description="requests waiting on the user's semaphore now; null without a companion")
    functions: int
    function_groups: int
    exit_stack: int
    window: str
    requests_per_min: float | None
    error_rate: float | None
    window_latency_ms: float | None
    flags: str
    llm_calls: int | None = Field(description="LLM calls over the user's current life; null without a NAT companion")
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None = Field(description="prompt tokens read from a cache (part of prompt_tokens)")
    reasoning_tokens: int | None = Field(description="completion tokens spent reasoning (part of completion_tokens)")
    total_tokens: int | None
    tool_calls: int | None
    cost: float | None = Field(description="the priced models' cost; null when none of the user's models has a price")
    cost_currency: str | None
    cost_complete: bool | None = Field(description="every model with calls has a price; null without a companion")


class SampleExportRow(BaseModel):
    """One recorded sample of ``/api/users/{id}/history.json`` (the CSV has the same columns)."""

    ts: datetime
    life: int
    in_flight: int
    total_requests: int
    error_count: int
    avg_latency_ms: float
    functions: int
    function_groups: int
    exit_stack: int
    requests: int
    errors: int
    window_latency_ms: float | None


class SourcePoint(BaseModel):
    """One recorded health sample of a source (``t`` in epoch seconds)."""

    t: float
    state: Literal["ok", "stale", "down"]
    users: int
    duration_ms: float | None
    body_bytes: int | None
    error: str | None


class SourceHistoryDoc(BaseModel):
    """A source's samples over the window, and the share of the window it spent in each state."""

    points: list[SourcePoint]
    shares: dict[str, float]


class SourceDoc(SourceHealthDoc):
    """A source's health now, and over the window."""

    history: SourceHistoryDoc


class SourcesDoc(BaseModel):
    """``/api/sources``: every source being read, now and over the window."""

    window: str
    history_enabled: bool
    sources: list[SourceDoc]

"""The JSON API's history documents (no I/O): window stats, tokens and cost, chart series, sparklines, list windows.

Part of the OpenAPI schema's source, with ``schemas`` and ``user_schemas``; the views write the bodies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from usermetrics.metrics import PerUserResourceUsage


class WindowStatsDoc(BaseModel):
    """Traffic over a window, from the recorded changes; rates divide by ``seconds``, the span covered."""

    requests: int
    errors: int
    requests_per_min: float
    error_rate: float | None
    latency_ms: float | None = Field(
        description="mean of the window's requests: change of (avg x count) over change of count"
    )
    exit_stack_growth: int
    functions_growth: int
    p50_ms: float | None = Field(None, description="median of the window's requests (NAT companions' histograms)")
    p95_ms: float | None = Field(None, description="95th percentile, summed over the window's histogram changes")
    p99_ms: float | None = Field(None, description="99th percentile (None: no companion counted a request)")
    max_queued: int | None = Field(None, description="the most requests queued at any sample of the window")
    seconds: float = Field(description="the span the numbers cover: the window, or less when the history is younger")
    since: datetime | None = Field(description="where that span starts")


class FlagDoc(BaseModel):
    """A raised lifecycle flag."""

    name: str
    label: str
    detail: str


class LifeDoc(BaseModel):
    """One life of a user (a new workflow after an eviction or a counter reset)."""

    life: int
    created_at: datetime
    first_seen: datetime
    ended_at: datetime | None


class EndedDoc(BaseModel):
    """A user no source reports any more: when it left and its last known record."""

    ended_at: datetime
    label: str
    last: PerUserResourceUsage


class ModelTokensDoc(BaseModel):
    """One model's LLM calls and tokens over a window (NAT's token names)."""

    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int


class WindowTokensDoc(BaseModel):
    """LLM calls, tokens and cost over a window, from the history (priced when the tokens were used)."""

    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    tool_calls: int
    cost: float = Field(description="what the priced tokens cost, in the price table's currency")
    unpriced_tokens: int = Field(description="tokens of models that had no price when used (not in `cost`)")
    pricing: Literal["priced", "partly", "unpriced"]
    by_model: dict[str, ModelTokensDoc]


class SeriesDoc(BaseModel):
    """Chart series sharing the time axis ``t`` (epoch seconds, the end of each ``step``-second bucket)."""

    window: str
    step: float
    t: list[float]
    requests_per_min: list[float]
    errors_per_min: list[float]
    latency_ms: list[float | None]
    p50_ms: list[float | None] = Field(default_factory=list, description="per point, from its histogram changes")
    p95_ms: list[float | None] = Field(default_factory=list)
    p99_ms: list[float | None] = Field(default_factory=list)
    queued: list[int | None] = Field(default_factory=list, description="requests queued (the most in the point)")
    tokens_per_min: list[float | None] = Field(
        default_factory=list, description="LLM tokens per minute (NAT companions); null: none reported in the window"
    )
    cost_per_hour: list[float | None] = Field(
        default_factory=list, description="what the tokens cost per hour, priced when used (the table's currency)"
    )
    stats: WindowStatsDoc
    tokens: WindowTokensDoc | None = Field(
        None, description="LLM calls, tokens and cost over the window; null: no NAT companion counted any"
    )


class UserHistoryDoc(SeriesDoc):
    """One user's charts, window stats, flags and lives; ``ended`` when the user left."""

    user_id: str
    in_flight: list[int | None]
    exit_stack: list[int | None]
    lives: list[LifeDoc]
    flags: list[FlagDoc]
    ended: EndedDoc | None


class OverviewHistoryDoc(SeriesDoc):
    """Everyone's charts: users, active, in flight, requests/min, errors/min, latency."""

    users: list[int | None]
    active: list[int | None]
    in_flight: list[int | None]


class SparklinesDoc(BaseModel):
    """Requests/min series per user id."""

    window: str
    users: dict[str, list[float]]


class RowWindowDoc(BaseModel):
    """One list row's window: rates, flags, sparkline, tokens and cost."""

    stats: WindowStatsDoc
    flags: list[FlagDoc]
    sparkline: list[float]
    tokens: WindowTokensDoc | None = Field(None, description="null: no NAT companion reports the user")


class ListWindowDoc(BaseModel):
    """The list page's rows' windows, and the span the rates cover."""

    window: str
    span: WindowStatsDoc
    users: dict[str, RowWindowDoc]

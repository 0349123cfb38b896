"""The JSON API's document of one user (no I/O): NAT's record and what NAT companions add to it, and its cost.

Part of the OpenAPI schema's source (``schemas`` names these too); the views write the bodies.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from usermetrics.metrics import PerUserResourceUsage


class LatencyBucketDoc(BaseModel):
    """Requests whose latency was above ``gt_ms`` and at most ``le_ms`` (null: slower than every bound)."""

    gt_ms: float
    le_ms: float | None
    count: int


class LatencyDoc(BaseModel):
    """A user's latency over every request of its current life, from a NAT companion's histogram."""

    p50_ms: float | None = Field(description="median; null before the first request counted")
    p95_ms: float | None
    p99_ms: float | None
    requests: int = Field(description="requests counted")
    buckets: list[LatencyBucketDoc] = Field(description="the non-empty buckets, fastest first")


class QueueDoc(BaseModel):
    """A user's queue on NAT's per-user semaphore, summed over the workers that run it."""

    queued: int = Field(description="requests waiting on the semaphore now")
    max_concurrency: int = Field(description="the semaphore's size (0: unlimited)")
    wait_ms: float = Field(description="time its requests spent waiting")
    run_ms: float = Field(description="time its requests spent holding it")
    wait_share: float | None = Field(description="wait_ms / (wait_ms + run_ms); null before any time counted")


class LlmUsageDoc(BaseModel):
    """LLM calls and the tokens their usage reported, counted over the user's current life."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    total_tokens: int


class LlmDoc(LlmUsageDoc):
    """Every model's calls and tokens added up, and each model's own (``(other models)`` past 50)."""

    by_model: dict[str, LlmUsageDoc]


class CostDoc(BaseModel):
    """What the user's LLM calls cost at the prices in force (``USERMETRICS["PRICES"]`` and the admin's)."""

    currency: str = Field(description="the price table's one currency (ISO 4217 code)")
    total: float = Field(description="the priced models' cost added up; the whole cost only when complete")
    complete: bool = Field(description="every model with calls has a price (unpriced is empty)")
    unpriced: list[str] = Field(description="models with calls and no price: their tokens count, their cost is unknown")
    by_model: dict[str, float | None] = Field(description="each model's cost; null: no price")


class UserDoc(PerUserResourceUsage):
    """``/api/users/{id}``: NAT's PerUserResourceUsage, and what a NAT companion adds (null without one)."""

    latency: LatencyDoc | None = Field(description="null: no NAT companion reports the user (or it ended)")
    queue: QueueDoc | None
    workers: list[str] | None = Field(description="labels (host:pid) of the NAT workers running it now")
    llm: LlmDoc | None = Field(None, description="LLM calls and tokens, from NAT's intermediate steps")
    cost: CostDoc | None = Field(None, description="what those calls cost; null without a companion")
    tool_calls: int | None = Field(None, description="tool calls, from NAT's intermediate steps")

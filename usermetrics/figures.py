"""The NAT companions' figures of a user as the faces show them (sync, no Django), read off a published board.

One home for what the list, the detail page, the frames, the JSON API and the exports say of a
user's extras (``extras.Extras``, published as ``Board.extras_of``): the list's four figures
(p50, p95, p99 latency and requests queued now) and the whole document with its buckets' bounds
and the share of time spent waiting. A user no companion reports has no figures (None): the
pages write ``humanize.NO_VALUE``, the API ``null``, so "no companion" never reads as "0 queued".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress
from typing import Any

from usermetrics_nat.histogram import BOUNDS_MS
from usermetrics_nat.report import OTHER_MODELS

from usermetrics.board import DETAIL_CODE, Board
from usermetrics.extras import NO_USAGE, Extras, Usage
from usermetrics.prices import PriceTable

# The list's figures, named as the board's extras columns (and sort keys) are.
FIGURES = ("p50_ms", "p95_ms", "p99_ms", "queued")


def row_figures(board: Board, user_id: str) -> dict[str, float | int | None] | None:
    """p50/p95/p99 latency (ms; None before the first request counted) and requests queued now.

    None when no NAT companion reports the user (a plain NAT server, or an ended user).
    """
    doc = board.extras_of(user_id)
    if doc is None:
        return None
    latency = doc["latency"]
    return {
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        "p99_ms": latency["p99_ms"],
        "queued": doc["queue"]["queued"],
    }


def wait_share(wait_ms: float, run_ms: float) -> float | None:
    """The share of its requests' time a user spent waiting on its semaphore (None: no time counted yet)."""
    total = wait_ms + run_ms
    return round(wait_ms / total, 4) if total > 0 else None


def extras_public(doc: dict[str, Any]) -> dict[str, Any]:
    """An extras document (``Extras.as_dict``) as the API and the user frame carry it.

    The buckets name their bounds (``gt_ms`` < latency <= ``le_ms``; ``le_ms`` null for the last,
    everything slower) instead of the companion's bucket index, so a client needs no table of
    bounds; the queue adds ``wait_share``, the share of time spent waiting.
    """
    latency, queue = doc["latency"], doc["queue"]
    buckets = [
        {"gt_ms": BOUNDS_MS[i - 1] if i else 0, "le_ms": BOUNDS_MS[i] if i < len(BOUNDS_MS) else None, "count": n}
        for i, n in latency.get("buckets", [])
    ]
    return {
        **doc,  # keys a newer companion adds pass through as they are
        "latency": {**latency, "buckets": buckets},
        "queue": {**queue, "wait_share": wait_share(queue["wait_ms"], queue["run_ms"])},
        "workers": list(doc.get("workers", [])),
    }


def user_extras(board: Board, user_id: str, *, prices: PriceTable | None = None) -> dict[str, Any] | None:
    """The user's whole extras document for the faces (``extras_public``), or None without a companion.

    With ``prices`` (the table in force, ``pricing``), the document carries the user's ``cost``
    next to its ``llm`` (``cost_doc``).
    """
    i = board.index.get(user_id)
    extras = board.extras_at(i) if i is not None else None
    if extras is None:
        return None
    doc = extras_public(extras.as_dict())
    if prices is not None:
        doc["cost"] = cost_doc(prices, extras.llm)
    return doc


def cost_doc(prices: PriceTable, llm: Iterable[tuple[str, Usage]]) -> dict[str, Any]:
    """What per-model LLM counts cost, as the API, the frames and the pages carry it.

    ``total`` adds the priced models only; ``complete`` says whether that is everything (no
    model with calls lacks a price); ``unpriced`` names the others, whose ``by_model`` amount is
    null: "no price", never a made-up cost.
    """
    cost = prices.cost(llm)
    return {
        "currency": prices.currency,
        "total": cost.total,
        "complete": cost.complete,
        "unpriced": list(cost.unpriced),
        "by_model": dict(cost.by_model),
    }


# A user's LLM calls, tokens and cost as the exports' columns (after NAT's and the window's).
LLM_COLUMNS = (
    "llm_calls", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "total_tokens",
    "tool_calls", "cost", "cost_currency", "cost_complete",
)  # fmt: skip


def llm_cells(extras: Extras | None, prices: PriceTable) -> tuple[Any, ...]:
    """A user's ``LLM_COLUMNS``: every model's counts added up, its tool calls and its cost (all None without a
    companion). The cost is None, with no currency, when none of its models with calls has a price; a user
    without calls costs 0."""
    if extras is None:
        return (None,) * len(LLM_COLUMNS)
    cost = prices.cost(extras.llm)
    priced = not extras.llm or len(cost.unpriced) < len(extras.llm)
    return (
        *extras.llm_total,
        extras.tool_calls,
        cost.total if priced else None,
        prices.currency if priced else None,
        cost.complete,
    )


# The fleet's per-model counts (``/metrics``): past this many models, the rest add up as ``OTHER``.
FLEET_MODELS_MAX = 50
OTHER = "other"


@dataclass(frozen=True)
class ModelTotal:
    """One model's counts over every user (``Usage``), and their cost (None: the model has no price)."""

    model: str
    usage: Usage
    cost: float | None


def fleet_llm(board: Board, prices: PriceTable, *, limit: int = FLEET_MODELS_MAX) -> list[ModelTotal]:
    """Every user's LLM counts added up per model: the ``limit`` models with the most tokens, then ``OTHER``.

    ``OTHER`` (last) also takes the companions' own "(other models)"; its cost adds its priced
    models' (None when none has a price). Only the users with LLM calls are read (the board's
    ``llm_calls`` column picks them out), so a fleet without any costs one pass over a column.
    """
    sums: dict[str, list[int]] = {}
    # Read straight off the packed detail (``board.DETAIL_CODE`` numbers: the histogram's pair count and
    # pairs, then per model its index and counts), not through ``Board.extras_at``: no histogram to
    # decode, a few times faster at 100k users on the serving loop.
    numbers = memoryview(board.detail).cast(DETAIL_CODE) if board.detail else memoryview(b"").cast(DETAIL_CODE)
    size, width = numbers.itemsize, 1 + len(NO_USAGE)
    for i in compress(range(len(board)), board.columns["llm_calls"]):
        start, end = board.detail_offsets[i] // size, board.detail_offsets[i + 1] // size
        per_model = numbers[start + 1 + 2 * numbers[start] : end]
        for k in range(0, len(per_model), width):
            model = board.models[per_model[k]]
            usage = per_model[k + 1 : k + width]
            total = sums.get(model)
            if total is None:
                sums[model] = list(usage)
            else:
                for j, n in enumerate(usage):
                    total[j] += n
    named = sorted((m for m in sums if m not in (OTHER, OTHER_MODELS)), key=lambda m: (-sums[m][-1], m))[:limit]
    out = [ModelTotal(m, tuple(sums[m]), prices.cost_of(m, tuple(sums[m]))) for m in sorted(named)]
    rest = [m for m in sums if m not in set(named)]
    if rest:
        usage = tuple(map(sum, zip(*(sums[m] for m in rest), strict=True)))
        costs = [c for m in rest if (c := prices.cost_of(m, tuple(sums[m]))) is not None]
        out.append(ModelTotal(OTHER, usage, math.fsum(costs) if costs else None))
    return out

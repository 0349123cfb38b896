"""What tokens cost (sync, no Django): a price table per model and the cost of a user's LLM calls.

A price is per million tokens, per model (the name NAT's ``LLM_END`` step carries): prompt,
completion and cached prompt tokens, in the table's one currency. Tokens follow NAT's
``usage_info`` (OpenAI's convention): ``prompt_tokens`` include the ``cached_tokens`` read from a
prompt cache, and ``completion_tokens`` include the ``reasoning_tokens``. So a call costs
``(prompt - cached) x prompt price + cached x cached price + completion x completion price``,
each per million, and reasoning tokens are never counted twice.

A model with no price costs nothing known: its tokens are counted and shown with "no price",
and every cost that would include them says which models it leaves out; no cost is made up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from usermetrics.extras import Usage

PER = 1_000_000  # prices are per million tokens
DEFAULT_CURRENCY = "USD"
# Where each token count is in a ``Usage`` (``usermetrics_nat.meters.USAGE_FIELDS``' order).
PROMPT, COMPLETION, CACHED = 1, 2, 3
PRICE_KEYS = ("prompt", "completion", "cached")


@dataclass(frozen=True)
class Price:
    """One model's prices per million tokens, in ``currency``."""

    prompt: float
    completion: float
    cached: float
    currency: str = DEFAULT_CURRENCY

    def cost(self, usage: Usage) -> float:
        """What ``usage`` (one model's counts) costs at this price."""
        prompt, completion, cached = usage[PROMPT], usage[COMPLETION], usage[CACHED]
        cached = min(cached, prompt)  # a client that counts cached apart from prompt: never a negative charge
        return ((prompt - cached) * self.prompt + cached * self.cached + completion * self.completion) / PER


@dataclass(frozen=True)
class Cost:
    """What some LLM calls cost: the priced models' sum and the models left out for want of a price."""

    total: float = 0.0
    by_model: tuple[tuple[str, float | None], ...] = ()  # None: no price
    unpriced: tuple[str, ...] = ()  # models with tokens and no price

    @property
    def complete(self) -> bool:
        """Every model with tokens has a price: ``total`` is the whole cost."""
        return not self.unpriced


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name, in one currency."""

    currency: str = DEFAULT_CURRENCY
    prices: Mapping[str, Price] = field(default_factory=dict)

    def price_of(self, model: str) -> Price | None:
        """The model's price, None when the table has none."""
        return self.prices.get(model)

    def cost_of(self, model: str, usage: Usage) -> float | None:
        """What one model's ``usage`` costs; None when the model has no price."""
        price = self.prices.get(model)
        return None if price is None else price.cost(usage)

    def cost(self, llm: Iterable[tuple[str, Usage]]) -> Cost:
        """The cost of per-model counts (an ``Extras.llm``): priced models added, the others named."""
        by_model = tuple((model, self.cost_of(model, usage)) for model, usage in llm)
        unpriced = tuple(model for model, amount in by_model if amount is None)
        total = math.fsum(amount for _, amount in by_model if amount is not None)
        return Cost(total=total, by_model=by_model, unpriced=unpriced)

    def with_prices(self, prices: Mapping[str, Price]) -> PriceTable:
        """This table with ``prices`` added (a model in both takes the new price)."""
        return PriceTable(self.currency, {**self.prices, **prices})


def price_parse(model: str, entry: Any, currency: str) -> Price:
    """One model's price from ``{"prompt": 2.5, "completion": 10, "cached": 1.25, "currency": "USD"}``.

    ``cached`` defaults to the prompt price, ``currency`` to the table's; a price in another currency
    than the table's is refused (costs in two currencies cannot be added), as is a negative one.
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"the price of {model!r} must be a dict of prompt, completion, cached, got {entry!r}")
    unknown = set(entry) - {*PRICE_KEYS, "currency"}
    if unknown:
        raise ValueError(f"the price of {model!r} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    if "prompt" not in entry or "completion" not in entry:
        raise ValueError(f"the price of {model!r} needs prompt and completion (per million tokens)")
    values: dict[str, float] = {}
    for key in PRICE_KEYS:
        raw = entry.get(key, entry["prompt"])
        try:
            values[key] = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"the {key} price of {model!r} is not a number: {raw!r}") from None
        if not math.isfinite(values[key]) or values[key] < 0:
            raise ValueError(f"the {key} price of {model!r} must be a number at or above 0, got {raw!r}")
    entry_currency = str(entry.get("currency", currency)).strip().upper()
    if entry_currency != currency:
        raise ValueError(f"the price of {model!r} is in {entry_currency}, the table's currency is {currency}")
    return Price(currency=currency, **values)


def price_table_parse(value: Any, currency: str = DEFAULT_CURRENCY) -> PriceTable:
    """A table from ``{model: price}`` (``price_parse``), or that dict's JSON text (the environment's form)."""
    currency = currency.strip().upper()
    if not currency:
        raise ValueError("the currency must be a code such as USD")
    if isinstance(value, str):
        if not value.strip():
            return PriceTable(currency)
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"prices are JSON, {{model: {{prompt, completion, cached}}}}: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"prices are a dict of model names to prices, got {value!r}")
    return PriceTable(
        currency, {str(model): price_parse(str(model), entry, currency) for model, entry in value.items()}
    )

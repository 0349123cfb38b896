"""Tokens and cost in the history (sync, no ORM): a sample's LLM calls per model as a few bytes, deltas, sums.

A user that NAT companions report writes, with each sample, the change of its LLM calls and
tokens per model since the previous sample of the same life, its tool calls' change, and what
that change cost *then* (``pricing.price_table_get()`` at record time, like a bill: a later price
does not rewrite the past). Three places hold it:

- ``d_tokens`` (total tokens) and ``d_cost`` (the cost in nano-units of the currency, an integer:
  sums are exact in any order, in SQL and in Python, across roll-ups and both databases, where
  float sums differ in their last digits) are plain columns, so a window's total, the list's sort
  and the budget alerts are one ``SUM``; NULL when nothing changed or no companion reports the user.
- ``llm``: varints of Δtool calls and Δunpriced tokens (the tokens of models that had no price
  then, so a window can say "+N tokens unpriced"), then per model that changed its id in
  ``LlmModel`` (names are interned: a name is written once, not per sample) and six varints,
  ``USAGE_FIELDS``' order. Empty bytes: nothing changed; NULL: no companion reports the user.

The reset rule is the lives' (``lives.is_new_life``): a model's counts that went backwards are a
new count from zero, never a negative change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import add, sub

from usermetrics.extras import NO_USAGE, Extras, Usage
from usermetrics.prices import PriceTable

from .varints import varint_next, varint_put, varints_put

NANO = 1_000_000_000  # nano-units of the currency in one unit
TOTAL = 5  # where the total tokens are in a ``Usage``
CALLS, PROMPT, COMPLETION = 0, 1, 2

# A model's counts as documents name them (``USAGE_FIELDS``' order).
MODEL_KEYS = ("llm_calls", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")
# Per model: its calls and tokens (``USAGE_FIELDS``' order), by name.
PerModel = tuple[tuple[str, Usage], ...]


@dataclass(frozen=True)
class LlmCumulative:
    """A user's LLM counts as of one snapshot: the base of the next sample's change."""

    llm: PerModel = ()
    tool_calls: int = 0


NOTHING = LlmCumulative()


def llm_cumulative_of(extras: Extras) -> LlmCumulative:
    """The cumulative LLM counts of ``extras`` as the history counts them."""
    return LlmCumulative(tuple(extras.llm), extras.tool_calls)


def llm_change(new: LlmCumulative, old: LlmCumulative | None) -> LlmCumulative:
    """The change from ``old`` to ``new``; a model new since ``old``, or with a count gone backwards, counts from zero.

    A model ``old`` had and ``new`` has not is left out: no negative change.
    """
    if old is None:
        return new
    before = dict(old.llm)
    out: list[tuple[str, Usage]] = []
    for model, usage in new.llm:
        base = before.get(model)
        if base is None:
            d = usage
        else:
            d = tuple(map(sub, usage, base))
            if min(d) < 0:
                d = usage  # a new count (a worker's new builder): from zero
        if any(d):
            out.append((model, d))
    tools = new.tool_calls - old.tool_calls if new.tool_calls >= old.tool_calls else new.tool_calls
    return LlmCumulative(tuple(out), tools)


@dataclass
class TokenSum:
    """A window's (or one sample's) LLM calls and tokens per model, tool calls, cost and unpriced tokens."""

    by_model: dict[int | str, list[int]] = field(default_factory=dict)  # model id (stored) or name (read)
    tool_calls: int = 0
    unpriced: int = 0  # tokens of models that had no price when they were used
    cost_nano: int = 0

    def add(self, other: TokenSum) -> None:
        """Add ``other``'s changes."""
        mine = self.by_model
        for model, counts in other.by_model.items():
            have = mine.get(model)
            mine[model] = list(counts) if have is None else list(map(add, have, counts))  # in C: runs per sample
        self.tool_calls += other.tool_calls
        self.unpriced += other.unpriced
        self.cost_nano += other.cost_nano

    def _field(self, index: int) -> int:
        return sum(counts[index] for counts in self.by_model.values())

    @property
    def calls(self) -> int:
        """LLM calls."""
        return self._field(CALLS)

    @property
    def prompt(self) -> int:
        """Prompt tokens (cached ones included, as NAT counts them)."""
        return self._field(PROMPT)

    @property
    def completion(self) -> int:
        """Completion tokens (reasoning ones included)."""
        return self._field(COMPLETION)

    @property
    def total(self) -> int:
        """Total tokens."""
        return self._field(TOTAL)

    @property
    def cost(self) -> float:
        """What the priced tokens cost, in the currency."""
        return self.cost_nano / NANO

    @property
    def pricing(self) -> str:
        """``"priced"`` (every token had a price), ``"partly"`` (some had none) or ``"unpriced"`` (none had one)."""
        if not self.unpriced:
            return "priced"
        return "unpriced" if self.unpriced >= self.total else "partly"

    def named(self, names: Mapping[int, str]) -> TokenSum:
        """This sum with its models' ids replaced by their names (an id not in ``names`` reads ``#id``)."""
        out = TokenSum(tool_calls=self.tool_calls, unpriced=self.unpriced, cost_nano=self.cost_nano)
        for model, counts in self.by_model.items():
            name = names.get(model, f"#{model}") if isinstance(model, int) else model
            out.add(TokenSum({name: counts}))
        return out

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (models by name once ``named``): NAT's token names, the cost and what it leaves out."""
        return {
            "llm_calls": self.calls,
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total,
            "tool_calls": self.tool_calls,
            "cost": round(self.cost, 9),
            "unpriced_tokens": self.unpriced,
            "pricing": self.pricing,
            "by_model": {
                str(model): dict(zip(MODEL_KEYS, counts, strict=True)) for model, counts in self.by_model.items()
            },
        }


def priced(d: LlmCumulative, table: PriceTable) -> tuple[int, int, int]:
    """A change's total tokens, its cost at ``table``'s prices (nano-units) and its tokens without a price."""
    cost = table.cost(d.llm)
    unpriced = sum(usage[TOTAL] for model, usage in d.llm if model in cost.unpriced)
    tokens = sum(usage[TOTAL] for _, usage in d.llm)
    return tokens, round(cost.total * NANO), unpriced


def encode(by_model: Iterable[tuple[int, Usage]], tool_calls: int, unpriced: int) -> bytes:
    """The ``llm`` column: varints Δtool calls, Δunpriced tokens, then (model id, six counts) per model; b"": none."""
    out = bytearray()
    varints_put((tool_calls, unpriced), out)
    for model, usage in by_model:
        varint_put(model, out)
        varints_put(usage, out)
    if len(out) == 2 and not tool_calls and not unpriced:
        return b""
    return bytes(out)


def _varints(data: bytes) -> list[int]:
    values: list[int] = []
    pos, end = 0, len(data)
    while pos < end:
        value, pos = varint_next(data, pos, "llm")
        values.append(value)
    return values


def add_into(raw: bytes | memoryview, total: TokenSum) -> None:
    """Add one ``encode``'d column into ``total`` (models by id); ValueError for bytes it did not write."""
    values = _varints(bytes(raw))
    if not values:
        return
    width = 1 + len(NO_USAGE)
    if len(values) < 2 or (len(values) - 2) % width:
        raise ValueError("a truncated llm column")
    total.tool_calls += values[0]
    total.unpriced += values[1]
    for start in range(2, len(values), width):
        model, counts = values[start], values[start + 1 : start + width]
        mine = total.by_model.get(model)
        if mine is None:
            total.by_model[model] = counts
        else:
            for i, n in enumerate(counts):
                mine[i] += n


def decode(raw: bytes | memoryview, cost_nano: int | None = None) -> TokenSum:
    """``encode``'s bytes (and the row's ``d_cost``) back as a sum of one row."""
    total = TokenSum(cost_nano=cost_nano or 0)
    add_into(raw, total)
    return total


def encode_sum(total: TokenSum) -> bytes:
    """A sum (a roll-up hour, a refresh's totals) in the column's form (models by id)."""
    return encode(
        ((int(model), tuple(counts)) for model, counts in total.by_model.items()), total.tool_calls, total.unpriced
    )

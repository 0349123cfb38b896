"""A sample's tokens and cost columns (sync ORM): model names interned once, prices read once per refresh."""

from __future__ import annotations

from collections.abc import Iterable
from operator import add

from usermetrics.models import LlmModel
from usermetrics.models.fields import db_text, db_text_loaded
from usermetrics.prices import PriceTable
from usermetrics.pricing import price_table_get

from .samples import RecordResult
from .tokens import NOTHING, LlmCumulative, TokenSum, encode, llm_change, priced

NAME_MAX = 255  # the column's length (companions send at most 200 characters)
ESCAPE = db_text("\uffff")[0]  # the first character of every two-character escape ``db_text`` writes


def stored_name(name: str) -> str:
    """``name`` as the column holds it: NUL escaped as user ids are (PostgreSQL's text cannot hold it), cut to
    ``NAME_MAX`` characters without cutting an escape in two (``model_names`` reads it back)."""
    text = db_text(name[:NAME_MAX])[:NAME_MAX]
    run = len(text) - len(text.rstrip(ESCAPE))
    return text[:-1] if run % 2 else text  # an odd run of escape characters ends in half an escape


class ModelIds:
    """The recorder's map of model names to ``LlmModel`` ids, read once and grown as new names come."""

    def __init__(self) -> None:
        """Nothing read yet."""
        self._ids: dict[str, int] | None = None  # by the name as stored
        self._by_name: dict[str, int] = {}  # by the name as sent: ``stored_name`` once per name, not per sample

    def forget(self) -> None:
        """Read the table again at the next use (a write that failed may have rolled back new names)."""
        self._ids = None
        self._by_name = {}

    def ids_of(self, names: Iterable[str]) -> dict[str, int]:
        """The ids of ``names``, inserting the ones the table lacks (another process may insert one too)."""
        names = list(names)
        if self._ids is None:
            self._ids = dict(LlmModel.objects.values_list("name", "id"))
        by_name = self._by_name
        new = [name for name in names if name not in by_name]
        if new:
            ids = self._ids
            stored = {name: stored_name(name) for name in new}
            missing = set(stored.values()) - ids.keys()
            if missing:
                LlmModel.objects.bulk_create([LlmModel(name=n) for n in sorted(missing)], ignore_conflicts=True)
                ids.update(LlmModel.objects.filter(name__in=missing).values_list("name", "id"))
            by_name.update((name, ids[stored[name]]) for name in new)
        return {name: by_name[name] for name in names}


def model_names() -> dict[int, str]:
    """Every interned model's name by id (a handful of rows)."""
    return {pk: db_text_loaded(name) for pk, name in LlmModel.objects.values_list("id", "name")}


class TokenColumns:
    """Works out a sample's ``d_tokens``, ``d_cost`` and ``llm`` at the prices in force when it is written."""

    def __init__(self) -> None:
        """No prices read yet."""
        self.ids = ModelIds()
        self.table: PriceTable | None = None

    def begin(self) -> None:
        """Read the prices in force for this refresh's samples (one table for all of them)."""
        self.table = price_table_get()

    def columns(
        self, new: LlmCumulative, base: LlmCumulative | None, result: RecordResult
    ) -> tuple[int | None, int | None, bytes]:
        """The change from ``base`` (None: not known, a baseline) as the three columns, counted into ``result``."""
        d = llm_change(new, base) if base is not None else NOTHING
        if not d.llm and not d.tool_calls:
            return None, None, b""
        tokens, cost, unpriced = priced(d, self.table or price_table_get())
        ids = self.ids.ids_of(model for model, _ in d.llm)
        by_id = [(ids[model], usage) for model, usage in d.llm]
        per_model: dict[int | str, list[int]] = {model_id: list(usage) for model_id, usage in by_id}
        if len(per_model) < len(by_id):  # two names share an id (cut to the column alike): add them up
            per_model = {}
            for model_id, usage in by_id:
                have = per_model.get(model_id)
                per_model[model_id] = list(usage) if have is None else list(map(add, have, usage))
        result.add_tokens(TokenSum(per_model, d.tool_calls, unpriced, cost))
        return (tokens if d.llm else None), (cost if d.llm else None), encode(by_id, d.tool_calls, unpriced)

"""Tokens and cost over a window (sync ORM): a page of users, everyone's totals, the fleet, the top users.

Sums of what the recorder wrote with each sample (``history.tokens``): raw samples, and the
hourly roll-ups for the complete hours they hold (``query.ranges_of``), as every windowed figure.
Costs are what the tokens cost when they were used. A user no companion reported in the window
has no entry (the pages show "—"); one with a companion but no LLM call has an empty sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Sum

from usermetrics.clock import utcnow
from usermetrics.models import TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample

from .llm_models import model_names
from .query import ranges_of
from .samples import chunks, lives_of, rows_of
from .tokens import TokenSum, add_into

# What a window's tokens and cost are sorted by (``window_totals``' pair): the list's sort keys.
TOKENS, COST = "tokens", "cost"


def window_tokens(*, window: timedelta, user_ids: Iterable[str], now: datetime | None = None) -> dict[str, TokenSum]:
    """Per user id of ``user_ids``: LLM calls and tokens per model, tool calls, cost, unpriced tokens over ``window``.

    Models are named (``TokenSum.named``). Users without a companion's sample in the window are left out.
    """
    now = now or utcnow()
    lives = lives_of(user_ids)
    by_life: dict[int, TokenSum] = {}
    for model, lookup in ranges_of(now - window, now, raw=UserSample, hourly=UserHourly):
        for part in chunks(list(lives), 500):
            rows = model.objects.filter(**lookup, life_id__in=part, llm__isnull=False)
            for life_id, raw, cost in rows_of(rows.values_list("life_id", "llm", "d_cost"), lives=len(lives)):
                total = by_life.setdefault(life_id, TokenSum())
                add_into(raw, total)
                total.cost_nano += cost or 0
    names = model_names() if by_life else {}
    out: dict[str, TokenSum] = {}
    for life_id, total in by_life.items():
        uid = lives[life_id]
        if uid in out:
            out[uid].add(total.named(names))
        else:
            out[uid] = total.named(names)
    return out


def window_totals(
    *, window: timedelta, now: datetime | None = None, user_ids: Iterable[str] | None = None
) -> dict[str, tuple[int, int]]:
    """Per user id: (total tokens, cost in nano-units) over ``window``, in SQL (every user at once: sorts, alerts).

    Only users with tokens in the window are listed; ``user_ids`` narrows them down.
    """
    now = now or utcnow()
    out: dict[str, tuple[int, int]] = {}
    lives = lives_of(user_ids) if user_ids is not None else None
    sums = {"t": Sum("d_tokens"), "c": Sum("d_cost")}
    for model, lookup in ranges_of(now - window, now, raw=UserSample, hourly=UserHourly):
        query = model.objects.filter(**lookup, d_tokens__isnull=False)
        rows: list[dict[str, Any]] = []
        if lives is None:
            rows = list(query.values(uid=F("life__user_id")).annotate(**sums))
        else:
            for part in chunks(list(lives), 500):
                found = query.filter(life_id__in=part).values("life_id").annotate(**sums)
                rows.extend({**row, "uid": lives[row["life_id"]]} for row in found)
        for row in rows:
            tokens, cost = out.get(row["uid"], (0, 0))
            out[row["uid"]] = (tokens + (row["t"] or 0), cost + (row["c"] or 0))
    return out


def fleet_tokens(*, window: timedelta, now: datetime | None = None) -> TokenSum | None:
    """Everyone's tokens per model, cost and unpriced tokens over ``window`` (None: no companion's tokens in it)."""
    now = now or utcnow()
    total: TokenSum | None = None
    for model, lookup in ranges_of(now - window, now, raw=TotalsSample, hourly=TotalsHourly):
        for raw, cost in model.objects.filter(**lookup, llm__isnull=False).values_list("llm", "d_cost"):
            if total is None:
                total = TokenSum()
            add_into(raw, total)
            total.cost_nano += cost or 0
    return total.named(model_names()) if total is not None else None


def top_users(
    *,
    window: timedelta,
    by: tuple[str, ...] = (COST,),
    limit: int = 10,
    now: datetime | None = None,
) -> dict[str, list[tuple[str, TokenSum]]]:
    """For each of ``by`` (``COST``, ``TOKENS``): the ``limit`` users highest over ``window``, highest first.

    Ties by user id; users with none of it are left out. One grouped query for every user, then
    the chosen users' sums per model.
    """
    now = now or utcnow()
    totals = window_totals(window=window, now=now)
    ranked: dict[str, list[str]] = {}
    for key in by:
        index = 1 if key == COST else 0
        order = sorted((uid for uid, pair in totals.items() if pair[index] > 0))
        order.sort(key=lambda uid: totals[uid][index], reverse=True)
        ranked[key] = order[:limit]
    chosen = {uid for uids in ranked.values() for uid in uids}
    sums = window_tokens(window=window, user_ids=sorted(chosen), now=now) if chosen else {}
    return {key: [(uid, sums.get(uid, TokenSum())) for uid in uids] for key, uids in ranked.items()}


def life_users(pks: Iterable[int]) -> dict[int, str]:
    """Life key -> user id of the lives ``pks`` (the ended list's rows, to order them by their window)."""
    out: dict[int, str] = {}
    for chunk in chunks(list(pks), 500):
        out.update(UserLife.objects.filter(pk__in=chunk).values_list("pk", "user_id"))
    return out

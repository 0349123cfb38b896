"""Times, numbers and lifecycles in words (sync, no Django); static/usermetrics/js/format.js says them the same way."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from usermetrics.metrics import PerUserResourceUsage
from usermetrics.snapshot import in_flight, is_active


def duration_words(seconds: float) -> str:
    """A short duration: '45 s', '12 min', '3 h 5 min', '2 d 3 h'."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(s // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def ago(when: datetime, now: datetime) -> str:
    """'3 min ago' (times in the future, from clock skew, read 'just now')."""
    seconds = (now - when).total_seconds()
    if seconds < 1:
        return "just now"
    # Only the largest unit: '3 h ago', not '3 h 5 min ago'.
    return " ".join(duration_words(seconds).split(" ")[:2]) + " ago"


def lifecycle_words(
    usage: PerUserResourceUsage, now: datetime, evicted_at: datetime | None = None, *, stuck_after: float
) -> str:
    """'active with 2 in flight', 'idle for 12 min, evicted in about 18 min', or a stuck warning.

    ``evicted_at`` is when the sources will evict the idle user (``Snapshot.evicted_at``), if known;
    ``stuck_after`` is the stuck flag's threshold in seconds (``FLAGS["STUCK_AFTER"]``), so the
    words and the flag agree.
    """
    idle = (now - usage.session.last_activity).total_seconds()
    if is_active(usage):
        words = f"active with {in_flight(usage)} in flight"
        if idle >= stuck_after:
            words += f", no activity for {duration_words(idle)} (stuck?)"
        return words
    words = f"idle for {duration_words(idle)}"
    if evicted_at is not None:
        words += ", " + eviction_words((evicted_at - now).total_seconds())
    return words


def eviction_words(left: float) -> str:
    """When an idle user goes, ``left`` seconds from now: 'evicted in about 18 min', 'evicted in under a minute'.

    The one wording of eviction: the lifecycle words and the idle flag both use it.
    """
    if left <= 0:
        return "due for eviction"
    if left < 60:
        return "evicted in under a minute"
    return f"evicted in about {duration_words(left)}"


def number(value: float) -> str:
    """At most two decimals, no trailing zeros: '12.5', '3', '0.07' (as the page's script writes numbers)."""
    return f"{round(value, 2):.2f}".rstrip("0").rstrip(".")


_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"))


def big_number(value: float) -> str:
    """A card's number that fits: '12,345', '1.2M', '3B', '9.0e+15' (format.js ``bigNumber`` says the same).

    Digit groups below a million (at most two decimals), one decimal and a unit up to a
    thousand trillion, scientific beyond; the page shows the exact value on hover.
    """
    n = float(value)
    a = abs(n)
    sign = "-" if n < 0 else ""
    if a >= 1e15:
        mantissa, exponent = f"{n:.1e}".split("e")
        return f"{mantissa}e{int(exponent):+03d}"
    for i, (unit, name) in enumerate(_UNITS):
        if a >= unit:
            v = _half_up(a / unit)
            if v >= 1000 and i > 0:
                unit, name = _UNITS[i - 1]
                v = _half_up(a / unit)
            return f"{sign}{number(v)}{name}"
    r = round(a, 2)
    whole, _, frac = number(r).partition(".")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


def _half_up(x: float) -> float:
    """One decimal, halves up, as the script's Math.round does."""
    return int(x * 10 + 0.5) / 10


def latency_fit(ms: float) -> str:
    """A latency in the unit that fits: '206.99 ms', '1.61 s', '3 h 5 min', '1.0e+297 s' (format.js ``latencyFit``)."""
    if abs(ms) < 1000:
        return f"{number(ms)} ms"
    s = ms / 1000
    if abs(s) < 60:
        return f"{number(s)} s"
    if abs(s) < 1e9:
        return duration_words(s)
    mantissa, exponent = f"{s:.1e}".split("e")
    return f"{mantissa}e{int(exponent):+03d} s"


def bytes_words(size: int) -> str:
    """A size in bytes: '812 B', '3.6 KiB', '3.7 MiB', '1.2 GiB' (format.js ``bytesWords`` says the same)."""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{number(_half_up(value))} {unit}"


def share_words(share: float) -> str:
    """A share of a window: '98.5%' (format.js ``shareWords`` says the same)."""
    return f"{_half_up(share * 100):.1f}%"


def latency_words(value: float) -> str:
    """A record's average latency as the pages write it: Python's float text and ' ms' ('12.5 ms', '3.0 ms')."""
    return f"{value} ms"


# What a page, the API and the log say while the database cannot be read (gone, cut, locked): the
# live figures come from memory and need none of it.
HISTORY_UNAVAILABLE = "History is unavailable: the database cannot be reached."

# What a rate without requests reads (an en dash, as the admin shows an empty value).
NO_VALUE = "\u2013"


def rates_words(
    requests_per_min: float, error_rate: float | None, latency_ms: float | None, p95_ms: float | None = None
) -> dict[str, str]:
    """A window's rates as the pages write them: '12.5', '3.2 %', '140 ms'; ``NO_VALUE`` without requests.

    ``p95_ms`` is the window's p95 from the NAT companions' histograms (``NO_VALUE`` without one).
    """
    return {
        "requests_per_min": number(requests_per_min),
        "error_rate": NO_VALUE if error_rate is None else f"{number(error_rate * 100)} %",
        "latency_ms": NO_VALUE if latency_ms is None else f"{number(latency_ms)} ms",
        "p95_ms": percentile_words(p95_ms),
    }


def coverage_words(window: str, seconds: float, since: datetime | None, window_seconds: float) -> str:
    """What a window's rates cover: 'the last 1h', or 'the last 3 min; history starts 08:29 UTC'.

    Rates are divided by the span the history covers (``history.query.covered``); when that is
    less than the window, the page says so. format.js ``coverageWords`` says it the same way
    (in the browser's time zone).
    """
    if since is None or seconds >= window_seconds - 1:
        return f"the last {window}"
    return f"the last {duration_words(seconds)}; history starts {since.astimezone(UTC):%H:%M} UTC"


def user_display(user_id: str, labels: Mapping[str, str]) -> str:
    """How to show a user: ``label (user id)`` when a name is registered, else the user id."""
    label = labels.get(user_id)
    return f"{label} ({user_id})" if label else user_id


def producer_words(last_publish: datetime | None) -> str:
    """What a page says while no producer publishes (the sockets' status messages say the same)."""
    if last_publish is None:
        return "No producer is publishing: none has published a board yet."
    stamp = last_publish.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"No producer is publishing: the last board was published at {stamp}."


def percentile_words(ms: float | None) -> str:
    """A latency percentile as the pages write it ('206.99 ms', '1.61 s'); ``NO_VALUE`` without one.

    None is a user no NAT companion reports, or one with no request counted yet
    (format.js ``percentileWords`` says the same).
    """
    return NO_VALUE if ms is None else latency_fit(ms)


def figure_count(value: int | None) -> str:
    """A companion's count ('3 queued' is '3'); ``NO_VALUE`` for a user none reports (format.js ``figureCount``)."""
    return NO_VALUE if value is None else str(value)


def percentiles_title(figures: Mapping[str, float | None]) -> str:
    """'p50 12 ms · p95 140 ms · p99 1.2 s' from a user's figures (format.js ``percentilesTitle``)."""
    return " · ".join(f"p{q} {percentile_words(figures.get(f'p{q}_ms'))}" for q in (50, 95, 99))


def bucket_words(gt_ms: float, le_ms: float | None) -> str:
    """A latency bucket: '≤ 15 ms' (above the bucket before), '> 5 min' for the last (format.js ``bucketWords``)."""
    return f"> {latency_fit(gt_ms)}" if le_ms is None else f"\u2264 {latency_fit(le_ms)}"


def concurrency_words(max_concurrency: int) -> str:
    """A semaphore's size: '8', or 'unlimited' for 0 (NAT runs the user's requests without one)."""
    return str(max_concurrency) if max_concurrency else "unlimited"


def workers_words(count: int) -> str:
    """Where a user runs: 'on 1 worker', 'on 3 workers' (format.js ``workersWords``)."""
    return f"on {count} worker" + ("" if count == 1 else "s")


def worker_state_words(state: str) -> str:
    """A NAT worker's state on the sources page: 'live' (reporting) or 'ended' (format.js ``workerStateWords``)."""
    return "live" if state == "ok" else state


def skipped_words(by_kind: Mapping[str, int]) -> str:
    """A stream's skipped entries: 'garbage: 2, too large: 1', or 'none' (format.js ``skippedWords``)."""
    return ", ".join(f"{kind}: {n}" for kind, n in sorted(by_kind.items())) or "none"


# What a model with no price costs on the pages: not a number (prices.py: never a made-up cost).
NO_PRICE = "no price"


def cost_words(cost: Mapping[str, Any]) -> str:
    """A cost document's total (``figures.cost_doc``): '1.23 USD', '1.23 USD + 2 unpriced models', or 'no price'.

    'no price' when no model with calls has one (money.js ``costWords`` says the same).
    """
    unpriced = len(cost["unpriced"])
    if unpriced and unpriced == len(cost["by_model"]):
        return NO_PRICE
    words = money_words(cost["total"], cost["currency"])
    if unpriced:
        words += f" + {unpriced} unpriced model" + ("" if unpriced == 1 else "s")
    return words


# Currency symbols the pages write before an amount; any other code is written after it.
_SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3", "JPY": "\u00a5"}


def money_words(amount: float, currency: str) -> str:
    """A cost: '$12.35', '$0.0031' (two significant digits below a cent), '1,234 CHF' (money.js ``moneyWords``)."""
    a = abs(amount)
    if a >= 100:
        text = _fixed(a, 0)
    elif a >= 0.01 or a == 0:
        text = _fixed(a, 2)
    else:
        text = _fixed(a, min(9, 1 - math.floor(math.log10(a))))
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def _fixed(a: float, places: int) -> str:
    """``a`` (at or above 0) with ``places`` decimals and digit groups, halves up as the script's ``toFixed`` and
    ``Math.round`` round them (Python's format rounds a half to even: 0.125 read '0.12' here, '0.13' live)."""
    with localcontext() as ctx:
        ctx.prec = 400  # the exact value of any float: a quantize never runs out of digits
        return f"{Decimal(a).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,.{places}f}"


def spend_words(doc: Mapping[str, Any] | None, currency: str) -> dict[str, str]:
    """A window's tokens and cost as the list writes them (money.js ``spendWords``); ``NO_VALUE`` without a companion.

    ``doc`` is ``history.tokens.TokenSum.as_dict()``. A cost says "no price" when none of the
    tokens had one, and "≥" when some had none (the hover says how many).
    """
    if doc is None:
        return {"tokens": NO_VALUE, "tokens_title": "", "cost": NO_VALUE, "cost_title": ""}
    unpriced, total = doc["unpriced_tokens"], doc["total_tokens"]
    prompt, completion, calls = doc["prompt_tokens"], doc["completion_tokens"], doc["llm_calls"]
    tokens_title = f"{total:,} tokens: {prompt:,} prompt, {completion:,} completion; {calls:,} LLM calls"
    cost = money_words(doc["cost"], currency)
    cost_title = tokens_title
    if doc["pricing"] == "unpriced":
        cost, cost_title = NO_PRICE, f"No price for the models used: {total:,} tokens unpriced"
    elif doc["pricing"] == "partly":
        cost, cost_title = f"\u2265 {cost}", f"{tokens_title}; +{unpriced:,} tokens unpriced (models without a price)"
    return {"tokens": tokens_words(total), "tokens_title": tokens_title, "cost": cost, "cost_title": cost_title}


def tokens_words(count: int) -> str:
    """A token count that fits a narrow cell: '950', '4.5k', '218k', '1.5M' (money.js ``tokensWords``)."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        k = count / 1000
        return f"{number(_half_up(k))}k" if k < 10 else f"{int(k + 0.5):,}k"  # halves up, as money.js
    return big_number(count)

"""Words for times, numbers, evictions and lifecycles: the one home of the dashboard's wording."""

from __future__ import annotations

from datetime import timedelta

from tests.support.factories import BASE_TIME, usage
from usermetrics import humanize


def test_humanize_durations_ago_and_lifecycle():
    now = BASE_TIME
    assert humanize.duration_words(45) == "45 s"
    assert humanize.duration_words(12 * 60 + 5) == "12 min"
    assert humanize.duration_words(3 * 3600 + 5 * 60) == "3 h 5 min"
    assert humanize.duration_words(2 * 86400 + 3 * 3600) == "2 d 3 h"
    assert humanize.ago(now - timedelta(minutes=3, seconds=10), now) == "3 min ago"
    assert humanize.ago(now - timedelta(hours=3, minutes=5), now) == "3 h ago"
    assert humanize.ago(now + timedelta(seconds=5), now) == "just now"
    idle = usage("a", minutes_ago=12)
    five = 300.0
    assert humanize.lifecycle_words(idle, now, stuck_after=five) == "idle for 12 min"
    due = idle.session.last_activity + timedelta(minutes=30)
    assert humanize.lifecycle_words(idle, now, due, stuck_after=five) == "idle for 12 min, evicted in about 18 min"
    due_now = now - timedelta(seconds=1)
    assert humanize.lifecycle_words(idle, now, due_now, stuck_after=five) == "idle for 12 min, due for eviction"
    busy = usage("b", active=2, minutes_ago=0)
    assert humanize.lifecycle_words(busy, now, stuck_after=five) == "active with 2 in flight"
    stuck = usage("c", active=1, minutes_ago=5)
    assert (
        humanize.lifecycle_words(stuck, now, stuck_after=five)
        == "active with 1 in flight, no activity for 5 min (stuck?)"
    )
    # Below the stuck flag's threshold the words do not call it stuck either.
    assert humanize.lifecycle_words(stuck, now, stuck_after=360.0) == "active with 1 in flight"


def test_humanize_eviction_words():
    assert humanize.eviction_words(18 * 60 + 30) == "evicted in about 18 min"
    assert humanize.eviction_words(59) == "evicted in under a minute"
    assert humanize.eviction_words(0) == humanize.eviction_words(-5) == "due for eviction"


def test_humanize_numbers_rates_and_names():
    assert humanize.number(12.5) == "12.5" and humanize.number(3.0) == "3" and humanize.number(0.071) == "0.07"
    assert humanize.rates_words(12.5, 0.032, 140.0) == {
        "requests_per_min": "12.5",
        "error_rate": "3.2 %",
        "latency_ms": "140 ms",
        "p95_ms": humanize.NO_VALUE,
    }
    assert humanize.rates_words(0.0, None, None)["error_rate"] == humanize.NO_VALUE
    assert humanize.user_display("3f2a", {"3f2a": "Ada"}) == "Ada (3f2a)"
    assert humanize.user_display("3f2a", {}) == "3f2a"


def test_humanize_big_numbers_fit_a_card_and_latency_picks_its_unit():
    assert humanize.big_number(9007199254740993) == "9.0e+15"  # not "9007199254..."
    assert [humanize.big_number(n) for n in (812, 12345, 1_234_567, 999_999_999, 4.5e12)] == [
        "812",
        "12,345",
        "1.2M",
        "1B",
        "4.5T",
    ]
    assert humanize.latency_fit(3.3306690738e300) == "3.3e+297 s"  # not "3.3306690738e300 ms"
    assert [humanize.latency_fit(v) for v in (206.99, 1612.3, 185_000)] == ["206.99 ms", "1.61 s", "3 min"]
    assert [humanize.bytes_words(v) for v in (812, 1843, 3_880_000)] == ["812 B", "1.8 KiB", "3.7 MiB"]


def test_humanize_percentile_and_count_words_say_no_value_without_a_companion():
    assert humanize.percentile_words(206.99) == "206.99 ms" and humanize.percentile_words(1610.0) == "1.61 s"
    assert humanize.percentile_words(None) == humanize.NO_VALUE
    assert humanize.figure_count(0) == "0" and humanize.figure_count(None) == humanize.NO_VALUE


def test_humanize_rates_words_say_the_windows_p95():
    assert humanize.rates_words(1.0, 0.0, 120.0, 147.5)["p95_ms"] == "147.5 ms"
    assert humanize.rates_words(1.0, 0.0, 120.0)["p95_ms"] == humanize.NO_VALUE  # no companion


def test_humanize_money_words_fit_fractions_of_a_cent_and_cost_words_say_what_is_left_out():
    words = [humanize.money_words(x, "USD") for x in (0, 0.5, 0.0123, 0.000042, 1234.567)]
    assert words == ["$0.00", "$0.50", "$0.01", "$0.000042", "$1,235"]
    assert humanize.money_words(0.0031, "CHF") == "0.0031 CHF"  # a code without a symbol: written after
    cost = {"currency": "EUR", "total": 1.5, "unpriced": ["b", "c"], "by_model": {"a": 1.5, "b": None, "c": None}}
    assert humanize.cost_words(cost) == "\u20ac1.50 + 2 unpriced models"
    one = {**cost, "unpriced": ["b"], "by_model": {"a": 1.5, "b": None}}
    assert humanize.cost_words(one).endswith("+ 1 unpriced model")
    assert humanize.cost_words({**cost, "by_model": {"b": None, "c": None}}) == humanize.NO_PRICE


def test_humanize_money_and_token_words_round_halves_up_as_money_js():
    # Python's format and round() take a half to even, the script's toFixed and Math.round up: the page said
    # "$0.12" and "12k" for what the live cells then wrote "$0.13" and "13k" (node printed the script's words).
    money = [humanize.money_words(x, "USD") for x in (0.125, 0.375, 100.5, 102.5, 2.675, 0.00125)]
    assert money == ["$0.13", "$0.38", "$101", "$103", "$2.67", "$0.0013"]
    assert [humanize.tokens_words(n) for n in (2250, 12500, 2350, 999_499)] == ["2.3k", "13k", "2.4k", "999k"]
    assert humanize.money_words(1e30, "USD").startswith("$1,000,000,000,000,000,0")  # any float: no Decimal error

"""The price table: parsing (a wrong entry refused with its reason) and costs (cached and reasoning counted once)."""

from __future__ import annotations

import pytest

from usermetrics.prices import Price, PriceTable, price_table_parse

# calls, prompt, completion, cached, reasoning, total
USAGE = (3, 1_000_000, 200_000, 400_000, 50_000, 1_200_000)


def test_price_cost_charges_cached_prompt_tokens_at_the_cached_price_and_reasoning_once():
    price = Price(prompt=2.5, completion=10.0, cached=1.25)
    # 600k uncached x 2.5 + 400k cached x 1.25 + 200k completion (reasoning inside) x 10, per million
    assert price.cost(USAGE) == pytest.approx(1.5 + 0.5 + 2.0)


def test_price_cost_never_charges_negative_prompt_tokens_when_cached_exceeds_prompt():
    assert Price(2.0, 0.0, 1.0).cost((1, 10, 0, 30, 0, 10)) == pytest.approx(10 * 1.0 / 1e6)


def test_price_table_cost_names_the_models_without_a_price_and_adds_only_the_priced():
    table = price_table_parse({"a": {"prompt": 1, "completion": 2}}, "usd")
    cost = table.cost([("a", (1, 1_000_000, 1_000_000, 0, 0, 2_000_000)), ("b", (1, 5, 5, 0, 0, 10))])
    assert table.currency == "USD"
    assert cost.total == pytest.approx(3.0)
    assert cost.by_model == (("a", pytest.approx(3.0)), ("b", None))
    assert cost.unpriced == ("b",) and not cost.complete
    assert PriceTable().cost([]).complete


def test_price_table_parse_reads_json_defaults_cached_to_the_prompt_price():
    table = price_table_parse('{"m": {"prompt": "0.5", "completion": 1.5}}')
    assert table.price_of("m") == Price(0.5, 1.5, 0.5, "USD")
    assert price_table_parse("").prices == {}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{not json", "JSON"),
        ([1, 2], "a dict of model names"),
        ({"m": 3}, "must be a dict"),
        ({"m": {"prompt": 1}}, "needs prompt and completion"),
        ({"m": {"prompt": 1, "completion": "x"}}, "not a number"),
        ({"m": {"prompt": -1, "completion": 1}}, "at or above 0"),
        ({"m": {"prompt": 1, "completion": float("nan")}}, "at or above 0"),
        ({"m": {"prompt": 1, "completion": 1, "currency": "EUR"}}, "in EUR, the table's currency is USD"),
        ({"m": {"prompt": 1, "completion": 1, "input": 2}}, "unknown keys: input"),
    ],
)
def test_price_table_parse_refuses_a_wrong_entry_saying_why(value, words):
    with pytest.raises(ValueError, match=words):
        price_table_parse(value)


def test_price_table_with_prices_lets_the_new_price_win():
    table = price_table_parse({"a": {"prompt": 1, "completion": 1}, "b": {"prompt": 2, "completion": 2}})
    merged = table.with_prices({"a": Price(9, 9, 9)})
    assert merged.price_of("a") == Price(9, 9, 9) and merged.price_of("b") == Price(2, 2, 2)

"""Tokens and cost in the history: the column's bytes, deltas across resets and lives, prices at the time of use,
unpriced models, roll-ups that sum exactly, and windows over raw and rolled-up data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.clock import utcnow
from usermetrics.extras import Extras
from usermetrics.history.ended import ended_select
from usermetrics.history.rollup import rollup
from usermetrics.history.spend import fleet_tokens, top_users, window_tokens, window_totals
from usermetrics.history.tokens import NANO, LlmCumulative, TokenSum, decode, encode, llm_change
from usermetrics.models import LlmModel, TotalsSample, UserHourly, UserSample
from usermetrics.pricing import price_table_forget
from usermetrics.services.spend import ended_window_order

# gpt: 1 per million prompt tokens, 2 per million completion; "free" has no price.
PRICES = {"PRICES": {"gpt": {"prompt": 1, "completion": 2}}}
DEARER = {"PRICES": {"gpt": {"prompt": 10, "completion": 20}}}


@pytest.fixture(autouse=True)
def _prices():
    price_table_forget()
    with override_settings(USERMETRICS=PRICES):
        yield
    price_table_forget()


def u(calls: int, prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> tuple[int, ...]:
    return (calls, prompt, completion, cached, reasoning, prompt + completion)


def x(*, tools: int = 0, **models: tuple[int, ...]) -> Extras:
    return Extras(llm=tuple(models.items()), tool_calls=tools)


def _warm(rec):
    rec.record(snapshot(T0 - MIN, []))  # the recorder has started: users born later count from zero


def _latest(user_id: str = "a") -> UserSample:
    return UserSample.objects.filter(life__user_id=user_id).order_by("-ts").first()


def _named(row: UserSample | UserHourly | TotalsSample) -> TokenSum:
    return decode(row.llm, row.d_cost).named(dict(LlmModel.objects.values_list("id", "name")))


def test_tokens_column_round_trips_and_is_small():
    raw = encode([(1, u(3, 1200, 300)), (2, u(1, 50, 7))], 4, 57)
    back = decode(raw, 99)
    assert back.by_model == {1: list(u(3, 1200, 300)), 2: list(u(1, 50, 7))}
    assert (back.tool_calls, back.unpriced, back.cost_nano) == (4, 57, 99)
    assert len(raw) <= 20 and encode([], 0, 0) == b"" and decode(b"").total == 0


@pytest.mark.parametrize("raw", [b"\x00", b"\x00\x00\x01\x02", b"\x00\x00\x01\x80"])
def test_tokens_column_refuses_bytes_it_did_not_write(raw):
    with pytest.raises(ValueError):
        decode(raw)


def test_tokens_change_is_never_negative_a_reset_counts_from_zero():
    old = LlmCumulative((("gpt", u(2, 100, 10)), ("b", u(1, 5, 5))), 3)
    new = LlmCumulative((("gpt", u(3, 150, 20)), ("c", u(1, 1, 1))), 5)
    assert llm_change(new, old) == LlmCumulative((("gpt", u(1, 50, 10)), ("c", u(1, 1, 1))), 2)
    restarted = LlmCumulative((("gpt", u(1, 10, 1)),), 1)  # a worker's new builder: counts from zero
    assert llm_change(restarted, old) == restarted


@pytest.mark.django_db
def test_tokens_each_sample_holds_its_change_and_its_cost_then():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=1)], extras={"a": x(gpt=u(1, 1000, 100), tools=2)}))
    first = _latest()
    # From zero in a life born while we watch: 1,000 x 1 + 100 x 2 per million.
    assert (first.d_tokens, first.d_cost) == (1100, 1200 * NANO // 10**6)
    assert _named(first).by_model == {"gpt": list(u(1, 1000, 100))} and _named(first).tool_calls == 2
    rec.record(snapshot(T0 + MIN, [usage("a", total=2)], extras={"a": x(gpt=u(2, 3000, 300), tools=2)}))
    second = _latest()
    assert (second.d_tokens, second.d_cost, _named(second).tool_calls) == (2200, 2400 * NANO // 10**6, 0)
    totals = TotalsSample.objects.get(ts=T0 + MIN)
    assert (totals.d_tokens, totals.d_cost) == (2200, second.d_cost)


@pytest.mark.django_db
def test_tokens_a_price_change_between_samples_does_not_rewrite_the_past():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=1)], extras={"a": x(gpt=u(1, 1_000_000, 0))}))
    with override_settings(USERMETRICS=DEARER):
        price_table_forget()
        rec.record(snapshot(T0 + MIN, [usage("a", total=2)], extras={"a": x(gpt=u(2, 2_000_000, 0))}))
    costs = list(UserSample.objects.order_by("ts").values_list("d_cost", flat=True))
    assert costs == [1 * NANO, 10 * NANO]  # each million at the price in force when it was used
    assert window_tokens(window=timedelta(minutes=5), user_ids=["a"], now=T0 + MIN)["a"].cost == 11.0


@pytest.mark.django_db
def test_tokens_of_unpriced_models_are_counted_and_never_costed():
    rec = recorder()
    _warm(rec)
    users = [usage("a", total=1), usage("b", total=1)]
    extras = {"a": x(gpt=u(1, 1_000_000, 0), free=u(1, 400, 100)), "b": x(free=u(2, 40, 10))}
    rec.record(snapshot(T0, users, extras=extras))
    sums = window_tokens(window=timedelta(minutes=5), user_ids=["a", "b", "nobody"], now=T0)
    assert (sums["a"].cost, sums["a"].unpriced, sums["a"].total, sums["a"].pricing) == (1.0, 500, 1_000_500, "partly")
    assert (sums["b"].cost, sums["b"].unpriced, sums["b"].pricing) == (0.0, 50, "unpriced")
    assert "nobody" not in sums
    doc = sums["a"].as_dict()
    assert doc["by_model"]["free"]["prompt_tokens"] == 400 and doc["prompt_tokens"] == 1_000_400
    assert doc["completion_tokens"] == 100 and doc["llm_calls"] == 2 and doc["unpriced_tokens"] == 500


@pytest.mark.django_db
def test_tokens_across_resets_and_new_lives_never_go_negative():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=5)], extras={"a": x(gpt=u(5, 500, 50))}))
    # One worker's builder started over (counts went backwards, requests did not): a new count from zero.
    rec.record(snapshot(T0 + MIN, [usage("a", total=6)], extras={"a": x(gpt=u(1, 100, 10))}))
    assert _latest().d_tokens == 110
    # Evicted and created again: a new life, its first sample from zero.
    rec.record(snapshot(T0 + 2 * MIN, [usage("a", total=1, created=T0)], extras={"a": x(gpt=u(1, 7, 3))}))
    assert _latest().d_tokens == 10 and _latest().life.life == 2
    assert window_totals(window=timedelta(minutes=10), now=T0 + 2 * MIN)["a"][0] == 550 + 110 + 10
    assert all(n >= 0 for n in UserSample.objects.values_list("d_tokens", flat=True))


@pytest.mark.django_db
def test_tokens_after_a_restart_the_first_sample_is_a_baseline():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=1)], extras={"a": x(gpt=u(1, 100, 10))}))
    again = recorder()  # a new producer: the open life goes on, the base of its tokens is not stored
    again.record(snapshot(T0 + MIN, [usage("a", total=2)], extras={"a": x(gpt=u(2, 200, 20))}))
    assert (_latest().d_tokens, _latest().llm) == (None, b"")
    again.record(snapshot(T0 + 2 * MIN, [usage("a", total=3)], extras={"a": x(gpt=u(3, 300, 30))}))
    assert _latest().d_tokens == 110


@pytest.mark.django_db
def test_tokens_users_without_companions_store_none():
    rec = recorder()
    _warm(rec)
    rec.record(snapshot(T0, [usage("a", total=3), usage("b", total=3)], extras={"b": x()}))
    a, b = _latest("a"), _latest("b")
    assert (a.llm, a.d_tokens, a.d_cost) == (None, None, None)
    assert (bytes(b.llm), b.d_tokens) == (b"", None)  # a companion, no LLM call yet
    sums = window_tokens(window=timedelta(minutes=5), user_ids=["a", "b"], now=T0)
    assert "a" not in sums and sums["b"].total == 0 and sums["b"].pricing == "priced"


@pytest.mark.django_db
def test_tokens_rollup_sums_exactly_and_windows_span_raw_and_rolled_up_data():
    rec = recorder()
    _warm(rec)
    llm = [0, 0, 0]
    steps = [T0 + i * 10 * MIN for i in range(10)]  # 12:00 .. 13:30: one complete hour and a half
    for i, ts in enumerate(steps):
        llm = [llm[0] + 1, llm[1] + 1000 + i, llm[2] + 33 * i]
        extras = {"a": x(gpt=u(*llm), free=u(i + 1, i, 0), tools=i)}
        rec.record(snapshot(ts, [usage("a", total=i + 1)], extras=extras))
    now = T0 + timedelta(hours=1, minutes=35)
    window = timedelta(hours=2)
    raw = window_tokens(window=window, user_ids=["a"], now=now)["a"]
    raw_fleet = fleet_tokens(window=window, now=now)
    assert rollup(now=now) == 2  # 11:00 (the warm-up) and 12:00 rolled up
    hour = UserHourly.objects.get()
    in_hour = UserSample.objects.filter(ts__lt=T0 + timedelta(hours=1))
    assert hour.d_cost == sum(in_hour.values_list("d_cost", flat=True))
    assert hour.d_tokens == sum(in_hour.values_list("d_tokens", flat=True))
    UserSample.objects.filter(ts__lt=T0 + timedelta(hours=1)).delete()  # the window now reads the roll-up there
    TotalsSample.objects.filter(ts__lt=T0 + timedelta(hours=1)).delete()
    rolled = window_tokens(window=window, user_ids=["a"], now=now)["a"]
    assert rolled.as_dict() == raw.as_dict()
    assert rolled.cost_nano == raw.cost_nano and rolled.total == llm[1] + llm[2] + 9  # free: its last count
    assert fleet_tokens(window=window, now=now).as_dict() == raw_fleet.as_dict() == raw.as_dict()
    assert window_totals(window=window, now=now)["a"] == (raw.total, raw.cost_nano)


@pytest.mark.django_db
def test_tokens_top_users_rank_by_cost_or_tokens():
    rec = recorder()
    _warm(rec)
    users = [usage(n, total=1) for n in "abc"]
    extras = {
        "a": x(gpt=u(1, 1000, 0)),
        "b": x(gpt=u(1, 3000, 0)),
        "c": x(free=u(1, 90_000, 0)),  # the most tokens, no cost
    }
    rec.record(snapshot(T0, users, extras=extras))
    top = top_users(window=timedelta(minutes=5), now=T0, by=("cost", "tokens"), limit=2)
    assert [uid for uid, _ in top["cost"]] == ["b", "a"]  # c's tokens cost nothing known
    assert top["cost"][0][1].total == 3000
    assert [uid for uid, _ in top["tokens"]] == ["c", "b"]


@pytest.mark.django_db
def test_tokens_ended_users_order_by_their_windows_cost():
    now = utcnow()
    rec = recorder()
    rec.record(snapshot(now - 3 * MIN, []))
    users = [usage(n, total=1) for n in "abc"]
    spent = {"a": x(gpt=u(1, 1000, 0)), "b": x(gpt=u(1, 5000, 0)), "c": x()}
    rec.record(snapshot(now - 2 * MIN, users, extras=spent))
    rec.record(snapshot(now - MIN, []))  # all three left
    pks = ended_select(sort="-w_cost", now=now)  # the database leaves the user-id order
    by_cost = ended_window_order(pks, sort="-w_cost", window="1h")
    names = dict(UserSample.objects.values_list("life_id", "life__user_id"))
    assert [names[pk] for pk in by_cost] == ["b", "a", "c"]  # c: no tokens, last
    assert [names[pk] for pk in ended_window_order(pks, sort="w_cost", window="1h")] == ["a", "b", "c"]


@pytest.mark.django_db
def test_tokens_model_names_with_nul_or_past_the_column_are_stored_and_read_back():
    # NAT allows any step name; PostgreSQL's text cannot hold NUL: the write failed, and with it every refresh
    # in which that model's user called it (everyone's samples lost), while SQLite stored it.
    rec = recorder()
    _warm(rec)
    odd, long, escapes = "a\x00b", "m" * 254 + "\x00", "\uffff" * 300
    extras = {"a": x(**{odd: u(1, 10, 1)}), "b": x(**{long: u(1, 20, 2)}), "c": x(**{escapes: u(1, 30, 3)})}
    rec.record(snapshot(T0, [usage(n, total=1) for n in "abc"], extras=extras))
    sums = window_tokens(window=timedelta(minutes=5), user_ids=["a", "b", "c"], now=T0)
    assert list(sums["a"].by_model) == [odd]
    assert list(sums["b"].by_model) == ["m" * 254]  # cut to the column without half an escape
    assert list(sums["c"].by_model) == ["\uffff" * 127]
    assert all(len(name) <= 255 for name in LlmModel.objects.values_list("name", flat=True))

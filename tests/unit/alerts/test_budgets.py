"""Budget alerts: a user's cost or tokens over a window, the fleet's cost in the last hour; fire and resolve."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.test import override_settings

from tests.support.alert_helpers import notice_kinds, reading_at, rule_set
from tests.support.factories import BASE_TIME
from tests.support.history_helpers import recorder, snapshot, usage
from usermetrics.alerts.engine import SPEND_EVERY, AlertEngine
from usermetrics.alerts.incidents import Book
from usermetrics.alerts.messages import notice_message
from usermetrics.alerts.rules import KINDS, THRESHOLD_KINDS, Reading, RuleSpec
from usermetrics.conf import get_config
from usermetrics.extras import Extras
from usermetrics.history.tokens import NANO
from usermetrics.models import AlertKind, AlertRule, Incident
from usermetrics.pricing import price_table_forget

COST = RuleSpec(
    id=1, name="budget", kind="user_cost", severity="warning", threshold=5.0, window="24h", for_seconds=60,
    clear_seconds=30,
)  # fmt: skip
TOKENS = RuleSpec(id=2, name="tokens", kind="user_tokens", severity="warning", threshold=1000, window="1h")
FLEET = RuleSpec(id=3, name="fleet", kind="fleet_cost_per_hour", severity="critical", threshold=50.0)


def reading(at: float, *, spend=None, fleet=None) -> Reading:
    return reading_at(at, spend=spend or {}, fleet_hour_cost=fleet)


def test_budgets_user_cost_reads_its_window_fires_after_for_and_does_not_flap():
    book = Book()
    over = {"24h": {"ada": (10, 6 * NANO), "bob": (10, 1 * NANO)}, "1h": {"ada": (10, 9 * NANO)}}
    edge = {"24h": {"ada": (10, int(4.8 * NANO))}}  # below 5, above the clear level (4.5)
    timeline = ((0, over), (30, over), (60, over), (90, edge))
    steps = [book.step([COST], reading(at, spend=spend), []) for at, spend in timeline]
    assert [notice_kinds(s) for s in steps] == [[], [], [("firing", ["ada"])], []]
    assert (
        notice_message(steps[2].notices[0], labels={}, first=5).title
        == "[WARNING] budget: ada is over the cost budget: $6.00 in 24h (budget $5.00)"
    )
    assert book.tracked[1]["ada"].value == 4.8  # still firing at 4.8: above the clear level
    later = [book.step([COST], reading(at, spend={}), []) for at in (150, 180)]  # clear for 30 s: resolved
    assert [notice_kinds(s) for s in later] == [[], [("resolved", ["ada"])]]


def test_budgets_user_tokens_and_fleet_cost_per_hour():
    book = Book()
    step = book.step([TOKENS, FLEET], reading(0, spend={"1h": {"ada": (1500, 0), "bob": (900, 0)}}, fleet=70.0), [])
    assert sorted(notice_kinds(step)) == [("firing", [""]), ("firing", ["ada"])]
    step = book.step([TOKENS, FLEET], reading(10, spend={"1h": {}}, fleet=40.0), [])  # 40 < 45: clear
    assert sorted(notice_kinds(step)) == [("resolved", [""]), ("resolved", ["ada"])]
    assert KINDS["fleet_cost_per_hour"].values(FLEET, reading(0)) == {}  # no history: nothing to read


def test_budgets_kinds_are_offered_with_thresholds_and_disabled_defaults():
    assert {"user_cost", "user_tokens", "fleet_cost_per_hour"} <= {v for v, _ in AlertKind.choices} == set(KINDS)
    assert {"user_cost", "user_tokens", "fleet_cost_per_hour"} <= THRESHOLD_KINDS
    defaults = {r.kind: r for r in get_config().alerts.rules}
    assert defaults["user_cost"].window == "24h" and not defaults["user_cost"].enabled
    assert defaults["user_tokens"].window == "1h" and defaults["fleet_cost_per_hour"].threshold == 50.0


@pytest.mark.django_db
def test_budgets_an_existing_database_gets_the_default_budget_rules_once():
    AlertRule.objects.filter(kind__in=["user_cost", "user_tokens", "fleet_cost_per_hour"]).delete()
    seed = import_module("usermetrics.migrations.0009_history_tokens").rules_seed
    seed(django_apps, None)
    seed(django_apps, None)  # by name, once
    rows = AlertRule.objects.filter(kind__in=["user_cost", "user_tokens", "fleet_cost_per_hour"]).order_by("name")
    assert [(r.name, r.window, r.enabled) for r in rows] == [
        ("fleet-cost-per-hour", "1h", False),
        ("user-cost", "24h", False),
        ("user-tokens", "1h", False),
    ]


@pytest.mark.django_db
@pytest.mark.usefixtures("seeded_rules")
def test_budgets_engine_reads_the_history_fires_and_resolves_when_the_spend_leaves_the_window():
    price_table_forget()
    with override_settings(USERMETRICS={"PRICES": {"gpt": {"prompt": 10, "completion": 10}}}):
        rec = recorder()
        t0 = BASE_TIME
        rec.record(snapshot(t0 - timedelta(minutes=1), []))
        spent = {"ada": Extras(llm=(("gpt", (1, 600_000, 0, 0, 0, 600_000)),))}  # $6
        rec.record(snapshot(t0, [usage("ada", total=1)], extras=spent))
        rule_set("user-cost", enabled=True, threshold=5.0, window="1h", for_seconds=0, clear_seconds=0)
        rule_set("fleet-cost-per-hour", enabled=True, threshold=5.0, for_seconds=0, clear_seconds=0)
        engine = AlertEngine(get_config().alerts)
        try:
            step = engine.evaluate(reading(60))
            assert sorted(notice_kinds(step)) == [("firing", [""]), ("firing", ["ada"])]
            # The history is read at most every SPEND_EVERY; an hour later the spending left both windows.
            later = 3600 + SPEND_EVERY.total_seconds() + 60
            step = engine.evaluate(reading(later))
            assert sorted(notice_kinds(step)) == [("resolved", [""]), ("resolved", ["ada"])]
            assert Incident.objects.filter(closed_at__isnull=False).count() == 2
        finally:
            engine.courier.stop()
    price_table_forget()


def test_budgets_two_rules_resolving_together_each_name_their_own_subjects():
    book = Book()
    cost = RuleSpec(id=1, name="budget", kind="user_cost", severity="warning", threshold=5.0, window="1h")
    book.step([cost, FLEET], reading(0, spend={"1h": {"ada": (1, 6 * NANO)}}, fleet=60.0), [])
    step = book.step([cost, FLEET], reading(10, spend={"1h": {}}), [])
    assert sorted((n.rule.name, [s for s, _ in n.subjects]) for n in step.notices) == [
        ("budget", ["ada"]),
        ("fleet", [""]),
    ]


def test_budgets_notifications_say_amounts_in_the_currency_not_rounded_to_whole_units():
    # The fleet's cost was written as a count ("cost in the last hour: 0 (threshold 0.3)" for 0.4 USD), and a
    # user's budget notice said neither the amount, the window nor the budget.
    fleet = RuleSpec(id=3, name="fleet", kind="fleet_cost_per_hour", severity="critical", threshold=0.3)
    step = Book().step([fleet, TOKENS], reading(0, spend={"1h": {"ada": (1500, 0), "bob": (2000, 0)}}, fleet=0.4), [])
    titles = sorted(notice_message(n, labels={"ada": "Ada"}, first=5).title for n in step.notices)
    assert titles == [
        "[CRITICAL] fleet: cost in the last hour: $0.40 (threshold $0.30)",
        "[WARNING] tokens: 2 users over the token budget (budget 1,000 in 1h)",
    ]
    one = Book().step([TOKENS], reading(0, spend={"1h": {"ada": (1500, 0)}}), [])
    assert notice_message(one.notices[0], labels={"ada": "Ada"}, first=5).title == (
        "[WARNING] tokens: Ada (ada) is over the token budget: 1,500 in 1h (budget 1,000)"
    )
    with override_settings(USERMETRICS={"CURRENCY": "CHF"}):
        step = Book().step([fleet], reading(0, fleet=62.5), [])
        assert notice_message(step.notices[0], labels={}, first=5).title == (
            "[CRITICAL] fleet: cost in the last hour: 62.50 CHF (threshold 0.30 CHF)"
        )

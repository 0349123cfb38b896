"""The NAT companions' alert kinds: a user's p95 latency over a threshold, a user saturated for a while."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps as django_apps
from usermetrics_nat.histogram import percentiles

from tests.support.alert_helpers import notice_kinds, reading_at, rule_set, settle
from tests.support.factories import BASE_TIME, ManualClock, StaticSource, usage
from tests.support.history_helpers import histogram, recorder, snapshot
from tests.support.history_helpers import usage as hist_usage
from usermetrics.alerts.incidents import Book
from usermetrics.alerts.messages import notice_message
from usermetrics.alerts.rules import KINDS, THRESHOLD_KINDS, Reading, RuleSpec
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.extras import Extras
from usermetrics.models import AlertKind, AlertRule
from usermetrics.publish.flag_tracker import FlagTracker

P95 = RuleSpec(
    id=1, name="slow", kind="user_latency_p95", severity="warning", threshold=1000, for_seconds=60, clear_seconds=30
)
SATURATED = RuleSpec(id=2, name="saturated", kind="user_saturated", severity="warning", for_seconds=60)


def reading(at: float, *, extras=None, window_p95=None) -> Reading:
    return reading_at(at, extras=extras or {}, window_p95=window_p95)


def test_rules_latency_p95_reads_the_window_fires_after_for_and_does_not_flap():
    book = Book()
    steps = [
        book.step([P95], reading(at, window_p95={"ada": p95, "bob": 10.0}), [])
        for at, p95 in ((0, 1500.0), (30, 1200.0), (60, 1100.0), (90, 950.0))
    ]
    assert [notice_kinds(s) for s in steps] == [[], [], [("firing", ["ada"])], []]  # 950: above the clear level (900)
    assert notice_message(steps[2].notices[0], labels={"ada": "Ada"}, first=5).title == (
        "[WARNING] slow: Ada (ada) is slow (p95 latency above the threshold)"
    )
    book.step([P95], reading(100, window_p95={"bob": 10.0}), [])  # no request in the window: clear
    assert notice_kinds(book.step([P95], reading(130, window_p95={}), [])) == [("resolved", ["ada"])]


def test_rules_latency_p95_without_history_reads_the_live_figure_of_the_life():
    slow = Extras(latency=histogram(*[2000.0] * 20))
    fast = Extras(latency=histogram(*[5.0] * 20))
    idle = Extras()  # reported by a companion, no request yet
    values = KINDS["user_latency_p95"].values(P95, reading(0, extras={"ada": slow, "bob": fast, "cy": idle}))
    assert set(values) == {"ada", "bob"} and values["ada"] > 1000 > values["bob"]
    # The window's figure, when the history gives one, wins over the live one.
    assert KINDS["user_latency_p95"].values(P95, reading(0, extras={"ada": slow}, window_p95={})) == {}


def test_rules_saturated_must_hold_continuously_for_its_duration():
    book = Book()
    busy = {"ada": Extras(queued=3, max_concurrency=8), "bob": Extras(queued=0, max_concurrency=8)}
    calm = {"ada": Extras(queued=0, max_concurrency=8)}
    timeline = ((0, busy), (40, calm), (50, busy), (100, busy), (110, busy))
    steps = [book.step([SATURATED], reading(at, extras=x), []) for at, x in timeline]
    # The queue emptied at 40: the clock started again at 50, so it fires at 110, not at 60.
    assert [notice_kinds(s) for s in steps] == [[], [], [], [], [("firing", ["ada"])]]
    assert book.tracked[2]["ada"].value == 3
    assert notice_message(steps[-1].notices[0], labels={}, first=5).title == (
        "[WARNING] saturated: ada is saturated (requests queued)"
    )


def test_rules_new_kinds_are_offered_with_their_thresholds_and_defaults():
    offered = {value for value, _ in AlertKind.choices}
    assert {"user_latency_p95", "user_saturated"} <= offered and offered == set(KINDS)
    assert "user_latency_p95" in THRESHOLD_KINDS and "user_saturated" not in THRESHOLD_KINDS
    defaults = {r.kind: r for r in get_config().alerts.rules}
    assert defaults["user_saturated"].enabled and defaults["user_saturated"].for_seconds == 120
    assert not defaults["user_latency_p95"].enabled and defaults["user_latency_p95"].threshold == 10000


@pytest.mark.django_db
def test_rules_an_existing_database_gets_the_new_default_rules_once():
    AlertRule.objects.filter(kind__in=["user_latency_p95", "user_saturated"]).delete()
    seed = import_module("usermetrics.migrations.0006_companion_extras").rules_seed
    seed(django_apps, None)
    seed(django_apps, None)  # by name, once
    names = sorted(AlertRule.objects.filter(kind__in=["user_latency_p95", "user_saturated"]).values_list("name"))
    assert names == [("user-latency-p95",), ("user-saturated",)]


class CompanionSource(StaticSource):
    """A static source whose users NAT companions report: ``queued`` per user id."""

    def __init__(self, name: str, users: list, queued: dict[str, int]) -> None:
        super().__init__(name, users)
        self.queued = queued

    def extras(self) -> dict[str, Extras]:
        return {u.user_id: Extras(queued=self.queued.get(u.user_id, 0), max_concurrency=8) for u in self.users}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("seeded_rules")
async def test_rules_saturated_end_to_end_through_the_producer(receiver, alerts_to, producer_with_alerts):
    r = receiver()
    alerts_to(r.url)
    await sync_to_async(rule_set)("user-saturated", for_seconds=60, clear_seconds=0)
    source = CompanionSource("nat", [usage("ada", active=9), usage("bob", active=1)], {"ada": 1})
    clock = ManualClock(BASE_TIME)
    producer = producer_with_alerts([source], clock=clock, flags=True)
    for _ in range(3):  # 0 s, 30 s, 60 s
        await producer.tick()
        await settle(producer)
        clock.advance(30)
    assert [m["title"] for m in r.received] == ["[WARNING] user-saturated: ada is saturated (requests queued)"]
    source.queued = {}
    await producer.tick()
    await settle(producer)
    assert [m["title"] for m in r.received][-1] == "[RESOLVED] user-saturated: ada is saturated (requests queued)"
    # The default p95 rule is off: the flag reads skip the histograms until a rule reads them.
    assert not producer.alerts.reads_percentiles and not producer.flag_tracker.percentiles
    await sync_to_async(rule_set)("user-latency-p95", enabled=True)
    await producer.tick()
    await settle(producer)
    await producer.tick()
    assert producer.alerts.reads_percentiles and producer.flag_tracker.percentiles


@pytest.mark.django_db(transaction=True)
async def test_rules_latency_p95_with_history_is_the_flag_windows_from_the_tracker():
    rec = recorder()
    now = utcnow()
    record = sync_to_async(rec.record)
    await record(snapshot(now - timedelta(hours=2), []))
    # A slow past, out of the flag window; fast requests inside it.
    slow, fast = [5000.0] * 50, [20.0] * 10
    await record(
        snapshot(now - timedelta(hours=1), [hist_usage("ada", total=50)], extras={"ada": Extras(histogram(*slow))})
    )
    late = {"ada": Extras(histogram(*slow, *fast))}
    await record(snapshot(now - timedelta(minutes=1), [hist_usage("ada", total=60)], extras=late))
    tracker = FlagTracker()
    try:
        assert tracker.latency_p95() is None  # not read yet: the live figure serves
        tracker._reader.submit(now)  # the read FlagTracker.flags runs, in the tracker's own thread
        await tracker._reader.flush()
        assert tracker.latency_p95() is None  # no rule reads percentiles: not summed, so not known (not "nobody")
        tracker.percentiles = True
        tracker._reader.submit(now)
        await tracker._reader.flush()
        window_p95 = tracker.latency_p95()
    finally:
        await tracker.aclose()
    assert window_p95 == {"ada": percentiles(histogram(*fast))[1]}
    assert KINDS["user_latency_p95"].values(P95, reading(0, extras=late, window_p95=window_p95))["ada"] < 1000
    assert KINDS["user_latency_p95"].values(P95, reading(0, extras=late))["ada"] > 1000  # the life's: slow

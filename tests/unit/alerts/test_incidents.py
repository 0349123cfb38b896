"""The alert state machine without a database: for-durations, hysteresis, grouping, reminders, silences."""

from __future__ import annotations

from datetime import timedelta

from tests.support.alert_helpers import notice_kinds
from tests.support.factories import BASE_TIME
from usermetrics.alerts.incidents import Book, SilenceSpec
from usermetrics.alerts.messages import notice_message
from usermetrics.alerts.rules import Reading, RuleSpec
from usermetrics.snapshot import SourceHealth, Totals


def reading(at: float, *, down=(), flags=None, users=0, origins=None) -> Reading:
    sources = [SourceHealth(name=n, kind="nat", state="down" if n in down else "ok") for n in ("nat-a", "nat-b")]
    totals = Totals(users=users, active=0, in_flight=0, requests=0, errors=0, avg_latency_ms=0.0, exit_stack=0)
    return Reading(
        now=BASE_TIME + timedelta(seconds=at),
        sources=sources,
        totals=totals,
        flags=flags or {},
        origins=origins or {},
    )


SOURCE_DOWN = RuleSpec(id=1, name="source-down", kind="source_down", severity="critical", for_seconds=60)
STUCK = RuleSpec(id=2, name="user-stuck", kind="user_stuck", severity="warning", remind_seconds=600)
TOTAL = RuleSpec(id=3, name="users-total", kind="users_total", severity="info", threshold=100, clear_seconds=30)


def test_alerts_incidents_fire_after_for_duration_once_and_resolve_once():
    book = Book()
    assert notice_kinds(book.step([SOURCE_DOWN], reading(0, down={"nat-b"}), [])) == []  # pending
    assert book.tracked[1]["nat-b"].state == "pending"
    assert notice_kinds(book.step([SOURCE_DOWN], reading(30, down={"nat-b"}), [])) == []
    step = book.step([SOURCE_DOWN], reading(60, down={"nat-b"}), [])
    assert notice_kinds(step) == [("firing", ["nat-b"])]
    assert book.counts.firing == 1 and book.counts.by_rule == {"source-down": 1} and book.counts.severity == 3
    for at in (62, 64, 600):  # still down: no second notification (no reminder configured)
        assert notice_kinds(book.step([SOURCE_DOWN], reading(at, down={"nat-b"}), [])) == []
    step = book.step([SOURCE_DOWN], reading(602), [])
    assert notice_kinds(step) == [("resolved", ["nat-b"])]
    assert book.counts.firing == 0 and book.incidents == {}
    assert notice_kinds(book.step([SOURCE_DOWN], reading(604), [])) == []


def test_alerts_incidents_a_blip_shorter_than_for_never_fires():
    book = Book()
    for at, down in ((0, {"nat-a"}), (30, {"nat-a"}), (40, set()), (50, {"nat-a"}), (100, {"nat-a"})):
        assert notice_kinds(book.step([SOURCE_DOWN], reading(at, down=down), [])) == []
    # The pending clock restarted at 50 when it came back at 40.
    assert notice_kinds(book.step([SOURCE_DOWN], reading(110, down={"nat-a"}), [])) == [("firing", ["nat-a"])]


def test_alerts_incidents_each_source_is_its_own_incident():
    book = Book()
    rule = RuleSpec(id=1, name="source-down", kind="source_down", severity="critical")
    assert notice_kinds(book.step([rule], reading(0, down={"nat-a"}), [])) == [("firing", ["nat-a"])]
    assert notice_kinds(book.step([rule], reading(2, down={"nat-a", "nat-b"}), [])) == [("firing", ["nat-b"])]
    assert book.counts.firing == 2
    assert notice_kinds(book.step([rule], reading(4, down={"nat-b"}), [])) == [("resolved", ["nat-a"])]


def test_alerts_incidents_users_group_into_one_notification_naming_the_first_few():
    book = Book()
    flags = {f"user-{i:04d}": ["stuck"] for i in range(1000)}
    step = book.step([STUCK], reading(0, flags=flags), [])
    assert len(step.notices) == 1 and step.notices[0].kind == "firing" and len(step.notices[0].subjects) == 1000
    message = notice_message(step.notices[0], labels={"user-0000": "Ada"}, first=5)
    assert message.title == "[WARNING] user-stuck: 1,000 users stuck"
    assert "Ada (user-0000), user-0001, user-0002, user-0003, user-0004 and 995 more." in message.body
    assert message.notify_type == "warning"
    # More users join the open incident quietly; the reminder names everyone still stuck.
    flags |= {"late": ["stuck"]}
    assert notice_kinds(book.step([STUCK], reading(10, flags=flags), [])) == []
    step = book.step([STUCK], reading(600, flags=flags), [])
    assert [(n.kind, len(n.subjects)) for n in step.notices] == [("reminder", 1001)]
    assert notice_message(step.notices[0], labels={}, first=5).title.startswith("[REMINDER] [WARNING] user-stuck")
    # Users clearing one by one say nothing until the last one: then one "resolved".
    assert notice_kinds(book.step([STUCK], reading(610, flags={"late": ["stuck"]}), [])) == []
    step = book.step([STUCK], reading(620, flags={}), [])
    assert notice_kinds(step) == [("resolved", ["late"])]
    assert "1,001 users fired in it" in notice_message(step.notices[0], labels={}, first=5).body


def test_alerts_incidents_count_hysteresis_on_the_edge_does_not_flap():
    book = Book()
    steps = [book.step([TOTAL], reading(t, users=u), []) for t, u in enumerate((101, 99, 101, 95, 91, 99, 100))]
    # Fired once at 101; falling to 99, 95, 91 stays above the clear level (90): never resolved.
    assert [notice_kinds(s) for s in steps] == [[("firing", [""])], [], [], [], [], [], []]
    assert (
        notice_message(steps[0].notices[0], labels={}, first=5).title
        == "[INFO] users-total: users: 101 (threshold 100)"
    )
    # At 90 or below it clears, but resolves only after 30 s of staying clear.
    assert notice_kinds(book.step([TOTAL], reading(10, users=90), [])) == []
    assert notice_kinds(book.step([TOTAL], reading(20, users=50), [])) == []
    assert notice_kinds(book.step([TOTAL], reading(25, users=95), [])) == []  # back above 90: the clear clock restarts
    assert notice_kinds(book.step([TOTAL], reading(30, users=80), [])) == []
    assert notice_kinds(book.step([TOTAL], reading(60, users=80), [])) == [("resolved", [""])]


def test_alerts_incidents_silences_mute_a_rule_a_user_or_a_source():
    until = BASE_TIME + timedelta(hours=1)
    flags = {"ada": ["stuck"], "bob": ["stuck"], "carl": ["stuck"]}
    origins = {"ada": ("nat-a",), "bob": ("nat-b",), "carl": ("nat-a", "nat-b")}

    def first(silences):
        step = Book().step([STUCK], reading(0, flags=flags, origins=origins), silences)
        return notice_kinds(step)

    assert first([SilenceSpec(2, "", "", BASE_TIME, until)]) == []
    assert first([SilenceSpec(None, "bob", "", BASE_TIME, until)]) == [("firing", ["ada", "carl"])]
    assert first([SilenceSpec(None, "", "nat-a", BASE_TIME, until)]) == [("firing", ["bob"])]
    assert first([SilenceSpec(1, "", "", BASE_TIME, until)]) == [("firing", ["ada", "bob", "carl"])]  # another rule
    assert first([SilenceSpec(2, "", "", BASE_TIME - timedelta(hours=2), BASE_TIME)]) == [
        ("firing", ["ada", "bob", "carl"])
    ]

    # A silenced incident still counts as firing (silenced); when the silence ends it notifies.
    book = Book()
    silence = [SilenceSpec(2, "", "", BASE_TIME, BASE_TIME + timedelta(seconds=60))]
    assert notice_kinds(book.step([STUCK], reading(0, flags=flags), silence)) == []
    assert book.counts.firing == 0 and book.counts.silenced == 1 and book.counts.by_rule == {"user-stuck": 3}
    assert notice_kinds(book.step([STUCK], reading(61, flags=flags), silence)) == [("firing", ["ada", "bob", "carl"])]


def test_alerts_incidents_a_silenced_incident_that_clears_says_nothing():
    book = Book()
    silence = [SilenceSpec(None, "", "", BASE_TIME, BASE_TIME + timedelta(hours=1))]
    assert notice_kinds(book.step([STUCK], reading(0, flags={"ada": ["stuck"]}), silence)) == []
    step = book.step([STUCK], reading(1), silence)
    assert notice_kinds(step) == [] and len(step.closed) == 1


def test_alerts_incidents_a_rule_switched_off_closes_its_incidents_quietly():
    book = Book()
    book.step([STUCK], reading(0, flags={"ada": ["stuck"]}), [])
    step = book.step([], reading(1, flags={"ada": ["stuck"]}), [])
    assert notice_kinds(step) == [] and len(step.closed) == 1 and book.incidents == {} and book.counts.firing == 0

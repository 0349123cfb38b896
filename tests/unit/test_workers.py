"""NAT workers' reports folded into one row per user: merged, applied once, shares ended without a false new life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from usermetrics_nat.histogram import BUCKETS
from usermetrics_nat.report import VERSION, Header, ModelUsage, UserExtras, WorkerIdentity, line_of

from tests.support.factories import BASE_TIME, usage
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.workers import Workers


def worker(pid: int) -> WorkerIdentity:
    """A NAT worker process on one host."""
    return WorkerIdentity(
        host="nat-1", pid=pid, started_at=datetime(2026, 12, 7, 9, tzinfo=UTC), nat_version="1.9.0", config="probe"
    )


A, B = worker(101), worker(102)


def header(who: WorkerIdentity, seq: int, *, full: bool = False, **changes: object) -> Header:
    """Report ``seq`` of worker ``who``."""
    return Header(
        v=VERSION,
        deployment=changes.pop("deployment", "nat"),
        worker=who,
        seq=seq,
        full=full,
        interval=2.0,
        sent_at=datetime(2026, 12, 7, 9, 0, seq, tzinfo=UTC),
        **changes,
    )


def record(user_id: str, *, requests: int, active: int = 0, created_minutes_ago: float = 10) -> PerUserResourceUsage:
    """A user's record as a worker sends it (aware UTC times)."""
    u = usage(user_id, requests=requests, active=active)
    return u.model_copy(
        update={
            "session": u.session.model_copy(update={"created_at": BASE_TIME - timedelta(minutes=created_minutes_ago)})
        }
    )


def line(
    user_id: str, *, requests: int, active: int = 0, queued: int = 0, bucket: int = 3, created: float = 10
) -> bytes:
    """A user's line: ``requests`` requests, all in one latency bucket."""
    extras = UserExtras(latency=[(bucket, requests)] if requests else [], queued=queued, max_concurrency=8)
    return line_of(0, record(user_id, requests=requests, active=active, created_minutes_ago=created), extras)


def test_workers_merge_a_user_across_workers_into_one_row():
    w = Workers("nat")
    assert w.apply(
        header(A, 1, full=True), [line("alice", requests=3, active=1, created=30), line("bob", requests=1)], 0
    )
    assert w.apply(header(B, 1, full=True), [line("alice", requests=2, queued=2, bucket=10, created=5)], 0)
    rows = {r.user_id: r for r in w.rows()}
    assert sorted(rows) == ["alice", "bob"]
    alice = rows["alice"]
    assert alice.requests.total_requests == 5 and alice.session.ref_count == 1
    assert alice.session.created_at == BASE_TIME - timedelta(minutes=30)  # the earliest
    x = w.extras()["alice"]
    assert x.latency[3] == 3 and x.latency[10] == 2 and sum(x.latency) == 5 and len(x.latency) == BUCKETS
    assert x.queued == 2 and x.max_concurrency == 16 and x.workers == ("nat-1:101", "nat-1:102")
    assert w.extras()["bob"].workers == ("nat-1:101",)


def test_workers_apply_a_report_once_and_keep_unchanged_users_as_they_were():
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=1), line("bob", requests=1)], 0)
    before = {r.user_id: r for r in w.rows()}
    assert w.apply(header(A, 2), [line("alice", requests=2)], 2)
    assert not w.apply(header(A, 2), [line("alice", requests=9)], 2)  # read again after a takeover
    assert not w.apply(header(A, 1, full=True), [line("alice", requests=9)], 2)
    after = {r.user_id: r for r in w.rows()}
    assert after["alice"].requests.total_requests == 2 and w.duplicates == 2
    assert after["bob"] is before["bob"]  # untouched: the very same record (the board reuses what it packed)
    # A full report whose lines did not change validates nothing again, and keeps the records.
    w.apply(header(A, 3, full=True), [line("alice", requests=2), line("bob", requests=1)], 4)
    assert {r.user_id: r for r in w.rows()} == after and w.rows()[0] is after["alice"]


def test_workers_skip_what_is_not_theirs_and_count_it():
    w = Workers("nat")
    assert not w.apply(header(A, 1, full=True, deployment="other"), [line("eve", requests=1)], 0)
    assert w.apply(header(A, 1, full=True), [b"{not json", line("alice", requests=1), b'{"e": 0}'], 0)
    assert [r.user_id for r in w.rows()] == ["alice"]
    assert w.skipped.by_kind == {"another deployment": 1, "a user line that does not validate": 2}


def test_workers_a_share_that_ends_keeps_its_counters_while_the_user_runs_elsewhere():
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=3, active=1, created=30), line("bob", requests=4)], 0)
    w.apply(header(B, 1, full=True), [line("alice", requests=2, created=5)], 0)
    w.rows()
    # NAT evicted alice in worker A: her requests there happened; her row must not go backwards.
    w.apply(header(A, 2, gone=[(0, "alice")]), [], 2)
    alice = {r.user_id: r for r in w.rows()}["alice"]
    assert alice.requests.total_requests == 5 and alice.session.ref_count == 0
    assert alice.session.created_at == BASE_TIME - timedelta(minutes=30)  # the same life, not a new one
    assert sum(w.extras()["alice"].latency) == 5 and w.extras()["alice"].workers == ("nat-1:102",)
    # When nothing of her runs any more, she leaves (and comes back as a new life if she returns).
    w.apply(header(B, 2, gone=[(0, "alice")]), [], 2)
    assert [r.user_id for r in w.rows()] == ["bob"] and "alice" not in w.extras()


def test_workers_a_silent_worker_ends_after_three_of_its_intervals():
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=3), line("bob", requests=1)], 0)
    w.apply(header(B, 1, full=True), [line("alice", requests=2)], 0)
    for now in (2.0, 4.0):
        w.apply(header(B, int(now), full=False), [], now)
    assert w.end_silent(6.0) == []  # A: 6 s without a report, three intervals of 2 s: not yet
    ended = w.end_silent(6.5)
    assert [x.identity.label for x in ended] == ["nat-1:101"]
    rows = {r.user_id: r for r in w.rows()}
    assert sorted(rows) == ["alice"] and rows["alice"].requests.total_requests == 5  # bob ran only on A
    assert [s["label"] for s in w.summary()] == ["nat-1:102", "nat-1:101"]
    assert [s["state"] for s in w.summary()] == ["ok", "ended"]
    # How long ago each was last heard of (the sources page's "last report"), at the source's clock.
    assert [s["silent_s"] for s in w.summary(7.0)] == [3.0, 7.0] and w.summary()[0]["silent_s"] is None


def test_workers_a_goodbye_ends_the_share_at_once():
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=3)], 0)
    w.apply(header(A, 2, bye=True), [], 1)
    assert w.rows() == [] and w.workers == {}
    assert not w.apply(header(A, 2, bye=True), [], 1)  # the goodbye read again: nothing


def test_workers_a_full_report_drops_the_users_it_no_longer_lists():
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=1), line("bob", requests=1)], 0)
    w.apply(header(A, 2, full=True), [line("alice", requests=1)], 2)
    assert [r.user_id for r in w.rows()] == ["alice"]


def test_workers_count_the_reports_that_never_arrived():
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=1)], 0)
    w.apply(header(A, 5), [line("alice", requests=4)], 8)
    assert w.summary()[0]["gaps"] == 3 and w.rows()[0].requests.total_requests == 4


def test_workers_add_a_users_llm_calls_per_model_across_workers_and_keep_an_ended_shares():
    def with_llm(user_id: str, llm: list[ModelUsage], tools: int) -> bytes:
        extras = UserExtras(latency=[(3, 1)], llm=llm, tool_calls=tools)
        return line_of(0, record(user_id, requests=1), extras)

    w = Workers("nat")
    a = [ModelUsage(m="model-a", calls=2, prompt=100, completion=20, cached=10, reasoning=5, total=125)]
    b = [
        ModelUsage(m="model-b", calls=1, prompt=7, completion=3, total=10),
        ModelUsage(m="model-a", calls=1, prompt=50, completion=5, total=55),
    ]
    w.apply(header(A, 1, full=True), [with_llm("alice", a, 1)], 0)
    w.apply(header(B, 1, full=True), [with_llm("alice", b, 2), line("bob", requests=1)], 0)
    w.rows()
    alice = w.extras()["alice"]
    assert dict(alice.llm) == {"model-a": (3, 150, 25, 10, 5, 180), "model-b": (1, 7, 3, 0, 0, 10)}
    assert alice.llm_total == (4, 157, 28, 10, 5, 190) and alice.tool_calls == 3
    llm = alice.as_dict()["llm"]
    assert (llm["calls"], llm["prompt_tokens"], llm["completion_tokens"], llm["total_tokens"]) == (4, 157, 28, 190)
    assert llm["by_model"]["model-b"] == {
        "calls": 1, "prompt_tokens": 7, "completion_tokens": 3, "cached_tokens": 0, "reasoning_tokens": 0,
        "total_tokens": 10,
    }  # fmt: skip
    assert w.extras()["bob"].llm == () and w.extras()["bob"].as_dict()["llm"]["total_tokens"] == 0
    # Worker A ends: the calls made there were made; alice's counts do not go backwards.
    w.apply(header(A, 2, bye=True), [], 2)
    w.rows()
    assert w.extras()["alice"].llm_total == (4, 157, 28, 10, 5, 190) and w.extras()["alice"].tool_calls == 3


def test_workers_a_worker_ended_for_silence_that_reports_again_is_not_counted_twice():
    """Its loop was blocked, or Redis away longer than three intervals: it comes back with its buffered reports."""
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=100, created=30), line("bob", requests=7)], 0)
    w.apply(header(B, 1, full=True), [line("alice", requests=10, created=5)], 0)
    w.apply(header(B, 2), [line("alice", requests=11, created=5)], 8)
    assert [x.identity.key for x in w.end_silent(8.0)] == [A.key]
    assert totals(w) == {"alice": 111}  # A's share frozen; bob ran only on A: he left
    w.apply(header(A, 2), [line("alice", requests=101, created=30)], 9)  # incremental: bob unchanged, not listed
    assert totals(w) == {"alice": 112, "bob": 7}
    assert not w.apply(header(A, 2), [line("alice", requests=999, created=30)], 9)  # its numbering goes on
    assert [x.identity.key for x in w.ended] == []  # running again, not listed as ended
    w.apply(header(A, 3, bye=True), [line("alice", requests=102, created=30)], 10)  # then it really stops
    assert totals(w) == {"alice": 113}


def test_workers_a_workflow_rebuilt_between_two_reports_keeps_the_ended_lifes_counts_while_the_user_runs_elsewhere():
    w = Workers("nat")
    w.apply(header(A, 1, full=True), [line("alice", requests=100, created=30), line("bob", requests=9, created=30)], 0)
    w.apply(header(B, 1, full=True), [line("alice", requests=50, created=20)], 0)
    assert totals(w) == {"alice": 150, "bob": 9}
    # NAT evicted alice's workflow on B and her next request built a new one: B lists her again, from 1.
    w.apply(header(B, 2), [line("alice", requests=1, created=0.01)], 2)
    rows = {r.user_id: r for r in w.rows()}
    assert rows["alice"].requests.total_requests == 151  # never backwards: the ended life's 50 stay
    assert rows["alice"].session.created_at == BASE_TIME - timedelta(minutes=30)
    assert sum(w.extras()["alice"].latency) == 151
    # bob's workflow on A rebuilt, and he runs nowhere else: a new life, from zero.
    w.apply(header(A, 2), [line("bob", requests=2, created=0.01)], 2)
    assert totals(w)["bob"] == 2


def totals(w: Workers) -> dict[str, int]:
    """Requests by user, as merged."""
    return {r.user_id: r.requests.total_requests for r in w.rows()}

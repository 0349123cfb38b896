"""NatBody: bodies cut by users as they stream in, reuse of unchanged users, other layouts, bounds."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.support.factories import USER, nat_body
from tests.support.machine import ROOT
from usermetrics.nat_body import MAX_USER_BYTES, MAX_WHOLE_BYTES, NatBody, SourceError


def user(uid: str, requests: int = 1, **extra: object) -> dict:
    """A user as NAT 1.9.0 writes it (naive local times)."""
    return {
        "user_id": uid,
        "session": {
            "created_at": "2026-11-25T15:00:48.133278",
            "last_activity": "2026-11-25T15:00:49.337082",
            "ref_count": 0,
            "is_active": False,
        },
        "requests": {"total_requests": requests, "active_requests": 0, "avg_latency_ms": 20.5, "error_count": 0},
        "memory": {"per_user_functions_count": 1, "per_user_function_groups_count": 0, "exit_stack_size": 2},
        **extra,
    }


def body(users: list[dict], *, compact: bool = True, indent: int | None = None, **extra: object) -> bytes:
    """A /monitor/users body: NAT's compact layout by default, json.dumps's when not ``compact``."""
    doc = {"timestamp": "2026-11-25T15:00:50.045158", "total_active_users": len(users), "users": users, **extra}
    separators = (",", ":") if compact and indent is None else None
    return json.dumps(doc, separators=separators, indent=indent).encode()


def whole(data: bytes) -> list:
    """The users as validating the whole body reads them (the reference)."""
    parser = NatBody(UTC)
    return parser.parse_whole(data).users


def fed(parser: NatBody, data: bytes, size: int) -> list:
    """The users of ``data`` fed in chunks of ``size`` bytes."""
    reader = parser.reader()
    for i in range(0, len(data), size):
        reader.feed(data[i : i + size])
    return reader.finish().users


@pytest.mark.parametrize("compact", [True, False])
def test_nat_body_cuts_by_users_in_any_chunking(compact):
    users = [user(f"u{i}", i) for i in range(6)]
    data = body(users, compact=compact)
    expected = whole(data)
    for size in [*range(1, 40), 97, 1000, len(data)]:
        parser = NatBody(UTC)
        assert fed(parser, data, size) == expected, size
        assert parser.whole_bodies == 0 and parser.validated == 6


def test_nat_body_reuses_unchanged_users_and_validates_the_rest():
    parser = NatBody(UTC)
    users = [user(f"u{i}") for i in range(5)]
    first = parser.read(body(users)).users
    users[2] = user("u2", requests=7)
    users.append(user("u5"))
    second = parser.read(body(users[1:])).users  # u0 left, u2 moved, u5 came
    assert [u.user_id for u in second] == ["u1", "u2", "u3", "u4", "u5"]
    assert second[0] is first[1] and second[2] is first[3] and second[3] is first[4]
    assert second[1].requests.total_requests == 7
    assert (parser.reused, parser.validated, parser.whole_bodies) == (3, 7, 0)
    # Times converted to UTC as they were read (the zone given: UTC).
    assert second[4].session.created_at == datetime(2026, 11, 25, 15, 0, 48, 133278, tzinfo=UTC)


def test_nat_body_keys_after_the_users_and_the_last_user_moving_up():
    parser = NatBody(UTC)
    users = [user("a"), user("b"), user("c")]
    parser.read(body(users, server_version="1.9.0", extra_list=[1, [2]]))
    again = parser.read(body([users[2], users[0]], server_version="1.9.1")).users
    assert [u.user_id for u in again] == ["c", "a"]
    assert (parser.validated, parser.whole_bodies) == (3, 0)  # "c" was the last, now first: reused


def test_nat_body_user_id_objects_nested_in_a_user_do_not_fool_the_cut():
    sneaky = user("x", extra=[{"user_id": "inner", "session": {}}, {"user_id": "inner2"}])
    data = body([user("a"), sneaky, user("b")])
    parser = NatBody(UTC)
    got = parser.read(data).users
    assert [u.user_id for u in got] == ["a", "x", "b"] and got == whole(data)
    assert parser.whole_bodies == 1  # the cut fell inside "x", so the body was validated whole


@pytest.mark.parametrize(
    "data",
    [
        body([user("a"), user("b")], indent=2),  # users on lines of their own
        body([user("only")]),  # one user: nothing to tell the separator from
        body([]),
        json.dumps(
            {"users": [user("a"), user("b")], "timestamp": "2026-11-25T15:00:50", "total_active_users": 2}
        ).encode(),
    ],
)
def test_nat_body_other_layouts_are_validated_whole(data):
    parser = NatBody(UTC)
    assert parser.read(data).users == whole(data)


def test_nat_body_errors_say_where():
    bad = user("b")
    bad["requests"]["total_requests"] = -1
    with pytest.raises(SourceError, match=r"1 error\(s\), first at users.1.requests.total_requests"):
        NatBody(UTC).read(body([user("a"), bad, user("c")]))
    with pytest.raises(SourceError, match="the body is not JSON"):
        NatBody(UTC).read(b'{"timestamp": nope')


def test_nat_body_refuses_a_user_over_the_bound_as_soon_as_it_is_read():
    reader = NatBody(UTC).reader()
    reader.feed(body([user("a"), user("b")])[:-2] + b',{"user_id":"c","junk":"')
    with pytest.raises(SourceError, match="a user's record is over 1024 KiB"):
        for _ in range(MAX_USER_BYTES // 65536 + 2):
            reader.feed(b"x" * 65536)


def test_nat_body_refuses_a_body_it_cannot_cut_past_the_whole_bound():
    reader = NatBody(UTC).reader()
    reader.feed(b'{"timestamp":"2026-11-25T15:00:50","total_active_users":0,"users":[],"junk":[')
    with pytest.raises(SourceError, match="must list its users the way NAT writes them"):
        for _ in range(MAX_WHOLE_BYTES // 65536 + 2):
            reader.feed(b"0," * 32768)


HOSTILE = """
import resource, sys
from datetime import UTC
from usermetrics.nat_body import NatBody, SourceError
kind = sys.argv[1]
chunk = (b"0," if kind == "numbers" else b"x") * 32768
head = b'{"timestamp":"2026-11-25T15:00:50","total_active_users":0,"users":[{"user_id":"a","junk":'
head += b"[" if kind == "numbers" else b'"'
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reader = NatBody(UTC).reader()
reader.feed(head)
sent = len(head)
try:
    while sent < 64 * 1024 * 1024:
        reader.feed(chunk)
        sent += len(chunk)
    reader.finish()
except SourceError:
    pass
print(sent, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


@pytest.mark.parametrize("kind", ["numbers", "string"])
def test_nat_body_hostile_64_mib_body_holds_little(kind):
    """A 64 MiB body of one endless user (a number array, a string) is refused early, holding a few MiB."""
    result = subprocess.run(
        [sys.executable, "-c", HOSTILE, kind], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    sent, grew = map(int, result.stdout.split())
    assert sent < 2 * MAX_WHOLE_BYTES  # it stopped reading: the caller stops the download there
    assert grew < 3 * MAX_WHOLE_BYTES


def test_nat_body_reuses_the_records_of_users_that_did_not_change():
    parser = NatBody(ZoneInfo("Europe/Berlin"))
    other = {**USER, "user_id": "other"}
    first = parser.read(nat_body(USER, other))
    moved = {**other, "requests": {**other["requests"], "total_requests": 2}}
    second = parser.read(nat_body(USER, moved, server_version="1.9.0"))
    assert second.users[0] is first.users[0]  # unchanged: the very same record, not validated again
    assert second.users[1] is not first.users[1] and second.users[1].requests.total_requests == 2
    assert (parser.reused, parser.validated) == (1, 3)
    # Converted to UTC as it was read: 15:00 in Berlin in November is 14:00 UTC.
    assert first.users[0].session.created_at == datetime(2026, 11, 25, 14, 0, 48, 133278, tzinfo=UTC)


def test_nat_body_tells_duplicate_records_of_one_user_apart():
    parser = NatBody(None)
    busy = {**USER, "session": {**USER["session"], "ref_count": 1, "is_active": True}}
    first = parser.read(nat_body(USER, busy))  # one user twice: NAT with an extra endpoint
    second = parser.read(nat_body(USER, busy))
    assert [u.session.ref_count for u in second.users] == [0, 1]
    assert second.users[0] is first.users[0] and second.users[1] is first.users[1]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"[1, 2]", "body"),
        (b"{not json", "not JSON"),
        (nat_body({**USER, "requests": {**USER["requests"], "total_requests": -1}}), "users.0.requests.total_requests"),
        (nat_body(USER, {"user_id": "x"}), "users.1.session"),
    ],
)
def test_nat_body_says_where_it_is_not_a_monitor_response(body, where):
    with pytest.raises(SourceError, match="not a PerUserMonitorResponse") as caught:
        NatBody(None).read(body)
    assert where in str(caught.value)

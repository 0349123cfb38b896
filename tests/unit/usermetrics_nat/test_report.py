"""A worker's report on the wire: one header line and a line per user, compressed; anything else is refused."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

import pytest
from usermetrics_nat.report import (
    VERSION,
    BadReport,
    Header,
    Line,
    UserExtras,
    WorkerIdentity,
    decode,
    encode,
    line_of,
)

from tests.support.factories import usage

WORKER = WorkerIdentity(
    host="nat-1", pid=42, started_at=datetime(2026, 12, 7, 9, tzinfo=UTC), nat_version="1.9.0", config="probe"
)


def header(**changes: object) -> Header:
    """A report header of ``WORKER`` (changed as given)."""
    fields = {
        "v": VERSION,
        "deployment": "nat",
        "worker": WORKER,
        "seq": 1,
        "full": True,
        "interval": 2.0,
        "sent_at": datetime(2026, 12, 7, 9, 0, 5, tzinfo=UTC),
    }
    return Header(**{**fields, **changes})


def test_report_round_trips_header_and_lines():
    extras = UserExtras(latency=[(3, 2), (10, 1)], queued=1, max_concurrency=8, wait_ms=1.5, run_ms=300.0)
    lines = [line_of(0, usage("alice", requests=3), extras), line_of(1, usage("bob"), UserExtras())]
    got_header, got_lines = decode(encode(header(gone=[(0, "carol")], dropped=2), lines))
    assert got_header.worker == WORKER and got_header.gone == [(0, "carol")] and got_header.dropped == 2
    assert got_lines == lines
    first = Line.model_validate_json(got_lines[0])
    assert first.e == 0 and first.u.user_id == "alice" and first.u.requests.total_requests == 3
    assert first.x == extras


def test_report_with_no_users_has_no_lines():
    assert decode(encode(header(full=False), []))[1] == []


def test_report_worker_key_tells_a_reused_pid_apart():
    again = WORKER.model_copy(update={"started_at": datetime(2026, 12, 7, 10, tzinfo=UTC)})
    assert WORKER.label == again.label == "nat-1:42"
    assert WORKER.key != again.key


@pytest.mark.parametrize(
    "payload",
    [
        b"not compressed at all",
        zlib.compress(b"{}"),  # no header fields
        zlib.compress(b'{"v": 2}\n'),  # another version
        zlib.compress(b"\xff\xfe garbage\n{}"),
        zlib.compress(json.dumps({"v": 1, "deployment": "nat"}).encode())[:-3],  # cut short
    ],
)
def test_report_anything_else_is_a_bad_report(payload):
    with pytest.raises(BadReport):
        decode(payload)


def test_report_larger_than_the_bound_is_refused_without_inflating_it_all():
    big = encode(header(), [line_of(0, usage(f"u{i:05d}"), UserExtras()) for i in range(2000)])
    assert decode(big)[1]  # fits the default bound
    with pytest.raises(BadReport, match="larger than 10000 bytes"):
        decode(big, max_bytes=10_000)

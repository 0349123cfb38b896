"""Exports: streamed in chunks (100,000 rows without holding them), formula-safe CSV, filters."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.urls import reverse

from tests.support.history_helpers import FixedSource, recorder, snapshot, usage
from usermetrics.api.export import csv_safe, csv_stream, json_stream
from usermetrics.clock import utcnow

ROWS = 100_000


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=x", "'\t=x"),
        ("\r=x", "'\r=x"),
        # Blanks before the sign, and the full-width and small-form signs some spreadsheets read as ASCII.
        ("\n=1+4", "'\n=1+4"),
        (" =1+5", "' =1+5"),
        (" \t\r\n @x", "' \t\r\n @x"),
        ("\u3000=1", "'\u3000=1"),
        ("\uff1d1+6", "'\uff1d1+6"),
        ("\uff0b1", "'\uff0b1"),
        ("\uff0d1", "'\uff0d1"),
        ("\uff20SUM(A1)", "'\uff20SUM(A1)"),
        ("\ufe66x", "'\ufe66x"),
        ("  alice", "  alice"),
        ("   ", "   "),
        ("a =1", "a =1"),
        ("alice=1", "alice=1"),
        ("", ""),
        (42, 42),
        (1.5, 1.5),
        (None, None),
    ],
)
def test_export_csv_safe_neutralises_formulas(cell, expected):
    assert csv_safe(cell) == expected


class CountingRows:
    """100,000 rows made one at a time; ``made`` says how many were asked for so far."""

    def __init__(self) -> None:
        self.made = 0

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for i in range(ROWS):
            self.made += 1
            yield (f"=user-{i}" if i % 2 else f"user-{i}", i)


async def test_export_csv_streams_100k_rows_in_chunks():
    rows = CountingRows()
    stream = csv_stream(["user_id", "n"], rows, chunk_rows=1000)
    first = await anext(stream)
    # The first chunk left before the rows were all made: nothing holds the whole export.
    assert rows.made <= 1001
    chunks = 1
    tail = b""
    async for chunk in stream:
        chunks += 1
        tail = chunk
    assert rows.made == ROWS and chunks >= ROWS // 1000
    header, *firsts = list(csv.reader(io.StringIO(first.decode())))
    assert header == ["user_id", "n"]
    assert firsts[0] == ["user-0", "0"] and firsts[1] == ["'=user-1", "1"]
    assert list(csv.reader(io.StringIO(tail.decode())))[-1] == [f"'=user-{ROWS - 1}", str(ROWS - 1)]


async def test_export_json_streams_100k_rows_in_chunks():
    rows = CountingRows()
    stream = json_stream(["user_id", "n"], rows, chunk_rows=1000)
    parts = [await anext(stream)]
    assert rows.made <= 1001
    parts += [chunk async for chunk in stream]
    doc = json.loads(b"".join(parts))
    assert len(doc) == ROWS and doc[1] == {"user_id": "=user-1", "n": 1}  # JSON needs no neutralising


@pytest.fixture
async def listed(install_service):
    """A service over users whose ids a spreadsheet would run as formulas, and one ended user."""
    now = utcnow()
    users = [
        usage('=HYPERLINK("http://evil")', total=5, errors=1, ref=1, last=now),
        usage("alice", total=50, errors=0, last=now - timedelta(minutes=5)),
        usage("bob", total=7, errors=2, last=now),
    ]
    await install_service([FixedSource("fixed", users)])
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=2), [*users, usage("carol", total=3)]))
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=1), users))  # carol ended
    return users


async def _body(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join([chunk async for chunk in response.streaming_content])


@pytest.mark.django_db(transaction=True)
async def test_export_users_csv_is_streamed_and_formula_safe(listed, staff_client):
    response = await staff_client.get(reverse("usermetrics:api-export-users-csv"), {"sort": "-total_requests"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="users.csv"' in response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO((await _body(response)).decode())))
    assert [r["user_id"] for r in table] == ["alice", "bob", '\'=HYPERLINK("http://evil")']
    assert table[0]["total_requests"] == "50" and table[0]["window"] == "1h"
    assert table[2]["state"] == "active"


@pytest.mark.django_db(transaction=True)
async def test_export_users_filters(listed, staff_client):
    url = reverse("usermetrics:api-export-users-json")
    doc = json.loads(await _body(await staff_client.get(url, {"state": "errors", "sort": "user_id"})))
    assert [r["user_id"] for r in doc] == ['=HYPERLINK("http://evil")', "bob"]
    doc = json.loads(await _body(await staff_client.get(url, {"q": "LIC"})))
    assert [r["user_id"] for r in doc] == ["alice"]
    doc = json.loads(await _body(await staff_client.get(url, {"state": "ended"})))
    assert [(r["user_id"], r["state"], r["total_requests"]) for r in doc] == [("carol", "ended", 3)]
    # Unknown parameters fall back to the defaults, as on the list page (never an error).
    doc = json.loads(await _body(await staff_client.get(url, {"state": "sleepy", "sort": "password"})))
    assert sorted(r["user_id"] for r in doc) == sorted(['=HYPERLINK("http://evil")', "alice", "bob"])


@pytest.mark.django_db(transaction=True)
async def test_export_user_history_csv_and_json(listed, staff_client):
    response = await staff_client.get(reverse("usermetrics:api-user-history-csv", args=["bob"]), {"window": "1h"})
    table = list(csv.DictReader(io.StringIO((await _body(response)).decode())))
    assert [r["total_requests"] for r in table] == ["7"]
    assert 'filename="history-bob.csv"' in response["Content-Disposition"]
    response = await staff_client.get(reverse("usermetrics:api-user-history-json", args=['=HYPERLINK("http://evil")']))
    [row] = json.loads(await _body(response))
    assert row["life"] == 1 and row["in_flight"] == 1

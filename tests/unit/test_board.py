"""The board: the NAT document serialized once, offsets into it, packed columns, and the wire format."""

from __future__ import annotations

import gzip
import math

import pytest

from tests.support.factories import BASE_TIME, board_of, record, sample_users, usage
from usermetrics.board import COLUMNS, Board, board_empty, document_end
from usermetrics.board_wire import board_decode, board_encode
from usermetrics.merging import merge
from usermetrics.metrics import PerUserMonitorResponse
from usermetrics.packing import BoardCache, board_build, column_values
from usermetrics.selection import board_order
from usermetrics.snapshot import SourceHealth, is_active


def test_board_body_is_exactly_the_nat_document():
    users = sample_users()
    board = board_of(users)
    snapshot = merge([("s", users)], seq=1, timestamp=BASE_TIME, sources=[SourceHealth(name="s", kind="t")])
    assert board.body == snapshot.json_all  # what model_dump_json writes, to the byte
    assert gzip.decompress(board.body_gzip) == board.body
    assert [board.usage_at(i) for i in range(len(board))] == users
    sub = PerUserMonitorResponse.model_validate_json(document_end(board.document([3, 1])))
    assert [u.user_id for u in sub.users] == ["u03", "u01"] and sub.total_active_users == 2


def test_board_columns_are_built_with_the_rules():
    liar = record("liar", session={"ref_count": 0, "is_active": True})
    board = board_of([*sample_users(), liar])
    for name, (_, read) in COLUMNS.items():
        assert list(board.columns[name]) == [read(board.usage_at(i)) for i in range(len(board))], name
    # The one-call reader the packing uses reads what each column's rule reads, in COLUMNS order.
    assert column_values(liar) == tuple(read(liar) for _, read in COLUMNS.values())
    assert board.columns["is_active"][board.index["liar"]] == int(is_active(liar)) == 0


def test_board_round_trips_through_its_bytes():
    board = board_of(sample_users(), seq=9, timeout=600, flags={"u04": ["erroring", "stuck"]})
    back = board_decode(board_encode(board))
    assert (back.seq, back.producer, back.ids, back.body) == (board.seq, board.producer, board.ids, board.body)
    assert back.flags_at(4) == ["stuck", "erroring"] and back.origins("u04") == ("s",)
    assert back.evicted_at("u01") == board.evicted_at("u01") is not None
    busy = back.index["u00"]  # in flight: not due for eviction
    assert math.isnan(back.columns["evicted_at"][busy]) and back.evicted_at("u00") is None
    assert back.sources[0].name == "s" and back.totals == board.totals


def test_board_decoded_after_one_of_the_same_users_shares_its_ids_and_what_was_worked_out_from_them():
    users = sample_users()
    first = board_decode(board_encode(board_of(users, seq=1)))
    board_order(first, "-user_id")  # works out the order of the ids, once
    order, index = first.memo[Board.ID_ORDER], first.index
    users[2] = usage(users[2].user_id, requests=99)  # a user's numbers change, not who the users are
    second = board_decode(board_encode(board_of(users, seq=2)), previous=first)
    assert second.ids is first.ids and second.index is index and second.memo[Board.ID_ORDER] is order
    assert second.usage_at(2).requests.total_requests == 99  # the numbers are the new board's own
    # Other users (one gone): nothing is carried, and the index is the new board's.
    third = board_decode(board_encode(board_of(users[1:], seq=3)), previous=second)
    assert third.ids == [u.user_id for u in users[1:]] and third.index[users[1].user_id] == 0
    assert third.index is not index and Board.ID_ORDER not in third.memo


def test_board_of_nobody_is_still_a_board():
    board = board_empty(BASE_TIME)
    assert board and len(board) == 0 and board.seq == 0
    assert PerUserMonitorResponse.model_validate_json(board.body).users == []


@pytest.mark.parametrize("sources", [1, 2])
def test_board_eviction_column_is_the_snapshot_rule(sources):
    users = sample_users()  # every third user in flight
    reports = [("s", users)] + ([("t", [usage("u01", requests=5, minutes_ago=30), usage("t1")])] if sources > 1 else [])
    health = [
        SourceHealth(name=n, kind="t", per_user_workflow_timeout=600 + 60 * k) for k, (n, _) in enumerate(reports)
    ]
    snapshot = merge(reports, seq=1, timestamp=BASE_TIME, sources=health)
    board = board_build(snapshot, producer="p", published_at=BASE_TIME, cache=BoardCache())
    for uid in snapshot.ids:
        due = snapshot.evicted_at(uid)
        if due is None:
            assert board.evicted_at(uid) is None, uid
        else:
            assert board.evicted_at(uid).timestamp() == pytest.approx(due.timestamp(), abs=1e-6), uid
    assert board.evicted_at("u00") is None  # in flight

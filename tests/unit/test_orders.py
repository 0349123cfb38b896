"""A board's sorted order worked out from the last board's: only the users whose value changed are placed again."""

from __future__ import annotations

import random

import pytest

from tests.support.factories import board_of, usage
from usermetrics.board import Board
from usermetrics.board_wire import board_encode
from usermetrics.orders import board_receive, order_carry
from usermetrics.selection import DEFAULT_SORT, board_order


@pytest.mark.parametrize("sort", ["-last_activity", "last_activity", "-total_requests"])
def test_orders_carried_order_is_the_order_sorted_afresh(sort):
    # Ties (many users with the same value) must stay in user-id order, as a fresh sort leaves them.
    rng = random.Random(sort)
    users = [usage(f"u{rng.randrange(10**6):06d}-{i}", requests=rng.randrange(5), minutes_ago=rng.randrange(6))
             for i in range(300)]  # fmt: skip
    last = board_of(users, seq=1)
    board_order(last, sort)
    for step in range(2, 40):
        for i in rng.sample(range(len(users)), rng.randrange(1, 12)):
            users[i] = usage(users[i].user_id, requests=rng.randrange(5), minutes_ago=rng.randrange(6))
        board = board_of(users, seq=step)
        board.ids_carry(last)  # the same users: the order of their ids carries over
        assert order_carry(board, last, sort) is True, step
        carried = list(board.memo[("order", sort)])
        assert carried == board_order(board_of(users, seq=step), sort), step
        last = board


def test_orders_not_carried_when_too_much_changed_or_nothing_to_carry():
    users = [usage(f"u{i:03d}", requests=i) for i in range(40)]
    last = board_of(users, seq=1)
    assert order_carry(board_of(users, seq=2), last, "-last_activity") is False  # the last board has no order
    board_order(last, "-total_requests")
    changed = [usage(u.user_id, requests=99 - i) for i, u in enumerate(users)]
    assert order_carry(board_of(changed, seq=2), last, "-total_requests") is False  # everyone moved: sort afresh
    assert order_carry(board_of(users, seq=2), last, "-user_id") is False  # not a column


def test_orders_a_face_receiving_a_board_of_the_same_users_carries_its_default_order():
    users = [usage(f"u{i:03d}", minutes_ago=i % 4) for i in range(50)]
    first = board_receive(board_encode(board_of(users, seq=1)), None)
    users[7] = usage("u007", requests=3, minutes_ago=0.5)
    second = board_receive(board_encode(board_of(users, seq=2)), first)
    assert second.ids is first.ids and Board.ID_RANK in second.memo  # carried, not sorted afresh
    assert second.memo[("order", DEFAULT_SORT)] == board_order(board_of(users, seq=2), DEFAULT_SORT)

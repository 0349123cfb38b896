"""Sorted orders carried from board to board (sync, no Django): only the users whose value changed are placed again.

A face sorts every new board by the default sort before its first page (``selection.board_order``):
at a million users a fresh sort is over half a second of CPU, every refresh, in every face, holding
the interpreter while pages wait. Most refreshes keep the same users and change a few of them, so
the last board's order, less the users whose value changed, is still in order; those few are
sorted and put back in their places by bisection. The result is the fresh sort's, exactly: by the
value (either way), ties in user-id order. ``board_receive`` is a face's (and the embedded parent's)
one way to take a board off the wire with it.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from itertools import compress, count
from operator import ne

from usermetrics.board import Board
from usermetrics.board_wire import board_decode
from usermetrics.selection import DEFAULT_SORT, WINDOW_SORT_KEYS, board_order, memoized

# Past this share of users changed, a fresh sort is cheaper than placing each again.
CARRY_MAX_SHARE = 1 / 8


def order_carry(board: Board, last: Board, sort: str) -> bool:
    """Work out ``board``'s order of ``sort`` from ``last``'s (a board of the same users in the same order,
    ``Board.ids_carry`` done) and memoize it as ``board_order`` would; False when it cannot (then nothing is set)."""
    name, descending = sort.lstrip("-"), sort.startswith("-")
    before = last.memo.get(("order", sort))
    if before is None or name == "user_id" or name in WINDOW_SORT_KEYS or board.ids != last.ids:
        return False
    new, old = board.columns.get(name), last.columns.get(name)
    if new is None or old is None:
        return False
    changed = list(compress(count(), map(ne, new, old)))
    if len(changed) > len(new) * CARRY_MAX_SHARE or any(math.isnan(new[i]) for i in changed):
        return False  # (a NaN has no place in an order: the fresh sort decides)
    rank = memoized(board, Board.ID_RANK, lambda: _ranks(board_order(board, "user_id")))
    key: Callable[[int], tuple[float, int]]
    if descending:
        key = lambda i: (-new[i], rank[i])  # noqa: E731
    else:
        key = lambda i: (new[i], rank[i])  # noqa: E731
    moved = bytearray(len(new))
    for i in changed:
        moved[i] = 1
    staying = list(compress(before, map((1).__xor__, map(moved.__getitem__, before))))
    order: list[int] = []
    start = 0
    for i in sorted(changed, key=key):
        place = bisect_left(staying, key(i), lo=start, key=key)
        order += staying[start:place]
        order.append(i)
        start = place
    order += staying[start:]
    memoized(board, ("order", sort), lambda: order)
    return True


def _ranks(id_order: list[int]) -> list[int]:
    """Each position's rank in user-id order."""
    rank = [0] * len(id_order)
    for r, i in enumerate(id_order):
        rank[i] = r
    return rank


def board_receive(data: bytes, previous: Board | None) -> Board:
    """A board off the wire, with what every first page and every user's page needs worked out (the
    default order, the index of the ids), carried from ``previous`` where its users are the same: run
    it off the event loop, as at a million users each takes a good part of a second."""
    board = board_decode(data, previous=previous)
    if previous is None or not order_carry(board, previous, DEFAULT_SORT):
        board_order(board, DEFAULT_SORT)
    board.index  # noqa: B018 (a cached_property: computed here, once, or carried from the last board)
    return board

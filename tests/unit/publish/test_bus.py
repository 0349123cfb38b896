"""The bus between producer and faces: the latest board, published and fetched whole (Redis)."""

from __future__ import annotations

import pytest

from tests.support.factories import board_of, sample_users
from usermetrics.board_wire import board_decode
from usermetrics.publish.bus import RedisBus

pytestmark = pytest.mark.redis


async def test_publish_bus_round_trips_a_board(redis):
    bus = RedisBus(redis, prefix=redis.test_prefix)
    assert await bus.last_published() is None
    board = board_of(sample_users(), seq=4, flags={"u02": ["stuck"]})
    await bus.publish(board)
    published = await bus.last_published()
    assert (published.producer, published.seq) == ("p", 4)
    back = board_decode(await bus.fetch())
    assert back.body == board.body and back.etag == board.etag and back.flags_at(2) == ["stuck"]
    assert back.user("u05") == board.user("u05") and back.totals == board.totals

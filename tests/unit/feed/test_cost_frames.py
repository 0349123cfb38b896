"""A user frame carries the user's cost next to its llm, from the table the producer hands over."""

from __future__ import annotations

import json

import pytest

from tests.support.factories import board_of, extras_of, record
from usermetrics.feed.builder import FrameBuilder
from usermetrics.feed.frames import user_frame
from usermetrics.feed.subscriptions import Subscription
from usermetrics.prices import price_table_parse
from usermetrics.selection import ViewSpec

TABLE = price_table_parse({"a": {"prompt": 1, "completion": 2}}, "GBP")
LLM = (("a", (1, 1000, 100, 0, 0, 1100)), ("b", (1, 5, 5, 0, 0, 10)))


def test_user_frame_carries_the_cost_with_a_table():
    board = board_of([record("ada")], extras={"ada": extras_of([1.0], llm=LLM)})
    extras = json.loads(user_frame(board, "ada", budget=512 * 1024, stuck_after=300, prices=TABLE))["extras"]
    assert extras["llm"]["by_model"]["a"]["prompt_tokens"] == 1000
    assert extras["cost"] == {
        "currency": "GBP",
        "total": pytest.approx(0.0012),
        "complete": False,
        "unpriced": ["b"],
        "by_model": {"a": pytest.approx(0.0012), "b": None},
    }
    assert "cost" not in json.loads(user_frame(board, "ada", budget=512 * 1024, stuck_after=300))["extras"]


def test_frame_builder_hands_the_table_to_user_frames_only(settings):
    board = board_of([record("ada")], extras={"ada": extras_of([1.0], llm=LLM)})
    subs = {"u": Subscription(user_id="ada"), "l": Subscription(spec=ViewSpec())}
    frames = dict(FrameBuilder().frames(board, subs, labels={}, prices=TABLE))
    assert json.loads(frames["u"])["extras"]["cost"]["currency"] == "GBP"
    assert "cost" not in frames["l"]

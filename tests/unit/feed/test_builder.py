"""Frames per view: one frame per watched view per board, shared first frames, who left the page, face messages."""

from __future__ import annotations

import json

from tests.support.factories import board_of, sample_users
from usermetrics.feed.builder import EVENT_TYPE, FRAMES_TYPE, FrameBuilder, face_frames, face_messages, first_frame
from usermetrics.feed.subscriptions import Subscription, SubscriptionRegistry
from usermetrics.selection import ViewSpec


def test_feed_builder_one_frame_per_watched_view():
    registry = SubscriptionRegistry()
    groups = [
        registry.subscribe("c1", Subscription(spec=ViewSpec())),
        registry.subscribe("c2", Subscription(spec=ViewSpec())),
        registry.subscribe("c3", Subscription(spec=ViewSpec(sort="user_id"))),
        registry.subscribe("c4", Subscription(user_id="u01")),
    ]
    assert groups[0] == groups[1] and len(set(groups)) == 3
    assert registry.counts()[groups[0]] == 2
    builder = FrameBuilder()
    frames = dict(builder.frames(board_of(sample_users(), seq=1), registry.subscriptions(), labels={}))
    assert builder.frames_built == 3 and set(frames) == set(groups)  # one per distinct view
    assert json.loads(frames[groups[3]])["view"] == {"kind": "user", "user_id": "u01", "found": True, "clamped": False}


def test_feed_builder_names_users_that_left_the_page():
    view = Subscription(spec=ViewSpec(sort="user_id", page_size=3))
    builder = FrameBuilder()
    users = sample_users()
    [(_, first)] = builder.frames(board_of(users, seq=1), {view.group: view}, labels={})
    [(_, second)] = builder.frames(board_of(users[1:], seq=2), {view.group: view}, labels={})
    assert json.loads(first)["gone"] == [] and json.loads(second)["gone"] == ["u00"]


def test_feed_builder_first_frames_are_shared_per_board_and_view():
    board = board_of(sample_users())
    view = Subscription(spec=ViewSpec(state="active"))
    text = first_frame(board, view, labels={"u03": "Three"})
    assert first_frame(board, view, labels={}) is text  # built once, whoever asks
    doc = json.loads(text)
    assert [u["user_id"] for u in doc["users"]] == ["u00", "u03", "u06", "u09"] and doc["labels"] == {"u03": "Three"}


def test_feed_builder_flag_views_read_the_published_flags():
    board = board_of(sample_users(), flags={"u02": ["stuck"], "u05": ["erroring"]})
    [(_, text)] = FrameBuilder().frames(
        board, {Subscription(spec=ViewSpec(state="stuck")).group: Subscription(spec=ViewSpec(state="stuck"))}, labels={}
    )
    assert [u["user_id"] for u in json.loads(text)["users"]] == ["u02"]


def test_feed_builder_face_messages_carry_each_faces_frames_split_past_the_limit():
    frames = {"g1": "a" * 40, "g2": "b" * 40, "g3": "c" * 40}
    [one] = face_messages(frames, ["g1", "g3", "unknown"], seq=7, producer="p")
    assert one == {"type": FRAMES_TYPE, "seq": 7, "producer": "p", "frames": {"g1": "a" * 40, "g3": "c" * 40}}
    split = face_messages(frames, ["g1", "g2", "g3"], seq=7, producer="p", limit=90)
    assert [list(m["frames"]) for m in split] == [["g1", "g2"], ["g3"]]  # never a frame lost or cut
    assert face_messages(frames, [], seq=7, producer="p") == []
    events = [event for message in split for event in face_frames(message)]
    assert [(g, e["type"], e["seq"], e["producer"], e["group"]) for g, e in events] == [
        (g, EVENT_TYPE, 7, "p", g) for g in ("g1", "g2", "g3")
    ]
    assert events[2][1]["text"] == "c" * 40


def test_feed_builder_face_frames_ignore_what_is_no_frames_message():
    assert list(face_frames({"type": FRAMES_TYPE, "seq": 1})) == []
    assert list(face_frames({"type": FRAMES_TYPE, "frames": ["g1"]})) == []
    assert [g for g, _ in face_frames({"frames": {"g1": "x", "g2": 3, 4: "y"}})] == ["g1"]

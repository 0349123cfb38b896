"""Frames per subscription (sync): one frame per held subscription per board, and what left each page since the last.

The producer asks ``FrameBuilder.frames`` once per refresh for every subscription anyone holds,
whatever the number of sockets on it, and sends each face the frames of its subscriptions in one message
(``face_messages``; split only past ``FACE_MESSAGE_BYTES``); the face takes them apart again
(``face_frames``) and hands each to the sockets of that subscription. A socket that subscribes gets
its first frame from ``subscription_frame`` (shared by every socket of that subscription and board).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from usermetrics.board import Board
from usermetrics.conf import get_config
from usermetrics.prices import PriceTable
from usermetrics.selection import memoized, summary_get

from .frames import list_frame, user_frame
from .subscriptions import Subscription

EVENT_TYPE = "metrics.update"  # a frame, handled by consumers' ``metrics_update``
FRAMES_TYPE = "metrics.frames"  # a face's frames of one refresh, taken apart by the face
# A face's message of one refresh holds frames up to this many bytes; more go in further messages
# (a face holding a hundred big subscriptions must not make one message of a hundred megabytes).
FACE_MESSAGE_BYTES = 4 * 1024 * 1024


def face_messages(
    frames: Mapping[str, str], groups: Iterable[str], *, seq: int, producer: str, limit: int = FACE_MESSAGE_BYTES
) -> list[dict[str, Any]]:
    """The messages that carry to one face the frames of its ``groups`` (those ``frames`` has)."""
    messages: list[dict[str, Any]] = []
    batch: dict[str, str] = {}
    size = 0
    for group in groups:
        text = frames.get(group)
        if text is None:
            continue
        if batch and size + len(text) > limit:
            messages.append({"type": FRAMES_TYPE, "seq": seq, "producer": producer, "frames": batch})
            batch, size = {}, 0
        batch[group] = text
        size += len(text)
    if batch:
        messages.append({"type": FRAMES_TYPE, "seq": seq, "producer": producer, "frames": batch})
    return messages


def face_frames(message: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(group, event)`` for each frame of a ``face_messages`` message; the event is what sockets take."""
    seq, producer = int(message.get("seq", 0)), str(message.get("producer", ""))
    frames = message.get("frames")
    if not isinstance(frames, Mapping):
        return
    for group, text in frames.items():
        if isinstance(group, str) and isinstance(text, str):
            yield group, {"type": EVENT_TYPE, "text": text, "seq": seq, "producer": producer, "group": group}


def subscription_frame(
    board: Board,
    subscription: Subscription,
    *,
    labels: Mapping[str, str],
    gone: list[str] | None = None,
    prices: PriceTable | None = None,
) -> tuple[str, list[str]]:
    """The frame of ``subscription`` on ``board`` and the ids of the page it shows (``gone``: ids that left it).

    ``prices``: the table a user frame's cost is worked out with (``pricing``; None: no cost).
    """
    config = get_config()
    if subscription.spec is not None:
        text, result = list_frame(
            board,
            subscription.spec,
            budget=config.feed_max_frame_bytes,
            summary=summary_get(board),
            gone=gone,
            labels=labels,
        )
        return text, [board.ids[i] for i in result.users]
    user_id = subscription.user_id or ""
    text = user_frame(
        board,
        user_id,
        budget=config.feed_max_frame_bytes,
        stuck_after=config.flags.stuck_after,
        label=labels.get(user_id),
        prices=prices,
    )
    return text, [user_id]


def first_frame(
    board: Board, subscription: Subscription, *, labels: Mapping[str, str], prices: PriceTable | None = None
) -> str:
    """A new subscriber's full frame of ``subscription`` (built once per board and subscription, whoever asks)."""
    return memoized(
        board,
        ("first", subscription.group),
        lambda: subscription_frame(board, subscription, labels=labels, prices=prices)[0],
    )


class FrameBuilder:
    """One frame per held subscription per board; remembers each one's last page to say who is gone."""

    def __init__(self) -> None:
        """Start with no history of pages."""
        self._last_ids: dict[str, list[str]] = {}
        # How many frames were built; tests count it to prove one per subscription per refresh.
        self.frames_built = 0

    def frames(
        self,
        board: Board,
        subscriptions: Mapping[str, Subscription],
        *,
        labels: Mapping[str, str],
        previous_board: Board | None = None,
        prices: PriceTable | None = None,
    ) -> list[tuple[str, str]]:
        """``(group, text)`` for every one of ``subscriptions``; those nobody holds any more are forgotten.

        A subscription first seen now had its subscribers' first frames built from ``previous_board`` (by
        the face), so who left its page is read from there. ``prices``: the table users' costs are worked out with.
        """
        out: list[tuple[str, str]] = []
        for group, subscription in subscriptions.items():
            previous = self._last_ids.get(group)
            if previous is None:
                if previous_board is not None:
                    previous = subscription_frame(previous_board, subscription, labels=labels)[1]
                else:
                    previous = []
            gone = [uid for uid in previous if uid not in board.index] if subscription.spec is not None else []
            text, ids = subscription_frame(board, subscription, labels=labels, gone=gone, prices=prices)
            self._last_ids[group] = ids
            self.frames_built += 1
            out.append((group, text))
        for group in set(self._last_ids) - set(subscriptions):
            del self._last_ids[group]
        return out

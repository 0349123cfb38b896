"""Frames per view (sync): one frame per watched view per board, and what left each page since the last.

The producer asks ``FrameBuilder.frames`` once per refresh for every view anyone watches, whatever
the number of sockets on it, and sends each face the frames of its views in one message
(``face_messages``; split only past ``FACE_MESSAGE_BYTES``); the face takes them apart again
(``face_frames``) and hands each to the sockets on that view. A socket that subscribes gets its
first frame from ``view_frame`` (shared by every socket on that view and board).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from usermetrics.board import Board
from usermetrics.conf import get_config
from usermetrics.selection import memoized, summary_get

from .frames import list_frame, user_frame
from .views import View

EVENT_TYPE = "metrics.update"  # a frame, handled by consumers' ``metrics_update``
FRAMES_TYPE = "metrics.frames"  # a face's frames of one refresh, taken apart by the face
# A face's message of one refresh holds frames up to this many bytes; more go in further messages
# (a face watching a hundred big views must not make one message of a hundred megabytes).
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


def view_frame(
    board: Board, view: View, *, labels: Mapping[str, str], gone: list[str] | None = None
) -> tuple[str, list[str]]:
    """The frame of ``view`` on ``board`` and the ids of the page it shows (``gone``: ids that left it)."""
    config = get_config()
    if view.spec is not None:
        text, result = list_frame(
            board, view.spec, budget=config.feed_max_frame_bytes, summary=summary_get(board), gone=gone, labels=labels
        )
        return text, [board.ids[i] for i in result.users]
    user_id = view.user_id or ""
    text = user_frame(
        board,
        user_id,
        budget=config.feed_max_frame_bytes,
        stuck_after=config.flags.stuck_after,
        label=labels.get(user_id),
    )
    return text, [user_id]


def first_frame(board: Board, view: View, *, labels: Mapping[str, str]) -> str:
    """A new subscriber's full frame of ``view`` (built once per board and view, whoever asks)."""
    return memoized(board, ("first", view.group), lambda: view_frame(board, view, labels=labels)[0])


class FrameBuilder:
    """One frame per watched view per board; remembers each view's last page to say who is gone."""

    def __init__(self) -> None:
        """Start with no history of pages."""
        self._last_ids: dict[str, list[str]] = {}
        # How many frames were built; tests count it to prove one per view per refresh.
        self.frames_built = 0

    def frames(
        self,
        board: Board,
        views: Mapping[str, View],
        *,
        labels: Mapping[str, str],
        previous_board: Board | None = None,
    ) -> list[tuple[str, str]]:
        """``(group, text)`` for every view in ``views``; views nobody watches any more are forgotten.

        A view first seen now had its subscribers' first frames built from ``previous_board`` (by
        the face), so who left its page is read from there.
        """
        out: list[tuple[str, str]] = []
        for group, view in views.items():
            previous = self._last_ids.get(group)
            if previous is None:
                previous = view_frame(previous_board, view, labels=labels)[1] if previous_board is not None else []
            gone = [uid for uid in previous if uid not in board.index] if view.spec is not None else []
            text, ids = view_frame(board, view, labels=labels, gone=gone)
            self._last_ids[group] = ids
            self.frames_built += 1
            out.append((group, text))
        for group in set(self._last_ids) - set(views):
            del self._last_ids[group]
        return out

"""Websocket frames (sync, no Django): a view of a board as one JSON text within a byte budget.

Frames are ``PerUserMonitorResponse`` documents with the feed's metadata as extra top-level keys
(``type``, ``seq``, ``view``, ``summary``, ``sources``, ``stale``, ``alerts``, ``gone``, ``labels``,
``figures``; for one user ``origins``, ``parts``, ``label``, ``evicted_at``, ``lifecycle`` and ``extras``).
Each is spliced from the users' JSON already on the board: no user is serialized again. No frame is larger than the
budget: a page that would not fit is shrunk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from usermetrics.board import Board
from usermetrics.figures import row_figures, user_extras
from usermetrics.firing import firing_of
from usermetrics.humanize import lifecycle_words
from usermetrics.prices import PriceTable
from usermetrics.selection import Summary, ViewResult, ViewSpec, sources_brief, summary_get, view_select
from usermetrics.snapshot import iso


def frame_text(board: Board, positions: list[int], extra: Mapping[str, Any]) -> str:
    """A PerUserMonitorResponse of the users at ``positions`` (``total_active_users`` = every user) plus ``extra``."""
    doc = board.document(positions, total=len(board))
    doc += b"],"
    doc += json.dumps(extra, separators=(",", ":"))[1:].encode()
    return doc.decode()


def size(text: str) -> int:
    """A frame's size as Daphne counts it: bytes of the UTF-8 payload, not characters."""
    return len(text.encode())


def list_frame(
    board: Board,
    spec: ViewSpec,
    *,
    budget: int,
    summary: Summary | None = None,
    gone: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[str, ViewResult]:
    """The frame of a list view, with the page shrunk until the frame fits in ``budget`` bytes."""
    summary = summary or summary_get(board)
    names = labels or {}
    result = view_select(board, spec, labels=names)

    def build(res: ViewResult, gone_ids: list[str]) -> str:
        page_ids = [board.ids[i] for i in res.users]
        extra = {
            "type": "snapshot",
            "seq": board.seq,
            "view": res.meta(),
            "summary": summary.as_dict(),
            "sources": summary.sources,
            "stale": board.stale_sources,
            "alerts": firing_of(board.meta).as_dict(),  # the header's count, as the producer published it
            "gone": gone_ids,
            # Registered names of this page's users (usermetrics.identities), by user id.
            "labels": {uid: names[uid] for uid in page_ids if uid in names},
            # The NAT companions' figures of this page's users (p50/p95/p99 ms, queued), by user id;
            # a user no companion reports is left out. Inside the budget: a page that does not fit shrinks.
            "figures": {uid: f for uid in page_ids if (f := row_figures(board, uid)) is not None},
        }
        return frame_text(board, res.users, extra)

    gone = gone or []
    text = build(result, gone)
    length = size(text)
    while length > budget and result.spec.page_size > 1 and result.users:
        # Shrink in proportion to the overshoot (with a margin), keeping the first user of the
        # requested page on the new page so the client does not jump elsewhere in the list.
        per_user = max(1, length // max(1, len(result.users)))
        target = max(1, min(result.spec.page_size - 1, int(budget * 0.9) // per_user))
        offset = (result.spec.page - 1) * result.spec.page_size
        smaller = replace(result.spec, page_size=target, page=offset // target + 1)
        requested = result.requested_page_size or spec.page_size
        result = replace(view_select(board, smaller, labels=names), requested_page_size=requested)
        text = build(result, gone)
        length = size(text)
    if length > budget:
        # Not even one user fits (a gigantic id, or a tiny budget): send the metadata alone.
        result = replace(result, users=[], requested_page_size=result.requested_page_size or spec.page_size)
        text = build(result, [])
    return text, result


def user_frame(
    board: Board,
    user_id: str,
    *,
    budget: int,
    stuck_after: float,
    label: str | None = None,
    prices: PriceTable | None = None,
) -> str:
    """The frame of the per-user view: that user as a one-element list, or an empty one when gone.

    ``prices`` (the table in force) puts the user's ``cost`` in its ``extras``, next to its ``llm``.
    """
    position = board.index.get(user_id)
    usage = board.usage_at(position) if position is not None else None
    evicted_at = board.evicted_at(user_id) if usage is not None else None
    positions = [position] if position is not None else []

    def build(chosen: list[int]) -> str:
        extra = {
            "type": "snapshot",
            "seq": board.seq,
            "view": {
                "kind": "user",
                "user_id": user_id,
                "found": usage is not None,
                "clamped": len(chosen) < len(positions),
            },
            "origins": list(board.origins(user_id)),
            # Each source's own record, when several were merged into the one in ``users``.
            "parts": [
                {"source": name, "record": part.model_dump(mode="json")} for name, part in board.user_parts(user_id)
            ],
            "label": label,
            "evicted_at": iso(evicted_at),
            # The lifecycle in words (usermetrics.humanize), so the page never words it itself.
            "lifecycle": lifecycle_words(usage, board.timestamp, evicted_at, stuck_after=stuck_after)
            if usage is not None
            else None,
            "sources": sources_brief(board.sources),
            "stale": board.stale_sources,
            "alerts": firing_of(board.meta).as_dict(),
            # What NAT companions say of the user (figures.extras_public) and its cost; null without a companion.
            "extras": user_extras(board, user_id, prices=prices) if chosen else None,
        }
        return frame_text(board, chosen, extra)

    text = build(positions)
    if size(text) > budget:
        text = build([])
    return text

"""Websocket frames (sync, no Django): a view of a snapshot as one JSON text within a byte budget.

Frames are ``PerUserMonitorResponse`` documents with the feed's metadata as extra top-level keys
(``type``, ``seq``, ``view``, ``summary``, ``sources``, ``stale``, ``gone``, ``labels``; for one
user ``origins``, ``parts``, ``label``, ``evicted_at`` and ``lifecycle``). No frame is larger
than the budget: a page that would not fit is shrunk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from usermetrics.humanize import lifecycle_words
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.selection import Summary, ViewResult, ViewSpec, sources_brief, summary_get, view_select
from usermetrics.snapshot import Snapshot, iso


def frame_text(snapshot: Snapshot, users: list[PerUserResourceUsage], extra: Mapping[str, Any]) -> str:
    """A PerUserMonitorResponse of ``users`` (``total_active_users`` = every user) plus ``extra`` keys.

    The model is dumped once and the metadata spliced in after its last key, so a frame costs
    one ``model_dump_json`` and one small ``json.dumps``.
    """
    response = PerUserMonitorResponse.model_construct(
        timestamp=snapshot.timestamp, total_active_users=len(snapshot.users), users=users
    )
    body = response.model_dump_json()
    if not extra:
        return body
    return body[:-1] + "," + json.dumps(extra, separators=(",", ":"))[1:]


def size(text: str) -> int:
    """A frame's size as Daphne counts it: bytes of the UTF-8 payload, not characters."""
    return len(text.encode())


def list_frame(
    snapshot: Snapshot,
    spec: ViewSpec,
    *,
    budget: int,
    summary: Summary | None = None,
    gone: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
    flags: Mapping[str, Iterable[str]] | None = None,
) -> tuple[str, ViewResult]:
    """The frame of a list view, with the page shrunk until the frame fits in ``budget`` bytes.

    ``flags`` (user id -> flag names) serve the flag states (see ``selection.view_filter``).
    """
    summary = summary or summary_get(snapshot)
    names = labels or {}
    result = view_select(snapshot, spec, labels=names, flags=flags)

    def build(res: ViewResult, gone_ids: list[str]) -> str:
        extra = {
            "type": "snapshot",
            "seq": snapshot.seq,
            "view": res.meta(),
            "summary": summary.as_dict(),
            "sources": summary.sources,
            "stale": snapshot.stale_sources,
            "gone": gone_ids,
            # Registered names of this page's users (usermetrics.identities), by user id.
            "labels": {u.user_id: names[u.user_id] for u in res.users if u.user_id in names},
        }
        return frame_text(snapshot, res.users, extra)

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
        result = replace(view_select(snapshot, smaller, labels=names, flags=flags), requested_page_size=requested)
        text = build(result, gone)
        length = size(text)
    if length > budget:
        # Not even one user fits (a gigantic id, or a tiny budget): send the metadata alone.
        result = replace(result, users=[], requested_page_size=result.requested_page_size or spec.page_size)
        text = build(result, [])
    return text, result


def user_frame(snapshot: Snapshot, user_id: str, *, budget: int, stuck_after: float, label: str | None = None) -> str:
    """The frame of the per-user view: that user as a one-element list, or an empty one when gone."""
    usage = snapshot.by_id.get(user_id)
    evicted_at = snapshot.evicted_at(user_id) if usage is not None else None
    users = [usage] if usage is not None else []
    parts = snapshot.parts.get(user_id, [])

    def build(chosen: list[PerUserResourceUsage]) -> str:
        extra = {
            "type": "snapshot",
            "seq": snapshot.seq,
            "view": {
                "kind": "user",
                "user_id": user_id,
                "found": usage is not None,
                "clamped": len(chosen) < len(users),
            },
            "origins": list(snapshot.origins.get(user_id, ())),
            # Each source's own record, when several were merged into the one in ``users``.
            "parts": [{"source": name, "record": part.model_dump(mode="json")} for name, part in parts],
            "label": label,
            "evicted_at": iso(evicted_at),
            # The lifecycle in words (usermetrics.humanize), so the page never words it itself.
            "lifecycle": lifecycle_words(usage, snapshot.timestamp, evicted_at, stuck_after=stuck_after)
            if usage is not None
            else None,
            "sources": sources_brief(snapshot.sources),
            "stale": snapshot.stale_sources,
        }
        return frame_text(snapshot, chosen, extra)

    text = build(users)
    if size(text) > budget:
        text = build([])
    return text

"""The context every dashboard page renders with (sync helpers): the admin's chrome, the banner, the script's config."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from usermetrics import humanize, services
from usermetrics.board import Board
from usermetrics.conf import get_config
from usermetrics.templatetags.usermetrics import iso, utc


def page_config(board: Board, **extra: Any) -> dict[str, Any]:
    """What the page's script needs, handed over with ``json_script``."""
    detail = reverse("usermetrics:user-detail", args=["ID"])
    return {
        "seq": board.seq,
        "timestamp": board.timestamp.isoformat(),
        "interval": get_config().refresh_interval,
        "detail_prefix": detail[: -len("ID/")],
        "producer": services.producer_state().as_dict(),
        **extra,
    }


def board_context(
    request: HttpRequest, board: Board, *, history_unavailable: bool = False, **extra: Any
) -> dict[str, Any]:
    """What every dashboard page shows around its content: the admin's chrome, the sources' banner, the producer.

    ``history_unavailable``: the database could not be read for this page, and its banner says so.
    """
    return {
        **admin.site.each_context(request),
        # The tables are wide: leave the admin's app sidebar to the admin pages.
        "is_nav_sidebar_enabled": False,
        "board": board,
        "now": board.timestamp,
        "producer": services.producer_state(),
        "alerts": services.alerts_firing(board),
        "history_unavailable": humanize.HISTORY_UNAVAILABLE if history_unavailable else None,
        **extra,
    }


def time_cell(when: datetime, now: datetime) -> dict[str, str]:
    """A time as the pages write it: ISO for the script, the exact UTC time, and 'N min ago'."""
    return {"iso": iso(when), "exact": utc(when), "ago": humanize.ago(when, now)}

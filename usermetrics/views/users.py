"""The user pages (sync views): the live user list and one user's detail, staff only.

The pages are complete without JavaScript: sorting, search, filters and paging are plain links
and a GET form over the same ``ViewSpec`` that the websocket feed uses. The page's script then
subscribes to that view and keeps it current. What the pages show comes from ``services``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache

from usermetrics import humanize, services
from usermetrics.conf import get_config
from usermetrics.selection import DEFAULT_PAGE_SIZE, ENDED, FLAG_STATES, PAGE_SIZES, STATES, ViewSpec
from usermetrics.windows import CHART_WINDOWS, RATE_WINDOWS, window_choose

from .actions import actions_context
from .cells import coverage, extras_panels, flag_thresholds, rate_words, table_row
from .columns import (
    COLUMNS,
    WINDOW_COLUMNS,
    column_choices,
    default_hidden,
    group_headers,
    page_links,
    sort_headers,
    view_link,
    window_headers,
    window_span,
)
from .context import board_context, page_config
from .costs import cost_panel_get
from .spend import spend_panel

STATE_LABELS = {
    "": "All",
    "active": "Active",
    "idle": "Idle",
    "errors": "With errors",
    "saturated": "Saturated",
    "stuck": "Stuck",
    "rising": "Rising resources",
    "erroring": "Erroring",
    "ended": "Ended",
}


@never_cache
@staff_member_required
def user_list(request: HttpRequest) -> HttpResponse:
    """Every user of every source: summary cards, then a sortable, searchable, filtered, paged table.

    Each row also shows its window's rates, lifecycle flags and an activity sparkline, read from
    the history for the page's users only. ``state=ended`` lists the users that left, from the
    history; a flag state filters every user by its flags (one aggregate query).
    """
    board = services.board_get()
    page = services.list_page_get(
        board, spec=ViewSpec.from_params(request.GET), publishing=services.producer_state().publishing
    )
    spec, result, enabled = page.spec, page.result, page.history_enabled
    currency = services.currency_get()
    rows = [table_row(row, page.labels, board.timestamp, currency) for row in page.rows]
    # Exports take the whole filtered list: every parameter but the paging.
    export_query = "?" + urlencode(spec.as_params(page=1, page_size=DEFAULT_PAGE_SIZE))
    context = {
        **board_context(request, board, history_unavailable=page.history_unavailable),
        "title": "User metrics",
        "labels": page.labels,
        "summary": page.summary,
        "spec": spec,
        "result": result,
        "rows": rows,
        "history_enabled": enabled,
        "coverage": coverage(spec.window, page.span) if page.span else None,
        "columns": COLUMNS,
        "window_columns": WINDOW_COLUMNS if enabled else (),
        "headers": sort_headers(spec),
        "window_headers": window_headers(spec) if enabled else [],
        "window_span": window_span(history=enabled),
        "page_links": page_links(result),
        "groups": group_headers(history=enabled),
        "column_choices": column_choices(history=enabled),
        "hidden_classes": " ".join(f"um-hide-{field}" for field in default_hidden(history=enabled)),
        "page_sizes": PAGE_SIZES,
        "state_links": [
            {
                "value": value,
                "label": label,
                "url": view_link(spec, state=value, page=1),
                "current": value == spec.state,
            }
            for value, label in STATE_LABELS.items()
            if value in ("", *STATES) or (enabled and value in (*FLAG_STATES, ENDED))
        ],
        "window_links": [
            {"name": name, "url": view_link(spec, window=name, page=1), "current": name == spec.window}
            for name in RATE_WINDOWS
        ],
        "export_csv": reverse("usermetrics:api-export-users-csv") + export_query,
        "export_json": reverse("usermetrics:api-export-users-json") + export_query,
        # The rows' activity sparklines, drawn by charts.js (json_script: no inline script).
        "sparklines": {r["user_id"]: r["sparkline"] for r in rows if r["sparkline"] is not None},
        "clear_url": view_link(spec, q="", state="", page=1),
        "empty_reason": page.empty_reason,
        # The fleet's cost over the last hour and the window's top users (None: no companion's tokens).
        "spend": spend_panel(window=spec.window, labels=page.labels, currency=currency) if enabled else None,
        "first_index": (spec.page - 1) * spec.page_size + 1,
        "last_index": (spec.page - 1) * spec.page_size + len(result.users),
        "page_config": page_config(
            board,
            page="list",
            ws="/ws/monitor/",
            view=result.meta(),
            window_url=reverse("usermetrics:api-users-window") if enabled else None,
            overview_url=reverse("usermetrics:api-overview-history") if enabled else None,
            span=page.span.as_dict() if page.span else None,
            hidden_columns=list(default_hidden(history=enabled)),
            currency=currency,
        ),
    }
    return TemplateResponse(request, "usermetrics/user_list.html", context)


def ws_user_path(user_id: str) -> str:
    """The websocket path of one user's feed (the detail page's URL under ``/ws/monitor``)."""
    return "/ws/monitor" + reverse("usermetrics:user-detail", args=[user_id])


@never_cache
@staff_member_required
def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user's metrics grouped as session / requests / memory, its lifecycle, history charts and sources.

    A user no source reports any more but the history still holds is shown as ended, with its last
    known values; only a user nobody reports or keeps is a 404 (``services.user_lookup``).
    """
    board = services.board_get()
    found = services.user_lookup(board, user_id)
    labels = services.labels_get()
    window = window_choose(request.GET.get("window"), CHART_WINDOWS)
    history_on = get_config().history.enabled and found is not None
    # The database unreachable: the live part from memory, and the banner says the history is not.
    own = services.history_or_none(services.user_window, found, window=window) if history_on else None
    enabled = own is not None
    context: dict[str, Any] = {
        **board_context(request, board, history_unavailable=history_on and own is None),
        "title": humanize.user_display(user_id, labels),
        "user_id": user_id,
    }
    if found is None:
        # Not found is a 404, but still a page in the admin's chrome that says why.
        return TemplateResponse(request, "usermetrics/user_missing.html", context, status=404)
    ended = found.ended
    evicted_at = board.evicted_at(user_id) if ended is None else None
    context.update(
        usage=found.usage,
        ended=ended,
        label=labels.get(user_id),
        origins=found.origins,
        parts=board.user_parts(user_id),
        stale=board.user_is_stale(user_id),
        figures=extras_panels(found.extras),
        cost=cost_panel_get(found),
        lifecycle=ended.ended_ago(board.timestamp)
        if ended
        else humanize.lifecycle_words(
            found.usage, board.timestamp, evicted_at, stuck_after=get_config().flags.stuck_after
        ),
        history_enabled=enabled,
        **actions_context(request, user_id),
    )
    if own is not None:
        window_query = "?" + urlencode({"window": window})
        context.update(
            window=window,
            window_links=[
                {"name": name, "url": "?" + urlencode({"window": name}), "current": name == window}
                for name in CHART_WINDOWS
            ],
            rates=rate_words(own.stats),
            coverage=coverage(window, own.stats),
            window_requests=own.stats.requests,
            flags=own.flags,
            thresholds=flag_thresholds(),
            export_csv=reverse("usermetrics:api-user-history-csv", args=[user_id]) + window_query,
            export_json=reverse("usermetrics:api-user-history-json", args=[user_id]) + window_query,
        )
    context["page_config"] = page_config(
        board,
        page="detail",
        ws=ws_user_path(user_id),
        user_id=user_id,
        ended=ended is not None,
        history_url=reverse("usermetrics:api-user-history", args=[user_id]) if enabled else None,
        window=window,
        currency=services.currency_get(),
    )
    return TemplateResponse(request, "usermetrics/user_detail.html", context)

"""Admin-style HTML pages (sync views): the live user list and one user's detail, staff only.

The pages are complete without JavaScript: sorting, search, filters and paging are plain links
and a GET form over the same ``ViewSpec`` that the websocket feed uses. The page's script then
subscribes to that view and keeps it current.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache

from usermetrics import history, humanize, services
from usermetrics.conf import get_config
from usermetrics.feed import (
    DEFAULT_PAGE_SIZE,
    ENDED,
    FLAG_STATES,
    PAGE_SIZES,
    RATE_WINDOWS,
    STATES,
    ViewResult,
    ViewSpec,
    flag_names_get,
    page_of,
    summary_get,
    view_select,
)
from usermetrics.identities import identity_labels, user_display
from usermetrics.services import Snapshot


@dataclass(frozen=True)
class Column:
    """One column of the user table: the seed field it shows and sorts by."""

    field: str
    label: str
    group: str
    numeric: bool = True


COLUMNS = (
    Column("created_at", "Created", "session", numeric=False),
    Column("last_activity", "Last activity", "session", numeric=False),
    Column("ref_count", "Refs", "session"),
    Column("is_active", "State", "session", numeric=False),
    Column("total_requests", "Requests", "requests"),
    Column("active_requests", "In flight", "requests"),
    Column("avg_latency_ms", "Avg latency", "requests"),
    Column("error_count", "Errors", "requests"),
    Column("per_user_functions_count", "Functions", "memory"),
    Column("per_user_function_groups_count", "Groups", "memory"),
    Column("exit_stack_size", "Exit stack", "memory"),
)
GROUPS = (("session", "Session", 4), ("requests", "Requests", 4), ("memory", "Memory", 3))
STATE_LABELS = {
    "": "All",
    "active": "Active",
    "idle": "Idle",
    "errors": "With errors",
    "stuck": "Stuck",
    "rising": "Rising resources",
    "erroring": "Erroring",
    "ended": "Ended",
}


def _link(spec: ViewSpec, **changes: Any) -> str:
    """``?query`` of ``spec`` with ``changes``; the default view is the bare ``?``."""
    return "?" + urlencode(spec.as_params(**changes))


def _sort_headers(spec: ViewSpec) -> list[dict[str, Any]]:
    """The sortable headers: user id first, then every seed field."""
    current = spec.sort.lstrip("-")
    descending = spec.sort.startswith("-")
    headers = []
    for field, label, numeric in [("user_id", "User", False), *((c.field, c.label, c.numeric) for c in COLUMNS)]:
        if field == current:
            next_sort = field if descending else f"-{field}"
            order = "descending" if descending else "ascending"
        else:
            # Numbers and times read best largest/newest first; names alphabetically.
            next_sort = field if field == "user_id" else f"-{field}"
            order = ""
        headers.append(
            {
                "field": field,
                "label": label,
                "numeric": numeric,
                "order": order,
                "url": _link(spec, sort=next_sort, page=1),
            }
        )
    return headers


def _page_links(result: ViewResult) -> list[dict[str, Any]]:
    """Page numbers around the current page and at both ends, with gaps as ``None`` urls."""
    spec, pages = result.spec, result.pages
    wanted = {1, 2, pages - 1, pages, *range(spec.page - 2, spec.page + 3)}
    links: list[dict[str, Any]] = []
    previous = 0
    for number in sorted(n for n in wanted if 1 <= n <= pages):
        if number - previous > 1:
            links.append({"number": None, "url": None, "current": False})
        links.append({"number": number, "url": _link(spec, page=number), "current": number == spec.page})
        previous = number
    return links


def _empty_reason(snapshot: Snapshot, result: ViewResult, spec: ViewSpec) -> str | None:
    """Why the table is empty, in words (None when it is not)."""
    if result.users:
        return None
    if spec.state == ENDED:
        return "No user ended within the retention period, or none matches this search."
    if not snapshot.sources:
        return "No sources are configured, so there are no users to show."
    if not snapshot.users:
        if all(s.state != "ok" for s in snapshot.sources):
            return "Every source is down: there is no data to show. See the sources above for their errors."
        return "No users yet: no source reports a per-user workflow."
    return "No user matches this search and filter."


def ws_user_path(user_id: str) -> str:
    """The websocket path of one user's feed (the detail page's URL under ``/ws/monitor``)."""
    return "/ws/monitor" + reverse("usermetrics:user-detail", args=[user_id])


def _stuck_after() -> timedelta:
    """The stuck flag's threshold: the lifecycle words use it too, so they never disagree with the flag."""
    return timedelta(seconds=float(get_config()["FLAGS"]["STUCK_AFTER"]))


def _page_config(snapshot: Snapshot, **extra: Any) -> dict[str, Any]:
    """What the page's script needs, handed over with ``json_script``."""
    detail = reverse("usermetrics:user-detail", args=["ID"])
    return {
        "seq": snapshot.seq,
        "timestamp": snapshot.timestamp.isoformat(),
        "interval": services.get_service().interval,
        "detail_prefix": detail[: -len("ID/")],
        "stuck_after": _stuck_after().total_seconds(),
        **extra,
    }


def _ended_page(spec: ViewSpec, labels: Mapping[str, str]) -> tuple[ViewResult, dict[str, history.EndedUser]]:
    """A page of the ended users (from the history store, paged in the database)."""
    qs = history.ended_users_view(q=spec.q, sort=spec.sort, labels=labels)
    # The page maths of page_of on the count alone; only the page's rows are read.
    result = page_of(range(qs.count()), spec)
    start = (result.spec.page - 1) * result.spec.page_size
    ended = [history.ended_user(row) for row in qs[start : start + result.spec.page_size]]
    return replace(result, users=[e.usage for e in ended]), {e.user_id: e for e in ended}


def _rows(
    snapshot: Snapshot, result: ViewResult, ended: Mapping[str, history.EndedUser], window: str, enabled: bool
) -> list[dict[str, Any]]:
    """The table's rows: each user with its window's rates, flags and sparkline (for this page only)."""
    windows: dict[str, history.RowWindow] = {}
    if enabled and result.users:
        windows = history.rows_window(
            snapshot,
            user_ids=[u.user_id for u in result.users],
            window=history.window_parse(window),
            timeouts=history.source_timeouts(services.get_service()),
        )
    rows = []
    for usage in result.users:
        row = windows.get(usage.user_id)
        rows.append(
            {
                "usage": usage,
                "ended": ended.get(usage.user_id),
                "rates": _rates(row.stats) if row is not None else None,
                "flags": row.flags if row is not None else [],
                "sparkline": row.sparkline if row is not None else None,
            }
        )
    return rows


@never_cache
@staff_member_required
def user_list(request: HttpRequest) -> HttpResponse:
    """Every user of every source: summary cards, then a sortable, searchable, filtered, paged table.

    Each row also shows its window's rates, lifecycle flags and an activity sparkline, read from
    the history for the page's users only. ``state=ended`` lists the users that left, from the
    history; a flag state filters every user by its flags (one aggregate query).
    """
    snapshot = async_to_sync(services.snapshot_get)()
    labels = identity_labels()
    spec = ViewSpec.from_params(request.GET)
    enabled = history.history_enabled()
    ended: dict[str, history.EndedUser] = {}
    if spec.state == ENDED and enabled:
        result, ended = _ended_page(spec, labels)
    else:
        flags = flag_names_get(snapshot) if spec.state in FLAG_STATES else None
        result = view_select(snapshot, spec, labels=labels, flags=flags)
    spec = result.spec  # a page past the end is shown as the last page
    rows = _rows(snapshot, result, ended, spec.window, enabled)
    # Exports take the whole filtered list: every parameter but the paging.
    export_query = "?" + urlencode(spec.as_params(page=1, page_size=DEFAULT_PAGE_SIZE))
    context = {
        **admin.site.each_context(request),
        # The table is wide: leave the admin's app sidebar to the admin pages.
        "is_nav_sidebar_enabled": False,
        "title": "User metrics",
        "snapshot": snapshot,
        "now": snapshot.timestamp,
        "labels": labels,
        "summary": summary_get(snapshot),
        "spec": spec,
        "result": result,
        "rows": rows,
        "history_enabled": enabled,
        "columns": COLUMNS,
        "groups": GROUPS,
        "headers": _sort_headers(spec),
        "page_links": _page_links(result) if result.pages > 1 else [],
        "page_sizes": PAGE_SIZES,
        "state_links": [
            {"value": value, "label": label, "url": _link(spec, state=value, page=1), "current": value == spec.state}
            for value, label in STATE_LABELS.items()
            if value in ("", *STATES) or (enabled and value in (*FLAG_STATES, ENDED))
        ],
        "window_links": [
            {"name": name, "url": _link(spec, window=name, page=1), "current": name == spec.window}
            for name in RATE_WINDOWS
        ],
        "export_csv": reverse("usermetrics:api-export-users-csv") + export_query,
        "export_json": reverse("usermetrics:api-export-users-json") + export_query,
        # The rows' activity sparklines, drawn by charts.js (json_script: no inline script).
        "sparklines": {r["usage"].user_id: r["sparkline"] for r in rows if r["sparkline"] is not None},
        "clear_url": _link(spec, q="", state="", page=1),
        "empty_reason": _empty_reason(snapshot, result, spec),
        "first_index": (spec.page - 1) * spec.page_size + 1,
        "last_index": (spec.page - 1) * spec.page_size + len(result.users),
        "page_config": _page_config(
            snapshot,
            page="list",
            ws="/ws/monitor/",
            view=result.meta(),
            window_url=reverse("usermetrics:api-users-window") if enabled else None,
        ),
    }
    return TemplateResponse(request, "usermetrics/user_list.html", context)


CHART_WINDOWS = history.CHART_WINDOWS
DEFAULT_CHART_WINDOW = "1h"


def _rates(stats: history.WindowStats) -> dict[str, str]:
    return humanize.rates_words(stats.requests_per_min, stats.error_rate, stats.latency_ms)


def _thresholds() -> str:
    """The lifecycle flags' thresholds in words (the detail page explains what each flag means)."""
    cfg = get_config()["FLAGS"]
    return (
        f"idle after {humanize.duration_words(float(cfg['IDLE_AFTER']))} without activity;"
        f" stuck after {humanize.duration_words(float(cfg['STUCK_AFTER']))} with requests in flight"
        f" but no activity; rising when the exit stack or functions grow by {int(cfg['RISING_MIN'])} or more"
        f" over {cfg['WINDOW']}; erroring when {float(cfg['ERROR_RATE']):.0%} or more of at least"
        f" {int(cfg['ERROR_MIN_REQUESTS'])} requests over {cfg['WINDOW']} failed."
    )


@never_cache
@staff_member_required
def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user's metrics grouped as session / requests / memory, its lifecycle, history charts and sources.

    A user no source reports any more but the history still holds is shown as ended, with its last
    known values; only an id nobody ever saw is a 404.
    """
    snapshot = async_to_sync(services.snapshot_get)()
    usage = snapshot.by_id.get(user_id)
    labels = identity_labels()
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "is_nav_sidebar_enabled": False,
        "title": user_display(user_id, labels),
        "user_id": user_id,
        "snapshot": snapshot,
        "now": snapshot.timestamp,
    }
    enabled = history.history_enabled()
    ended = history.ended_user_get(user_id=user_id) if usage is None and enabled else None
    if usage is None and ended is None:
        # Not found is a 404, but still a page in the admin's chrome that says why.
        return TemplateResponse(request, "usermetrics/user_missing.html", context, status=404)
    window_name = request.GET.get("window") or DEFAULT_CHART_WINDOW
    if window_name not in CHART_WINDOWS:
        window_name = DEFAULT_CHART_WINDOW
    evicted_at = snapshot.evicted_at(user_id) if usage is not None else None
    origins = snapshot.origins.get(user_id, ()) if usage is not None else ended.sources if ended else ()
    shown = usage if usage is not None else ended.usage if ended else None
    context.update(
        usage=shown,
        ended=ended,
        label=labels.get(user_id),
        origins=origins,
        parts=snapshot.parts.get(user_id, []),
        stale=snapshot.user_is_stale(user_id),
        lifecycle=ended.ended_ago(snapshot.timestamp)
        if ended
        else humanize.lifecycle_words(shown, snapshot.timestamp, evicted_at, stuck_after=_stuck_after()),
        history_enabled=enabled,
    )
    history_url = reverse("usermetrics:api-user-history", args=[user_id])
    if enabled:
        timeout = history.user_timeout(origins, history.source_timeouts(services.get_service()))
        window_query = "?" + urlencode({"window": window_name})
        stats, flags = history.user_window(
            user_id=user_id, usage=usage, window=history.window_parse(window_name), timeout=timeout
        )
        context.update(
            window=window_name,
            window_links=[
                {"name": name, "url": "?" + urlencode({"window": name}), "current": name == window_name}
                for name in CHART_WINDOWS
            ],
            rates=_rates(stats),
            window_requests=stats.requests,
            flags=flags,
            thresholds=_thresholds(),
            export_csv=reverse("usermetrics:api-user-history-csv", args=[user_id]) + window_query,
            export_json=reverse("usermetrics:api-user-history-json", args=[user_id]) + window_query,
        )
    context["page_config"] = _page_config(
        snapshot,
        page="detail",
        ws=ws_user_path(user_id),
        user_id=user_id,
        evicted_at=evicted_at.isoformat() if evicted_at is not None else None,
        ended=ended is not None,
        history_url=history_url if enabled else None,
        window=window_name,
    )
    return TemplateResponse(request, "usermetrics/user_detail.html", context)

"""Admin-style HTML pages (sync views): the live user list and one user's detail, staff only.

The pages are complete without JavaScript: sorting, search, filters and paging are plain links
and a GET form over the same ``ViewSpec`` that the websocket feed uses. The page's script then
subscribes to that view and keeps it current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache

from usermetrics import humanize, services
from usermetrics.feed import PAGE_SIZES, STATES, ViewResult, ViewSpec, summary_get, view_select
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
STATE_LABELS = {"": "All", "active": "Active", "idle": "Idle", "errors": "With errors"}


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


def _empty_reason(snapshot: Snapshot, result: ViewResult) -> str | None:
    """Why the table is empty, in words (None when it is not)."""
    if result.users:
        return None
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


def _page_config(snapshot: Snapshot, **extra: Any) -> dict[str, Any]:
    """What the page's script needs, handed over with ``json_script``."""
    detail = reverse("usermetrics:user-detail", args=["ID"])
    return {
        "seq": snapshot.seq,
        "timestamp": snapshot.timestamp.isoformat(),
        "interval": services.get_service().interval,
        "detail_prefix": detail[: -len("ID/")],
        **extra,
    }


@never_cache
@staff_member_required
def user_list(request: HttpRequest) -> HttpResponse:
    """Every user of every source: summary cards, then a sortable, searchable, filtered, paged table."""
    snapshot = async_to_sync(services.snapshot_get)()
    labels = identity_labels()
    spec = ViewSpec.from_params(request.GET)
    result = view_select(snapshot, spec, labels=labels)
    spec = result.spec  # a page past the end is shown as the last page
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
        "columns": COLUMNS,
        "groups": GROUPS,
        "headers": _sort_headers(spec),
        "page_links": _page_links(result) if result.pages > 1 else [],
        "page_sizes": PAGE_SIZES,
        "state_links": [
            {"value": value, "label": label, "url": _link(spec, state=value, page=1), "current": value == spec.state}
            for value, label in STATE_LABELS.items()
            if value == "" or value in STATES
        ],
        "clear_url": _link(spec, q="", state="", page=1),
        "empty_reason": _empty_reason(snapshot, result),
        "first_index": (spec.page - 1) * spec.page_size + 1,
        "last_index": (spec.page - 1) * spec.page_size + len(result.users),
        "page_config": _page_config(snapshot, page="list", ws="/ws/monitor/", view=result.meta()),
    }
    return TemplateResponse(request, "usermetrics/user_list.html", context)


@never_cache
@staff_member_required
def user_detail(request: HttpRequest, user_id: str) -> HttpResponse:
    """One user's metrics grouped as session / requests / memory, its lifecycle and its sources."""
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
    if usage is None:
        # Not found is a 404, but still a page in the admin's chrome that says why.
        return TemplateResponse(request, "usermetrics/user_missing.html", context, status=404)
    evicted_at = snapshot.evicted_at(user_id)
    context.update(
        usage=usage,
        label=labels.get(user_id),
        origins=snapshot.origins.get(user_id, ()),
        parts=snapshot.parts.get(user_id, []),
        stale=snapshot.user_is_stale(user_id),
        lifecycle=humanize.lifecycle_words(usage, snapshot.timestamp, evicted_at),
        page_config=_page_config(
            snapshot,
            page="detail",
            ws=ws_user_path(user_id),
            user_id=user_id,
            evicted_at=evicted_at.isoformat() if evicted_at is not None else None,
        ),
    )
    return TemplateResponse(request, "usermetrics/user_detail.html", context)

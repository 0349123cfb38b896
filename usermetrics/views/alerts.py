"""The alerts page and its test-send button (sync views), staff only.

What fires comes from the incidents in the database (``services.alerts_overview_get``); the
header's count on every page comes from the latest board (``frame.board_context``).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from usermetrics import services
from usermetrics.conf import get_config

from .context import board_context, page_config


@never_cache
@staff_member_required
def alerts(request: HttpRequest) -> HttpResponse:
    """Firing now, recent incidents, deliveries, the rules and silences, and the test send."""
    board = services.board_get()
    # The incidents are in the database: while it is unreachable only what fires now (from the board) shows.
    overview = services.history_or_none(services.alerts_overview_get)
    context = {
        **board_context(request, board, history_unavailable=overview is None),
        "title": "Alerts",
        "overview": overview,
        "alerts_enabled": get_config().alerts.enabled,
        # The page only follows what every frame carries (the header's count, the banners), so it
        # watches the smallest view there is.
        "page_config": page_config(board, page="alerts", ws="/ws/monitor/"),
    }
    return TemplateResponse(request, "usermetrics/alerts.html", context)


@require_POST
@staff_member_required
def alerts_test(request: HttpRequest) -> HttpResponse:
    """Send one test notification through every configured route; each route's result as a message."""
    results = services.alerts_test_send()
    if not results:
        messages.warning(
            request, "No alert route is configured: set USERMETRICS_ALERT_URLS or give a rule its own routes."
        )
    for r in results:
        if r.ok:
            messages.success(request, f"{r.route}: sent.")
        else:
            messages.error(request, f"{r.route}: failed ({r.error}).")
    return HttpResponseRedirect(reverse("usermetrics:alerts"))

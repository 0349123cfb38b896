"""The user page's Actions panel and its forms (sync views), staff with the ``act_on_users`` permission to act.

Each button is a plain POST form with Django's CSRF token (``actions.js`` only adds a confirmation
dialog); the view asks ``services.user_action_do``, says each worker's answer as a Django message
and goes back to the user's page, where the panel shows the running hold and the action log.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from usermetrics import humanize, services

# The hold durations the page offers (the API takes any number of seconds up to a week).
HOLD_CHOICES = [(300, "5 minutes"), (900, "15 minutes"), (3600, "1 hour"), (4 * 3600, "4 hours"), (86400, "24 hours")]
WORDS = {"evict": "Evicted", "hold": "Held", "release": "Released"}


def actions_context(request: HttpRequest, user_id: str) -> dict[str, Any]:
    """The Actions panel of the user page (``includes/user_actions.html``): forms, the running hold, the log.

    While the database cannot be read the panel says so and offers no button.
    """
    panel = services.history_or_none(services.user_actions_panel_get, user_id=user_id)
    return {
        "actions": {
            "panel": panel,
            "can_act": request.user.has_perm(services.PERMISSION),
            "permission_words": services.PERMISSION_WORDS + ".",
            "hold_choices": HOLD_CHOICES,
            "log": [_log_row(a) for a in panel.log] if panel else [],
            "urls": {a: reverse("usermetrics:user-action", args=[user_id, a]) for a in services.ACTIONS},
        }
    }


def _log_row(action: Any) -> dict[str, Any]:
    """One line of the action log: the outcome in words and each worker's answer."""
    return {
        "action": action,
        "words": services.outcome_words(action.outcome, action.results),
        "results": [{"worker": worker, **answer} for worker, answer in action.results.items()],
    }


def _hold_seconds(request: HttpRequest) -> float | None:
    """The form's hold duration, one of the page's choices (None: absent or not one of them)."""
    try:
        seconds = int(request.POST.get("seconds", ""))
    except ValueError:
        return None
    return float(seconds) if seconds in dict(HOLD_CHOICES) else None


@require_POST
@staff_member_required
def user_action(request: HttpRequest, user_id: str, action: str) -> HttpResponse:
    """Evict, hold or release the user from its page; each worker's answer as a message, back to the page."""
    if action not in services.ACTIONS:
        raise Http404("No such action")
    if not request.user.has_perm(services.PERMISSION):
        raise PermissionDenied(services.PERMISSION_WORDS)
    back = HttpResponseRedirect(reverse("usermetrics:user-detail", args=[user_id]))
    try:
        done = async_to_sync(services.user_action_do)(
            user_id=user_id,
            action=action,
            by_user=request.user,
            by_label=request.user.get_username(),
            reason=request.POST.get("reason", "").strip(),
            hold_seconds=_hold_seconds(request) if action == "hold" else None,
        )
    except services.ActionRefused as exc:
        messages.error(request, str(exc))
        return back
    except services.ActionsUnavailable as exc:
        messages.error(request, f"No action was sent: {exc.state.words[0].lower()}{exc.state.words[1:]}")
        return back
    if done is None:
        messages.error(request, f"User {humanize.user_display(user_id, {})} {services.NOT_REPORTED}.")
        return back
    words = services.outcome_words(done.outcome, done.results)
    level = {"done": messages.SUCCESS, "partly": messages.WARNING}.get(done.outcome, messages.ERROR)
    verb = WORDS[action] if done.outcome == "done" else f"{action.capitalize()}:"
    messages.add_message(request, level, f"{verb} {humanize.user_display(user_id, {})} — {words}.")
    for worker, answer in done.results.items():
        detail = f" ({answer['message']})" if answer.get("message") else ""
        who = "The dashboard" if worker == services.BOARD else f"Worker {worker}"
        messages.info(request, f"{who}: {answer['status']}{detail}")
    return back

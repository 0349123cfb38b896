"""Acting on a user (async to act, sync to read): evict, hold or release it in every NAT worker that runs it.

The one door for the API and the user page. An action goes to the NAT companion streams that report
the user now (the published board: its sources, and each source's workers in state ok, who are the
answers waited for), as one ``Command`` (``usermetrics_nat.commands.command_new``); every worker's
answer, or "no answer" after ``ACTIONS_TIMEOUT``, is kept in a ``UserAction`` and an admin log entry.

An eviction is all or none as far as the board can see: while it shows the user with requests in
flight (over every source and worker) nothing is sent and the action is recorded refused, so that a
user idle in one worker and busy in another is not evicted in one of them. A request that starts
between that look and the command is the companions' to refuse, worker by worker ("partly").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.admin.models import ADDITION, LogEntry
from django.db.models import Q
from pydantic import ValidationError
from usermetrics_nat.commands import command_new

from usermetrics.board import Board
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.models import ActionKind, ActionOutcome, UserAction, user_id_printable, user_key
from usermetrics.publish.follower import ProducerState
from usermetrics.snapshot import in_flight, iso

from .commands import BOARD, MAX_HOLD, Target, answer_doc, commands_send, outcome_of, outcome_words
from .live import board_get, producer_state

ACTIONS = tuple(ActionKind.values)
PERMISSION = "usermetrics.act_on_users"
PERMISSION_WORDS = "You need the 'Can evict, hold and release users' permission"
MAX_REASON = 1000  # the command's own bound (``usermetrics_nat.commands.Command.reason``)
# No control character but tabs and line breaks (a NUL cannot even be stored); also the API schema's pattern.
REASON_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
NOT_REPORTED = "is not reported by any NAT companion: nothing was sent"
NOTHING_SENT = "the dashboard shows requests of this user in flight: no worker was asked"
TAKEN = (ActionOutcome.DONE, ActionOutcome.PARTLY)  # a hold or release that some worker carried out


class ActionRefused(ValueError):
    """An action that cannot be asked as it is (unknown action, no or too long a hold, too long a reason)."""


class ActionsUnavailable(RuntimeError):
    """No producer publishes: who reports the user now, and whether requests of it run, is not known."""

    def __init__(self, state: ProducerState) -> None:
        """The producer's ``state`` (its words say since when)."""
        super().__init__(state.words)
        self.state = state


@dataclass(frozen=True)
class ActionsPanel:
    """What the user page shows of actions: whether one can be sent, the running hold, the latest actions."""

    sendable: bool  # a NAT companion reports the user now: it can be evicted
    holdable: bool  # a hold or release can go to a companion stream (every one, when none reports the user)
    hold: UserAction | None
    log: list[UserAction]


def action_targets(board: Board, user_id: str, action: str = ActionKind.EVICT) -> list[Target]:
    """The companion streams to send ``action`` on ``user_id`` to, each with its workers in state ok.

    An eviction goes to the streams that report the user on ``board``. A hold or a release goes
    there too, or, when no stream reports the user (it was evicted, by NAT's idle clean-up or by
    us, or has not come yet), to every companion stream: a user can be held before it comes back.
    """
    entries = {e.name: e for e in get_config().sources if e.is_stream}
    health = board.health_by_name
    names = [name for name in (board.origins(user_id) if board.user(user_id) is not None else ()) if name in entries]
    if not names and action != ActionKind.EVICT:
        names = sorted(entries)
    targets = []
    for name in names:
        entry, source = entries[name], health.get(name)
        if source is None:
            continue  # configured but not in this board yet (a producer that just started): no workers known
        workers = tuple(w["label"] for w in source.workers or () if w.get("state") == "ok")
        target = Target(
            source=name, url=entry.url, stream=entry.stream_key, workers=workers, deployment=entry.deployment_name
        )
        targets.append(target)
    return targets


def _checked(action: str, reason: str, hold_seconds: float | None) -> timedelta | None:
    """How long a hold lasts (None for the other actions); ``ActionRefused`` says what is wrong."""
    if action not in ACTIONS:
        raise ActionRefused(f"Unknown action {action!r}: one of {', '.join(ACTIONS)}.")
    if len(reason) > MAX_REASON:
        raise ActionRefused(f"The reason is too long: at most {MAX_REASON} characters.")
    if not re.fullmatch(REASON_PATTERN, reason):
        # A NUL cannot even be stored (PostgreSQL): refused before the command goes, never after.
        raise ActionRefused("The reason cannot hold control characters.")
    if action != ActionKind.HOLD:
        return None
    if hold_seconds is None or not 1 <= hold_seconds <= MAX_HOLD.total_seconds():
        raise ActionRefused(f"A hold needs seconds between 1 and {int(MAX_HOLD.total_seconds())}.")
    return timedelta(seconds=hold_seconds)


async def user_action_do(
    *,
    user_id: str,
    action: str,
    by_user: Any,
    by_label: str,
    reason: str = "",
    hold_seconds: float | None = None,
) -> UserAction | None:
    """Ask every NAT worker that may run ``user_id`` to ``action`` it; the recorded action with each worker's answer.

    None (nothing sent, nothing recorded) when no companion stream can take it (``action_targets``).
    ``ActionRefused`` for an action that cannot be asked as it is, ``ActionsUnavailable`` while no
    producer publishes (nothing sent, nothing recorded). ``by_user``: the Django user
    who asked (None for an API token); ``by_label``: how the log names them.
    """
    length = _checked(action, reason, hold_seconds)
    state = producer_state()
    if not state.publishing:  # the last board may be long gone: nothing is sent on its word
        raise ActionsUnavailable(state)
    board = board_get()
    targets = action_targets(board, user_id, action)
    if not targets:
        return None
    timeout = get_config().actions_timeout
    until = utcnow() + length if length is not None else None
    # The command expires when the wait ends: a worker that reads it later answers "expired" and
    # does nothing, so an action reported "no answer" never takes effect behind the operator's back.
    try:
        command = command_new(
            action, user_id, expires_in=timedelta(seconds=timeout), until=until, by=by_label[:255], reason=reason
        )
    except ValidationError as exc:  # the command's own bounds: a user id over 1,024 characters
        raise ActionRefused(f"No command can name this user: {exc.errors()[0]['msg']}.") from None
    running = _running(board, user_id) if action == ActionKind.EVICT else 0
    # Kept before anything is sent: an action that cannot be logged (the database is down) is not taken.
    asked = await sync_to_async(_asked)(
        user_id=user_id,
        action=action,
        by_user=by_user,
        by=by_label[:255],
        reason=reason,
        until=until,
        command_id="" if running else command.id,
    )
    if running:  # all or none: no worker is asked while the board shows a request of the user anywhere
        results = {BOARD: answer_doc(BOARD, "refused", NOTHING_SENT, running, at=utcnow().isoformat())}
    else:
        results = dict(sorted((await commands_send(targets, command, wait=timeout)).items()))
    return await sync_to_async(_answered)(asked, results)


def _running(board: Board, user_id: str) -> int:
    """The user's requests in flight on ``board``, over every source and worker.

    NAT's count (``in_flight``) has the requests waiting on the user's semaphore too, but not a
    streamed answer still running or waiting once its session has ended: the companions' queue does.
    """
    i = board.index.get(user_id)
    if i is None:
        return 0
    extras = board.extras_at(i)
    return max(in_flight(board.usage_at(i)), extras.queued if extras is not None else 0)


def _asked(*, by_user: Any, **fields: Any) -> UserAction:
    """Keep the action as asked, before any worker answers (its outcome "no answer" until they do)."""
    asked = UserAction(by_user=by_user if by_user is not None and by_user.pk else None, **fields)
    asked.outcome = ActionOutcome.NO_ANSWER
    asked.save()
    return asked


def _answered(done: UserAction, results: dict[str, dict]) -> UserAction:
    """Keep every worker's answer and the outcome, and the admin's log entry when a Django user asked (LogEntry
    needs one)."""
    done.results, done.outcome = results, outcome_of(results)
    done.save(update_fields=["results", "outcome"])
    if done.by_user is not None:
        LogEntry.objects.log_actions(
            done.by_user.pk, [done], ADDITION, change_message=change_message(done), single_object=True
        )
    return done


def change_message(done: UserAction) -> str:
    """The admin log entry's words: action, user, reason, outcome and every worker's answer."""
    answers = "; ".join(
        f"{worker}: {r['status']}{' (' + r['message'] + ')' if r.get('message') else ''}"
        for worker, r in done.results.items()
    )
    until = f" until {iso(done.until)}" if done.until else ""
    return (
        f"{done.action}{until} of user {user_id_printable(done.user_id)}: {outcome_words(done.outcome, done.results)}."
        f" Reason: {done.reason or '(none)'}. Workers: {answers or '(none)'}."
    )


def action_doc(done: UserAction) -> dict[str, Any]:
    """The API's document of one action."""
    return {
        "id": done.pk,
        "user_id": done.user_id,
        "action": done.action,
        "by": done.by,
        "at": iso(done.at),
        "reason": done.reason,
        "until": iso(done.until),
        "command_id": done.command_id,
        "outcome": done.outcome,
        "words": outcome_words(done.outcome, done.results),
        "results": done.results,
    }


def user_actions_list(*, user_id: str, limit: int = 20) -> list[UserAction]:
    """The user's latest actions, newest first."""
    return list(UserAction.objects.filter(user_key=user_key(user_id)).order_by("-at", "-pk")[:limit])


def user_hold_get(*, user_id: str) -> UserAction | None:
    """The user's running hold: the latest hold that a worker took, not over and not released since by every
    worker; None."""
    mine = UserAction.objects.filter(user_key=user_key(user_id))
    taken = mine.filter(action=ActionKind.HOLD, until__gt=utcnow(), outcome__in=TAKEN)
    hold = taken.order_by("-at", "-pk").first()
    if hold is None:
        return None
    released = mine.filter(Q(at__gt=hold.at) | Q(at=hold.at, pk__gt=hold.pk), action=ActionKind.RELEASE)
    # A release only some workers carried out ("partly") leaves the others refusing the user: still held.
    return None if released.filter(outcome=ActionOutcome.DONE).exists() else hold


def user_actions_panel_get(*, user_id: str, limit: int = 20) -> ActionsPanel:
    """The user page's Actions panel: can an action be sent now, the running hold, the latest actions."""
    board = board_get()
    return ActionsPanel(
        sendable=bool(action_targets(board, user_id)),
        holdable=bool(action_targets(board, user_id, ActionKind.HOLD)),
        hold=user_hold_get(user_id=user_id),
        log=user_actions_list(user_id=user_id, limit=limit),
    )

"""Commands to a NAT deployment's companions through Redis (async, no Django): send one, wait for the answers.

The companion side (``usermetrics_nat.commands``) reads ``<stream>:commands`` in every worker and
writes each worker's ``Outcome`` into ``<stream>:results:<id>``; here one command is added to a
deployment's stream and its results hash is read until every expected worker has answered or the
deadline passes. A worker still silent then is "no answer": it is never waited on longer, and the
command's expiry (the same deadline) keeps it from acting when it reads the command later.

A worker that starts reads the stream from its start and takes up the holds in it (a hold is
state), so a command no worker carried out is taken back out of the stream once the wait is
over; and the stream keeps no command older than the longest hold (``MAX_HOLD``): an older one
has nothing left to say, and every starting worker would read it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from usermetrics_nat.commands import COMMAND_FIELD, Command, Outcome

from usermetrics.clock import utcnow

POLL = 0.05  # seconds between two reads of the results hash while answers are missing
MAX_HOLD = timedelta(days=7)  # the longest hold
KEPT = MAX_HOLD + timedelta(days=1)  # how long a command stays in the stream (a day more: clocks differ)
NO_ANSWER = "no answer"
# The results' key of an action the dashboard refused before sending anything (an eviction while in flight).
BOARD = "dashboard"


@dataclass(frozen=True)
class Target:
    """One companion stream to send a command to, and the workers (labels) expected to answer it."""

    source: str
    url: str  # Redis, with its credentials: never shown
    stream: str
    workers: tuple[str, ...]
    deployment: str | None = None  # whose workers carry it out (a stream may be shared); None: every reader


def answer_doc(source: str, status: str, message: str = "", in_flight: int = 0, at: str | None = None) -> dict:
    """One worker's answer as the action's record keeps it (``UserAction.results``)."""
    return {"source": source, "status": status, "message": message, "in_flight": in_flight, "at": at}


def _answers(source: str, raw: dict[bytes, bytes]) -> dict[str, dict]:
    """The results hash read as answer documents, by worker label (an answer that does not validate: failed)."""
    answers: dict[str, dict] = {}
    for label, body in raw.items():
        worker = label.decode(errors="replace")
        try:
            o = Outcome.model_validate_json(body)
        except ValidationError:
            answers[worker] = answer_doc(source, "failed", "the worker's answer does not validate")
            continue
        answers[worker] = answer_doc(source, o.status, o.message, o.in_flight, o.at.isoformat())
    return answers


async def command_send(target: Target, command: Command, *, wait: float) -> dict[str, dict]:
    """Add ``command`` to ``target``'s stream and collect the answers: every expected worker's, or until ``wait`` s.

    Answers of workers nobody expected (one that started since the board was published) are kept
    too. Redis unreachable: each expected worker is reported ``failed`` with the error (the source
    itself when no worker was expected). No worker did it: the command is taken back (``XDEL``).
    """
    deadline = time.monotonic() + wait
    key, stream = f"{target.stream}:results:{command.id}", f"{target.stream}:commands"
    redis = Redis.from_url(target.url, socket_timeout=wait, socket_connect_timeout=wait)
    answers: dict[str, dict] = {}
    try:
        oldest = f"{int((time.time() - KEPT.total_seconds()) * 1000)}-0"
        sent = command.model_copy(update={"deployment": target.deployment})
        entry = await redis.xadd(stream, {COMMAND_FIELD: sent.model_dump_json()}, minid=oldest, approximate=False)
        while True:
            answers = _answers(target.source, await redis.hgetall(key))
            # No worker expected (none running when the board was published): any that answers within the time.
            if target.workers and set(target.workers) <= set(answers):
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL)
        if not any(a["status"] == "done" for a in answers.values()):
            await redis.xdel(stream, entry)  # a worker that starts later must not take up what none carried out
    except (RedisError, OSError) as exc:
        failed = f"cannot reach the companions' Redis: {type(exc).__name__}: {exc}"
        expected = target.workers or (target.source,)
        return {w: answers.get(w) or answer_doc(target.source, "failed", failed) for w in expected}
    finally:
        await redis.aclose()
    at = utcnow().isoformat()
    for worker in target.workers:
        if worker not in answers:
            answers[worker] = answer_doc(target.source, NO_ANSWER, f"no answer within {wait:g} s", at=at)
    return answers


async def commands_send(targets: list[Target], command: Command, *, wait: float) -> dict[str, dict]:
    """``command`` to every target at once; all their workers' answers, by worker label."""
    results = await asyncio.gather(*(command_send(t, command, wait=wait) for t in targets))
    merged: dict[str, dict] = {}
    for answers in results:
        merged.update(answers)
    return merged


def outcome_of(results: dict[str, dict]) -> str:
    """The action's outcome over every worker's answer (``UserAction.outcome``).

    done: every worker did it or had nothing of the user to act on (``absent``); partly: some did it
    and some did not; refused: none did and some refused (an eviction with requests in flight);
    failed: none did and some failed or let it expire; no answer: none did and the others were silent.
    """
    statuses = {r["status"] for r in results.values()}
    if statuses <= {NO_ANSWER}:
        return NO_ANSWER
    if statuses <= {"done", "absent"}:
        return "done"
    if "done" in statuses:
        return "partly"
    if "refused" in statuses:
        return "refused"
    return "failed" if statuses & {"failed", "expired"} else NO_ANSWER


def outcome_words(outcome: str, results: dict[str, dict]) -> str:
    """The outcome in a few words, the requests that stopped an eviction counted: "refused: 2 requests running"."""
    running = sum(r.get("in_flight") or 0 for r in results.values() if r["status"] == "refused")
    silent = sum(1 for r in results.values() if r["status"] == NO_ANSWER)
    words = outcome
    if running:
        words += f": {running} request{'s' if running != 1 else ''} running"
    if silent and outcome != NO_ANSWER:
        words += f"{',' if running else ':'} {silent} worker{'s' if silent != 1 else ''} did not answer"
    return words

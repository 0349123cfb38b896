"""NAT workers' reports folded into users (sync, no Django): the state a companion stream source keeps.

Each NAT worker reports its own users (``usermetrics_nat.report``). ``Workers`` keeps the last
state of every worker (a user per endpoint: its raw line and what it says) and merges a user
across workers and endpoints into one row: the seed's record by ``merging.merge_usages`` (counts
and in-flight summed, earliest ``created_at``, latest ``last_activity``) and its ``Extras``
(histograms added, queues summed). A report is applied once: a worker's reports are numbered, and
one at or below the last applied is a duplicate (a stream entry read again after a takeover).

A worker's share of a user ends when the worker stops reporting (no report for ``silent_after``
of its intervals, or a goodbye), or when the user leaves that worker (NAT evicted it there). While
the user still runs on another worker, the counters of an ended share stay in its row, frozen
(in-flight and queue at zero): the requests happened, and a row whose counters went backwards
would look like a new workflow to the history. A user with no running share left leaves.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from usermetrics_nat.histogram import added
from usermetrics_nat.report import Header, Line

from usermetrics.extras import Extras, llm_added
from usermetrics.merging import merge_usages
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.shares import Key, Share, Worker, frozen, new_life, share_of

logger = logging.getLogger(__name__)

SILENT_AFTER = 3  # a worker that has not reported for this many of its intervals has stopped
TOMBSTONES = 50  # ended workers kept as they ended, in case one reports again


@dataclass
class Counted:
    """What was refused, by kind (each kind logged once)."""

    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, detail: str) -> None:
        """Count one refusal; the first of a kind is logged."""
        if kind not in self.by_kind:
            logger.warning("Companion stream: skipped %s (%s); counted, logged once", kind, detail[:300])
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    @property
    def total(self) -> int:
        """Everything refused."""
        return sum(self.by_kind.values())


class Workers:
    """Every worker's last state, and its users merged into one row each."""

    def __init__(self, deployment: str, *, silent_after: float = SILENT_AFTER) -> None:
        """Keep the reports of ``deployment`` only."""
        self.deployment = deployment
        self.silent_after = silent_after
        self.workers: dict[str, Worker] = {}
        self.ended: list[Worker] = []  # workers whose share ended, newest last (for the sources page)
        self.skipped = Counted()
        self.applied = 0
        self.duplicates = 0
        # user_id -> the frozen shares of workers and endpoints that ended while it ran elsewhere.
        self._retired: dict[str, list[Share]] = {}
        # user_id -> the running shares, by (worker key, endpoint).
        self._running: dict[str, dict[tuple[str, int], Share]] = {}
        self._rows: dict[str, PerUserResourceUsage] = {}
        self._extras: dict[str, Extras] = {}
        self._dirty: dict[str, None] = {}  # users to merge again, in the order they changed (rows keep it)
        # Workers ended here (silent, or said goodbye) as they were when they ended, newest last: one
        # that reports again (it was only slow, or Redis was away) takes up its shares again instead
        # of being counted twice, once frozen and once running.
        self._tombstones: OrderedDict[str, Worker] = OrderedDict()

    # -- applying reports ----------------------------------------------------------------------

    def apply(self, header: Header, raw_lines: Sequence[bytes], now: float) -> bool:
        """Apply one report at ``now``; False when it was not applied (another deployment, a duplicate)."""
        if header.deployment != self.deployment:
            self.skipped.add("another deployment", f"{header.deployment!r}, expected {self.deployment!r}")
            return False
        key = header.worker.key
        worker = self.workers.get(key)
        if worker is None:
            if header.bye and not raw_lines:
                return False  # the goodbye of a worker that ended here already
            worker = self._revive(key) or Worker(header.worker)
            self.workers[key] = worker
        if header.seq <= worker.seq:
            self.duplicates += 1
            return False
        if header.seq > worker.seq + 1 and worker.seq:
            worker.gaps += header.seq - worker.seq - 1
        seen: set[Key] = set()
        lines_by_digest = {share.digest: k for k, share in worker.shares.items()} if header.full else {}
        for raw in raw_lines:
            if not raw:
                continue
            known = lines_by_digest.get(hash(raw))
            if known is not None:
                seen.add(known)  # the very same line as before (a full report): nothing changed
                continue
            line = self._line(raw)
            if line is None:
                continue
            k = (line.e, line.u.user_id)
            seen.add(k)
            share = share_of(raw, line)
            before = worker.shares.get(k)
            if before is not None and new_life(before, share):
                self._life_ended(key, k, before)
            worker.shares[k] = share
            self._running.setdefault(k[1], {})[(key, k[0])] = share
            self._dirty.setdefault(k[1])
        leaving = [k for k in worker.shares if k not in seen] if header.full else [tuple(g) for g in header.gone]
        for k in leaving:
            self._retire(key, worker, k)  # type: ignore[arg-type]
        worker.seq = header.seq
        worker.seen_at = now
        worker.interval = header.interval
        worker.dropped = header.dropped
        self.applied += 1
        if header.bye:
            self._end(key)
        return True

    def _line(self, raw: bytes) -> Line | None:
        try:
            line = Line.model_validate_json(raw)
        except ValueError as exc:
            self.skipped.add("a user line that does not validate", str(exc))
            return None
        s = line.u.session
        if s.created_at.tzinfo is None or s.last_activity.tzinfo is None:
            self.skipped.add("a user line with naive times", line.u.user_id)
            return None
        return line

    def _retire(self, worker_key: str, worker: Worker, k: Key, *, ended: bool = False) -> None:
        share = worker.shares.pop(k, None)
        running = self._running.get(k[1])
        if share is None or running is None:
            return
        running.pop((worker_key, k[0]), None)
        if running:
            self._retired.setdefault(k[1], []).append(frozen(share, worker_key if ended else ""))
        else:
            # Nothing of the user runs any more: it leaves, and what ended with it is forgotten.
            del self._running[k[1]]
            self._retired.pop(k[1], None)
        self._dirty.setdefault(k[1])

    def _life_ended(self, worker_key: str, k: Key, before: Share) -> None:
        """The worker's workflow of the user ended and another began (NAT evicted and rebuilt it between
        two reports): the ended life's counters stay frozen while the user runs elsewhere."""
        running = self._running.get(k[1], {})
        if any(where != (worker_key, k[0]) for where in running):
            self._retired.setdefault(k[1], []).append(frozen(before))
        else:
            self._retired.pop(k[1], None)  # it ran nowhere else: a new life of the user, from zero

    def _end(self, worker_key: str) -> None:
        worker = self.workers.pop(worker_key)
        self._tombstones[worker_key] = replace(worker, shares=dict(worker.shares))
        while len(self._tombstones) > TOMBSTONES:
            self._tombstones.popitem(last=False)
        for k in list(worker.shares):
            self._retire(worker_key, worker, k, ended=True)
        self.ended = [*self.ended[-9:], worker]

    def _revive(self, worker_key: str) -> Worker | None:
        """An ended worker that reports again, with its shares as they were when it ended (None: not ended here)."""
        worker = self._tombstones.pop(worker_key, None)
        if worker is None:
            return None
        logger.warning("Companion stream: worker %s reports again; its share runs again", worker.identity.label)
        for e, user_id in worker.shares:
            frozen = self._retired.get(user_id)
            if frozen:
                kept = [s for s in frozen if s.ended_with != worker_key]
                if kept:
                    self._retired[user_id] = kept
                else:
                    del self._retired[user_id]
            self._running.setdefault(user_id, {})[(worker_key, e)] = worker.shares[(e, user_id)]
            self._dirty.setdefault(user_id)
        self.ended = [w for w in self.ended if w.identity.key != worker_key]
        return worker

    def end_silent(self, now: float) -> list[Worker]:
        """End the share of every worker that has not reported for ``silent_after`` of its intervals."""
        silent = [key for key, w in self.workers.items() if now - w.seen_at > self.silent_after * w.interval]
        ended = [self.workers[key] for key in silent]
        for key in silent:
            logger.warning(
                "Companion stream: worker %s stopped reporting; its share ends", self.workers[key].identity.label
            )
            self._end(key)
        return ended

    # -- the merged rows -----------------------------------------------------------------------

    def _merge(self, user_id: str) -> None:
        running = self._running.get(user_id)
        if not running:
            self._rows.pop(user_id, None)
            self._extras.pop(user_id, None)
            return
        shares = [*running.values(), *self._retired.get(user_id, ())]
        self._rows[user_id] = merge_usages(user_id, [s.usage for s in shares])
        self._extras[user_id] = Extras(
            latency=added(*(s.latency for s in shares)),
            queued=sum(s.queued for s in running.values()),
            max_concurrency=sum(s.max_concurrency for s in running.values()),
            wait_ms=sum(s.wait_ms for s in shares),
            run_ms=sum(s.run_ms for s in shares),
            workers=tuple(sorted({self._label(key) for key, _ in running})),
            llm=llm_added(*(s.llm for s in shares)),
            tool_calls=sum(s.tool_calls for s in shares),
        )

    def _label(self, worker_key: str) -> str:
        worker = self.workers.get(worker_key)
        return worker.identity.label if worker is not None else worker_key

    def rows(self) -> list[PerUserResourceUsage]:
        """One record per user running on any worker (unchanged users: the very same objects as before)."""
        for user_id in self._dirty:
            self._merge(user_id)
        self._dirty.clear()
        return list(self._rows.values())

    def extras(self) -> Mapping[str, Extras]:
        """Each user's merged extras (call ``rows()`` first: it brings both up to date)."""
        return self._extras

    def reset(self) -> None:
        """Forget every worker and user (a producer that takes over reads the stream again from its start)."""
        self.workers.clear()
        self.ended = []
        self._retired.clear()
        self._running.clear()
        self._rows.clear()
        self._extras = {}  # a new one: the monitor holds the last one handed out (``extras``) until a fetch succeeds
        self._dirty.clear()
        self._tombstones.clear()

    def summary(self, now: float | None = None) -> list[dict[str, Any]]:
        """Each worker, running or recently ended, as the sources page lists them.

        ``now`` (the source's clock, as ``apply`` was given): each says how long ago its last
        report was applied (``silent_s``; None without ``now``).
        """
        out = []
        for state, workers in (("ok", self.workers.values()), ("ended", reversed(self.ended))):
            for w in workers:
                out.append(
                    {
                        **w.identity.model_dump(mode="json"),
                        "label": w.identity.label,
                        "state": state,
                        "users": len({uid for _, uid in w.shares}),
                        "reports": w.seq,
                        "interval": w.interval,
                        "dropped": w.dropped,
                        "gaps": w.gaps,
                        "silent_s": None if now is None else round(max(0.0, now - w.seen_at), 1),
                    }
                )
        return out

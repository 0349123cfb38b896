"""Lives (sync ORM): tell a user's workflows apart and write what changed, one snapshot at a time.

A user that disappears is *ended* with its last values kept; a user whose ``created_at`` changed
or whose counters went backwards starts a *new life* (never negative traffic); a user that comes
back with the same ``created_at`` and counters that did not go backwards continues its life.
Every sample carries its change since the previous one, so windowed rates are sums.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import compress
from operator import is_not
from typing import Any

from django.db import transaction
from django.db.models import Max, OuterRef, Subquery

from usermetrics.conf import HistoryConfig
from usermetrics.extras import Extras
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.models import TotalsSample, UserLife, UserSample, user_key
from usermetrics.snapshot import Snapshot

from .latency import ZERO as ZERO_EXTRAS
from .latency import cumulative_of, sample_extras
from .llm_models import TokenColumns
from .samples import (
    COUNTER_FIELDS,
    NO_CHANGE,
    ZERO,
    Counters,
    OpenLife,
    RecordResult,
    chunks,
    counters_of,
    counters_stored,
    delta,
    insert_samples,
    totals_row,
)
from .tokens import NOTHING as NO_LLM
from .tokens import llm_cumulative_of


def is_new_life(old_created: datetime, old: Counters, created: datetime, new: Counters) -> bool:
    """A different workflow under the same user id: created again, or a counter went backwards."""
    return created != old_created or new.total_requests < old.total_requests or new.error_count < old.error_count


class LifeBook:
    """The open lives and the writing of one snapshot into the store (sync; one thread at a time)."""

    def __init__(self, config: HistoryConfig) -> None:
        """Write a user at most every ``config.sample_interval`` seconds, ``config.batch_size`` rows per INSERT."""
        self.sample_interval = timedelta(seconds=config.sample_interval)
        self.batch_size = config.batch_size
        self._open: dict[str, OpenLife] | None = None  # None until loaded from the database
        # The records of the last snapshot written (by user id): an unchanged user is the very same
        # object again, so only the others are looked at. And the users whose latest change the
        # sample interval held back, by the time of their last sample: looked at once that is due.
        self._seen: dict[str, PerUserResourceUsage] = {}
        self._held: dict[datetime | None, set[str]] = {}
        self.tokens = TokenColumns()

    def record(self, snapshot: Snapshot) -> RecordResult:
        """Write one snapshot: totals, changed users, new lives, ended users."""
        try:
            return self._record(snapshot)
        except Exception:
            # The memory of open lives (and of model names) may no longer match the rolled-back database: read it again.
            self._open = None
            self.tokens.ids.forget()
            raise

    def _record(self, snapshot: Snapshot) -> RecordResult:
        ts = snapshot.timestamp
        self.tokens.begin()
        cold = self._open is None
        if self._open is None:
            self._open = self._load_open()
            self._seen, self._held = {}, {}
        open_lives = self._open
        result = RecordResult()
        present = snapshot.by_id
        new_lives: list[tuple[UserLife, PerUserResourceUsage]] = []
        samples: list[tuple[Any, ...]] = []
        ended: list[OpenLife] = []
        reopened: list[int] = []
        # Python looks only at the users whose record changed: as the merge says, when it updated the
        # very snapshot written last (most refreshes), else found by one pass over all users in C.
        hint = snapshot.changed
        if hint is not None and hint[1] is self._seen:
            changed = list(hint[0])
        else:
            changed = list(compress(present, map(is_not, map(self._seen.get, present), present.values())))
        unknown = [uid for uid in changed if uid not in open_lives]
        latest = self._latest_lives(unknown) if unknown else {}
        joined: dict[tuple[str, ...], str] = {}
        held = self._held
        for uid in changed:
            usage = present[uid]
            origins = snapshot.origins.get(uid, ())
            sources = joined.get(origins)
            if sources is None:
                sources = joined[origins] = ",".join(origins)
            life = open_lives.get(uid)
            counters = counters_of(usage)
            created = usage.session.created_at
            if life is None:
                row = latest.get(uid)
                if row is not None and not is_new_life(row.created_at, counters_stored(row), created, counters):
                    # The same workflow back after a gap (a source that failed, then answered again).
                    stored = counters_stored(row)
                    life = OpenLife(
                        row.pk,
                        row.life,
                        row.created_at,
                        sources,
                        counters,
                        usage.session.last_activity,
                        stored,
                        row.ended_at,
                    )
                    open_lives[uid] = life
                    reopened.append(row.pk)
                else:
                    number = row.life + 1 if row is not None else 1
                    new_lives.append((_new_life(uid, number, usage, ts, sources, from_zero=not cold), usage))
                    continue
            elif is_new_life(life.created_at, life.counters, created, counters):
                ended.append(life)
                del open_lives[uid]
                new_lives.append((_new_life(uid, life.life + 1, usage, ts, sources, from_zero=True), usage))
                continue
            life.counters, life.last_activity, life.sources = counters, usage.session.last_activity, sources
            _extras_seen(life, snapshot.extras.get(uid))
            held.setdefault(life.written_ts, set()).add(uid)  # written below once due
        # Users with a change not written yet, once the sample interval since their last sample has
        # passed (entries of users written or ended meanwhile are passed over).
        for written_ts in [t for t in held if t is None or ts - t >= self.sample_interval]:
            for uid in held.pop(written_ts):
                life = open_lives.get(uid)
                if life is not None and uid in present and life.written_ts == written_ts:
                    if life.unwritten():
                        samples.append(_sample(life, ts, result, self.tokens))
        # The open lives are the users of the last snapshot written (once warm): when this one has
        # the same users, nobody left, and the set difference over everyone is not needed. Every user
        # new to the last snapshot is among the changed ones, so with as many users and none new, they
        # are the same users (a comparison of everyone's ids cost 0.6 s a refresh at a million users).
        seen = self._seen
        same_users = bool(seen) and len(seen) == len(present) and all(uid in seen for uid in changed)
        if not (same_users and len(open_lives) == len(present)):
            for uid in open_lives.keys() - present.keys():
                ended.append(open_lives.pop(uid))
        # A user that left with changes not yet written gets its last sample now.
        for life in ended:
            if life.unwritten():
                samples.append(_sample(life, ts, result, self.tokens))
        with transaction.atomic():
            if reopened:
                UserLife.objects.filter(pk__in=reopened).update(ended_at=None)
            if new_lives:
                rows = UserLife.objects.bulk_create([row for row, _ in new_lives], batch_size=self.batch_size)
                for row, (_, usage) in zip(rows, new_lives, strict=True):
                    life = OpenLife(
                        row.pk,
                        row.life,
                        row.created_at,
                        row.sources,
                        counters_of(usage),
                        usage.session.last_activity,
                        ZERO,
                        None,
                    )
                    _extras_seen(life, snapshot.extras.get(row.user_id))
                    open_lives[row.user_id] = life
                    samples.append(_sample(life, ts, result, self.tokens, first=True, from_zero=row.from_zero))
            insert_samples(samples, ts=ts, batch_size=self.batch_size)
            if ended:
                _end(ended, ended_at=_cold_end_time(ts) if cold else ts)
            totals_row(
                snapshot,
                d_requests=result.d_requests,
                d_errors=result.d_errors,
                d_latency_ms=result.d_latency_ms,
                extras=result.extras,
                tokens=result.tokens,
            ).save(force_insert=True)
        self._seen = present
        result.samples, result.new_lives, result.ended, result.reopened = (
            len(samples),
            len(new_lives),
            len(ended),
            len(reopened),
        )
        return result

    def _load_open(self) -> dict[str, OpenLife]:
        """Open lives with their newest sample: the state a restarted producer continues from."""
        open_lives: dict[str, OpenLife] = {}
        for row in UserLife.objects.filter(ended_at__isnull=True).iterator(chunk_size=2000):
            stored = counters_stored(row)
            open_lives[row.user_id] = OpenLife(
                row.pk, row.life, row.created_at, row.sources, stored, row.last_activity, stored, None
            )
        if not open_lives:
            return open_lives
        by_pk = {life.pk: life for life in open_lives.values()}
        # Only the newest sample of each life (a correlated lookup on the (life, ts) index), not
        # a week of samples per user.
        newest_ts = UserSample.objects.filter(life_id=OuterRef("life_id")).order_by("-ts").values("ts")[:1]
        for pk_chunk in chunks(list(by_pk), 500):
            newest = UserSample.objects.filter(life_id__in=pk_chunk, ts=Subquery(newest_ts))
            for s in newest.only(*COUNTER_FIELDS, "life_id", "ts"):
                life = by_pk[s.life_id]
                life.counters = life.written = counters_stored(s)
                life.written_ts = s.ts
        return open_lives

    def _latest_lives(self, user_ids: list[str]) -> dict[str, UserLife]:
        """The newest life of each of ``user_ids`` that has one (ended, since open ones are in memory)."""
        latest: dict[str, UserLife] = {}
        for chunk in chunks(user_ids, 500):
            for row in UserLife.objects.filter(user_key__in=[user_key(u) for u in chunk]).order_by("user_key", "life"):
                latest[row.user_id] = row  # ordered by life: the last one wins
        return latest


def _sample(
    life: OpenLife,
    ts: datetime,
    result: RecordResult,
    tokens: TokenColumns,
    *,
    first: bool = False,
    from_zero: bool = True,
) -> tuple[Any, ...]:
    c = life.counters
    if first:
        d = delta(c, None) if from_zero else NO_CHANGE
    else:
        d = delta(c, life.written)
    life.written, life.written_ts = c, ts
    result.d_requests += d.requests
    result.d_errors += d.errors
    result.d_latency_ms += d.latency_ms
    extras = None
    if life.extras is not None:
        # The companions' figures change as the counters do: from zero in a new life, a baseline
        # where the base is not known (a life already running at a start, or continued after one).
        base = (ZERO_EXTRAS if from_zero else None) if first else life.written_extras
        extras, counted = sample_extras(life.extras, base, life.queued)
        life.written_extras, life.written_queued = life.extras, life.queued
        result.add_extras(counted, d.latency_ms)
    llm: tuple[int | None, int | None, bytes | None] = (None, None, None)
    if life.llm is not None:
        # Tokens change by the same rule, priced at the prices in force now (``history.tokens``).
        llm = tokens.columns(life.llm, (NO_LLM if from_zero else None) if first else life.written_llm, result)
        life.written_llm = life.llm
    # A plain row in SAMPLE_COLUMNS order (see samples.insert_samples): no model instance per sample.
    return (life.pk, ts, *c, d.requests, d.errors, round(d.latency_ms, 3), d.exit_stack, d.functions, extras, *llm)


def _extras_seen(life: OpenLife, extras: Extras | None) -> None:
    """Remember the user's extras of the latest snapshot (a user without keeps what it had: nothing new)."""
    if extras is not None:
        life.extras, life.queued, life.llm = cumulative_of(extras), extras.queued, llm_cumulative_of(extras)


def _new_life(
    uid: str, number: int, usage: PerUserResourceUsage, ts: datetime, sources: str, *, from_zero: bool
) -> UserLife:
    return UserLife(
        user_id=uid,
        user_key=user_key(uid),
        life=number,
        created_at=usage.session.created_at,
        first_seen=ts,
        sources=sources,
        from_zero=from_zero,
    )


def _end(lives: list[OpenLife], *, ended_at: datetime) -> None:
    rows = [
        UserLife(
            pk=life.pk,
            ended_at=ended_at,
            last_activity=life.last_activity,
            sources=life.sources,
            **life.counters._asdict(),
        )
        for life in lives
    ]
    UserLife.objects.bulk_update(rows, ["ended_at", "last_activity", "sources", *COUNTER_FIELDS], batch_size=200)


def _cold_end_time(ts: datetime) -> datetime:
    """When users that vanished while no producer ran were last seen: the last recorded refresh."""
    last = TotalsSample.objects.filter(ts__lt=ts).aggregate(m=Max("ts"))["m"]
    return last or ts

"""Merging (sync, no Django): the records of every source into one snapshot, one record per user.

A user can appear in several sources (NAT processes) or endpoints: its records merge into one
(counts summed, latency weighted by requests, the earliest start and the latest activity).
Unchanged records are the very same objects between refreshes, and the merge keeps them so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import compress, count
from operator import attrgetter, is_not

from usermetrics.extras import Extras
from usermetrics.metrics import (
    PerUserMemoryMetrics,
    PerUserRequestMetrics,
    PerUserResourceUsage,
    PerUserSessionMetrics,
)
from usermetrics.snapshot import Snapshot, SourceHealth, weighted_latency

_user_id = attrgetter("user_id")


def merge_usages(user_id: str, records: Sequence[PerUserResourceUsage]) -> PerUserResourceUsage:
    """One user's records from several processes or endpoints, merged into one.

    Counts are summed, average latency is weighted by requests, ``created_at`` is the earliest,
    ``last_activity`` the latest, and ``is_active`` follows the summed references.
    """
    if len(records) == 1:
        return records[0]
    ref_count = sum(r.session.ref_count for r in records)
    return PerUserResourceUsage.model_construct(
        user_id=user_id,
        session=PerUserSessionMetrics.model_construct(
            created_at=min(r.session.created_at for r in records),
            last_activity=max(r.session.last_activity for r in records),
            ref_count=ref_count,
            is_active=ref_count > 0,
        ),
        requests=PerUserRequestMetrics.model_construct(
            total_requests=sum(r.requests.total_requests for r in records),
            active_requests=sum(r.requests.active_requests for r in records),
            avg_latency_ms=weighted_latency(records),
            error_count=sum(r.requests.error_count for r in records),
        ),
        memory=PerUserMemoryMetrics.model_construct(
            per_user_functions_count=sum(r.memory.per_user_functions_count for r in records),
            per_user_function_groups_count=sum(r.memory.per_user_function_groups_count for r in records),
            exit_stack_size=sum(r.memory.exit_stack_size for r in records),
        ),
    )


def ids_of(
    users: Sequence[PerUserResourceUsage], before: Sequence[PerUserResourceUsage], before_ids: Sequence[str]
) -> list[str]:
    """The ids of ``users``, reading only the records that are not the very ones at the same place ``before``.

    ``before_ids`` are the ids of ``before``. A source hands back the same record object for a
    user that did not change; reading an id off each of 100,000 records costs more than comparing
    every place.
    """
    if len(users) != len(before):
        return list(map(_user_id, users))
    ids = list(before_ids)
    for i in compress(count(), map(is_not, users, before)):
        ids[i] = users[i].user_id
    return ids


def merge(
    reports: Sequence[tuple[str, Sequence[PerUserResourceUsage]]],
    *,
    seq: int,
    timestamp: datetime,
    sources: list[SourceHealth],
    ids: Sequence[Sequence[str]] | None = None,
    extras: Mapping[str, Extras] | None = None,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Merge each source's users (``(source name, users)``, in source order) into one snapshot.

    ``ids``, when given, are each report's user ids in order (``ids_of``), so that no record is
    read for them. Users that only one source reports once (nearly all of them) are taken as they
    are, with one shared origins tuple per source; only the others are grouped and merged.
    ``previous``: the snapshot merged last; when every source reports the same users in the same
    places and none was merged, a copy of it is updated with the records that changed (``update``).
    """
    if ids is not None and previous is not None:
        updated = update(previous, reports, ids, seq=seq, timestamp=timestamp, sources=sources, extras=extras)
        if updated is not None:
            return updated
    reported = tuple((name, users, k_ids) for (name, users), k_ids in zip(reports, ids, strict=True)) if ids else ()
    by_id: dict[str, PerUserResourceUsage]
    if len(reports) == 1:
        # One source (the usual case), in C: the users by id, and duplicates only when there are any.
        name, users = reports[0]
        by_id = dict(zip(ids[0] if ids is not None else map(_user_id, users), users, strict=True))
        if len(by_id) == len(users):
            return Snapshot(
                timestamp=timestamp,
                seq=seq,
                users=list(by_id.values()),
                by_id=by_id,
                origins=dict.fromkeys(by_id, (name,)),
                parts={},
                sources=sources,
                extras=extras or {},
                reports=reported,
            )
    by_id = {}
    origins: dict[str, tuple[str, ...]] = {}
    grouped: dict[str, list[tuple[str, PerUserResourceUsage]]] = {}
    for k, (name, users) in enumerate(reports):
        origin = (name,)
        # One pass in Python (measured faster at a million users than building each report's table
        # in C and joining the tables); most refreshes do not come here (``update``).
        for user_id, usage in zip(ids[k] if ids is not None else map(_user_id, users), users, strict=True):
            first = by_id.get(user_id)
            if first is None:
                by_id[user_id] = usage
                origins[user_id] = origin
            elif user_id in grouped:
                grouped[user_id].append((name, usage))
            else:
                grouped[user_id] = [(origins[user_id][0], first), (name, usage)]
    parts: dict[str, list[tuple[str, PerUserResourceUsage]]] = {}
    for user_id, entries in grouped.items():
        by_id[user_id] = merge_usages(user_id, [usage for _, usage in entries])
        origins[user_id] = tuple(dict.fromkeys(name for name, _ in entries))
        parts[user_id] = entries
    return Snapshot(
        timestamp=timestamp,
        seq=seq,
        users=list(by_id.values()),
        by_id=by_id,
        origins=origins,
        parts=parts,
        sources=sources,
        extras=extras or {},
        reports=reported,
    )


def update(
    previous: Snapshot,
    reports: Sequence[tuple[str, Sequence[PerUserResourceUsage]]],
    ids: Sequence[Sequence[str]],
    *,
    seq: int,
    timestamp: datetime,
    sources: list[SourceHealth],
    extras: Mapping[str, Extras] | None,
) -> Snapshot | None:
    """``previous`` with the records of ``reports`` that changed, when its users are the same (None: merge afresh).

    The same users means every source reports the same ids in the same places as last time, and
    no user was merged (each reported once): then the users' order, their origins and their ids
    are last time's, and only the records that are not the very objects at the same place are
    put in a copy of the table (a copy: the history recorder may still read ``previous``). At a
    million users this is a copy in C instead of building the tables again.
    """
    before = previous.reports
    if previous.parts or not before or len(before) != len(reports):
        return None
    for (name, users), k_ids, (name_before, _, ids_before) in zip(reports, ids, before, strict=True):
        if name != name_before or len(users) != len(ids_before) or k_ids != ids_before:
            return None
    by_id = dict(previous.by_id)
    changed: list[str] = []
    for (_, users), k_ids, (_, users_before, _) in zip(reports, ids, before, strict=True):
        for i in compress(count(), map(is_not, users, users_before)):
            by_id[k_ids[i]] = users[i]
            changed.append(k_ids[i])
    return Snapshot(
        timestamp=timestamp,
        seq=seq,
        users=list(by_id.values()),
        by_id=by_id,
        origins=previous.origins,  # the same users from the same sources: never changed, so shared
        parts={},
        sources=sources,
        extras=extras or {},
        reports=tuple((name, users, k_ids) for (name, users), k_ids in zip(reports, ids, strict=True)),
        changed=(changed, previous.by_id),
    )

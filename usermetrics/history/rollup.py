"""Roll-ups and retention (sync ORM): every complete UTC hour into hourly tables, then prune old rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Min, Sum
from django.db.models.functions import TruncHour

from usermetrics.conf import HistoryConfig
from usermetrics.models import SourceSample, TotalsHourly, TotalsSample, UserHourly, UserLife, UserSample

from .latency import ExtrasSum, decode, encode_sum
from .partitions import drop_before, ensure_ahead, ensure_days
from .tokens import TokenSum, add_into
from .tokens import encode_sum as encode_tokens

HOUR = timedelta(hours=1)


def floor_hour(value: datetime) -> datetime:
    """The start of the UTC hour ``value`` is in."""
    return value.replace(minute=0, second=0, microsecond=0)


def rollup(*, now: datetime, batch_size: int = 1000) -> int:
    """Aggregate every complete UTC hour not rolled up yet into the hourly tables; return how many hours."""
    end = floor_hour(now)
    done = TotalsHourly.objects.aggregate(m=Max("hour"))["m"]
    start = done + HOUR if done is not None else None
    if start is None:
        first = TotalsSample.objects.aggregate(m=Min("ts"))["m"]
        if first is None:
            return 0
        start = floor_hour(first)
    if start >= end:
        return 0
    window = {"ts__gte": start, "ts__lt": end}
    totals = (
        TotalsSample.objects.filter(**window)
        .annotate(hour=TruncHour("ts", tzinfo=UTC))
        .values("hour")
        .annotate(
            n=Count("id"),
            dr=Sum("d_requests"),
            de=Sum("d_errors"),
            dl=Sum("d_latency_ms"),
            mu=Max("users"),
            ma=Max("active"),
            mi=Max("in_flight"),
            mx=Max("exit_stack"),
            dt=Sum("d_tokens"),
            dc=Sum("d_cost"),
        )
    )
    per_user = (
        UserSample.objects.filter(**window)
        .annotate(hour=TruncHour("ts", tzinfo=UTC))
        .values("life_id", "hour")
        .annotate(
            dr=Sum("d_requests"),
            de=Sum("d_errors"),
            dl=Sum("d_latency_ms"),
            dx=Sum("d_exit_stack"),
            df=Sum("d_functions"),
            mr=Max("ref_count"),
            mx=Max("exit_stack"),
            dt=Sum("d_tokens"),
            dc=Sum("d_cost"),
        )
    )
    # The histograms are bytes, summed here (only the rows that have one are read).
    user_rows = UserSample.objects.filter(**window).values_list("life_id", "ts", "extras")
    user_extras = _hourly_extras(user_rows, by_key=True)
    total_extras = _hourly_extras(TotalsSample.objects.filter(**window).values_list("id", "ts", "extras"), by_key=False)
    # Tokens per model likewise (a NULL column: no companion; empty bytes: a companion, no change).
    user_llm = _hourly_tokens(UserSample.objects.filter(**window).values_list("life_id", "ts", "llm"), by_key=True)
    total_llm = _hourly_tokens(TotalsSample.objects.filter(**window).values_list("id", "ts", "llm"), by_key=False)
    with transaction.atomic():
        ensure_days(UserHourly, start, end - HOUR)
        hours = [
            TotalsHourly(
                hour=t["hour"],
                samples=t["n"],
                d_requests=t["dr"],
                d_errors=t["de"],
                d_latency_ms=t["dl"] or 0.0,
                max_users=t["mu"],
                max_active=t["ma"],
                max_in_flight=t["mi"],
                max_exit_stack=t["mx"],
                extras=_column(total_extras, t["hour"]),
                d_tokens=t["dt"],
                d_cost=t["dc"],
                llm=_tokens_column(total_llm, t["hour"]),
            )
            for t in totals
        ]
        TotalsHourly.objects.bulk_create(hours, batch_size=batch_size, ignore_conflicts=True)
        batch: list[UserHourly] = []
        for u in per_user.iterator(chunk_size=batch_size):
            batch.append(
                UserHourly(
                    life_id=u["life_id"],
                    hour=u["hour"],
                    d_requests=u["dr"],
                    d_errors=u["de"],
                    d_latency_ms=u["dl"] or 0.0,
                    d_exit_stack=u["dx"],
                    d_functions=u["df"],
                    max_ref_count=u["mr"],
                    max_exit_stack=u["mx"],
                    extras=_column(user_extras, (u["life_id"], u["hour"])),
                    d_tokens=u["dt"],
                    d_cost=u["dc"],
                    llm=_tokens_column(user_llm, (u["life_id"], u["hour"])),
                )
            )
            if len(batch) >= batch_size:
                UserHourly.objects.bulk_create(batch, ignore_conflicts=True)
                batch = []
        UserHourly.objects.bulk_create(batch, ignore_conflicts=True)
        if not hours:
            # No totals in these hours (the dashboard was down): mark them done so they are not scanned again.
            TotalsHourly.objects.bulk_create([_empty_hour(end - HOUR)], ignore_conflicts=True)
    return len(hours)


def _hourly_extras(rows: Any, *, by_key: bool) -> dict[Any, ExtrasSum]:
    """The extras columns of ``rows`` ((key, ts, extras) tuples) summed per (key, UTC hour), or per hour."""
    out: dict[Any, ExtrasSum] = {}
    for key, ts, raw in rows.filter(extras__isnull=False).iterator(chunk_size=2000):
        hour = floor_hour(ts.astimezone(UTC))
        k = (key, hour) if by_key else hour
        one = decode(raw)
        if k in out:
            out[k].add(one)
        else:
            out[k] = one
    return out


def _hourly_tokens(rows: Any, *, by_key: bool) -> dict[Any, TokenSum]:
    """The ``llm`` columns of ``rows`` ((key, ts, llm) tuples) summed per (key, UTC hour), or per hour."""
    out: dict[Any, TokenSum] = {}
    for key, ts, raw in rows.filter(llm__isnull=False).iterator(chunk_size=2000):
        hour = floor_hour(ts.astimezone(UTC))
        add_into(raw, out.setdefault((key, hour) if by_key else hour, TokenSum()))
    return out


def _tokens_column(sums: dict[Any, TokenSum], key: Any) -> bytes | None:
    found = sums.get(key)
    return encode_tokens(found) if found is not None else None


def _column(sums: dict[Any, ExtrasSum], key: Any) -> bytes | None:
    found = sums.get(key)
    return encode_sum(found) if found is not None else None


def _empty_hour(hour: datetime) -> TotalsHourly:
    return TotalsHourly(
        hour=hour,
        samples=0,
        d_requests=0,
        d_errors=0,
        d_latency_ms=0.0,
        max_users=0,
        max_active=0,
        max_in_flight=0,
        max_exit_stack=0,
    )


def prune(*, now: datetime, raw_retention: timedelta, rollup_retention: timedelta) -> dict[str, int]:
    """Delete raw samples older than ``raw_retention`` and roll-ups and ended lives older than ``rollup_retention``.

    The per-user tables partitioned by day (PostgreSQL, ``partitions``) lose whole days instead:
    ``partitions`` counts the days dropped, and their rows stay until their whole day is past the cut.
    """
    raw_cut, rollup_cut = now - raw_retention, now - rollup_retention
    # Raw rows go only once their hour is rolled up (a dashboard down for days rolls up first).
    rolled = TotalsHourly.objects.aggregate(m=Max("hour"))["m"]
    raw_cut = min(raw_cut, rolled + HOUR) if rolled is not None else raw_cut
    out = {"partitions": 0}
    for key, model, cut, lookup in (
        ("samples", UserSample, raw_cut, {"ts__lt": raw_cut}),
        ("user_hours", UserHourly, rollup_cut, {"hour__lt": rollup_cut}),
    ):
        dropped = drop_before(model, cut)
        out["partitions"] += dropped or 0
        out[key] = model.objects.filter(**lookup).delete()[0] if dropped is None else 0
    out |= {
        "totals": TotalsSample.objects.filter(ts__lt=raw_cut).delete()[0],
        # Source health is raw history too: the same retention (sources have no roll-ups).
        "sources": SourceSample.objects.filter(ts__lt=raw_cut).delete()[0],
        "total_hours": TotalsHourly.objects.filter(hour__lt=rollup_cut).delete()[0],
    }
    out["lives"] = UserLife.objects.filter(ended_at__lt=rollup_cut).delete()[0]
    return out


def maintain(config: HistoryConfig, *, now: datetime) -> dict[str, int]:
    """Make the coming days' partitions, roll up complete hours, then prune what is older than the retention periods."""
    ensure_ahead(now)
    rolled = rollup(now=now, batch_size=config.batch_size)
    pruned = prune(now=now, raw_retention=config.raw_retention, rollup_retention=config.rollup_retention)
    return {"rolled_hours": rolled, **pruned}

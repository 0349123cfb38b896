"""Benchmark (async): collect_all_metrics() + model_dump_json() against orjson.dumps of plain dicts.

For 1k, 10k and 100k users in a runtime SessionManager, prints the best of several runs of
  - cold:   a new PerUserMetricsCollector each run (every user built and validated), then model_dump_json()
  - warm:   one collector across runs (as LocalSource keeps it) with 1% of the users changed
            between runs, the producer's steady state, then model_dump_json()
  - orjson: the same data built as plain dicts, then orjson.dumps
and the ratios to orjson. Usage: .venv/bin/python bench/snapshot.py [--repeat N] [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from usermetrics.metrics import PerUserMetricsCollector
from usermetrics.runtime import PerUserBuilder, PerUserBuilderInfo, SessionManager


async def _noop() -> None:
    return None


def populate(manager: SessionManager, users: int) -> None:
    """Fill the manager with ``users`` NAT-like users (no traffic needed)."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(users):
        builder = PerUserBuilder(f"user-{i:06d}")
        for n in range(1 + i % 3):
            builder.add_function(f"f{n}", None)
        if i % 4 == 0:
            builder.add_function_group("g", None)
        for _ in range(1 + i % 5):
            builder.push_resource(_noop)
        manager._per_user_builders[builder.user_id] = PerUserBuilderInfo(
            builder=builder,
            created_at=base + timedelta(seconds=i),
            last_activity=base + timedelta(seconds=2 * i),
            ref_count=i % 7 == 0,
            total_requests=i % 100,
            error_count=i % 9,
            total_latency_ms=float(i % 100) * 123.456,
        )


def as_dicts(manager: SessionManager) -> dict:
    """The same document as the collector's, as plain dicts (what a hand-rolled encoder would do)."""
    users = []
    for user_id, info in manager._per_user_builders.items():
        builder = info.builder
        users.append(
            {
                "user_id": user_id,
                "session": {
                    "created_at": info.created_at,
                    "last_activity": info.last_activity,
                    "ref_count": info.ref_count,
                    "is_active": info.ref_count > 0,
                },
                "requests": {
                    "total_requests": info.total_requests,
                    "active_requests": info.ref_count,
                    "avg_latency_ms": round(info.total_latency_ms / info.total_requests, 2)
                    if info.total_requests
                    else 0.0,
                    "error_count": info.error_count,
                },
                "memory": {
                    "per_user_functions_count": len(builder._per_user_functions),
                    "per_user_function_groups_count": len(builder._per_user_function_groups),
                    "exit_stack_size": len(builder._exit_stack._exit_callbacks),
                },
            }
        )
    return {"timestamp": datetime.now(), "total_active_users": len(users), "users": users}


def touch(manager: SessionManager, share: float, round_: int) -> None:
    """Change ``share`` of the users as one refresh interval of traffic would."""
    infos = list(manager._per_user_builders.values())
    step = max(1, int(1 / share))
    for info in infos[round_ % step :: step]:
        info.total_requests += 1
        info.total_latency_ms += 42.0
        info.last_activity += timedelta(seconds=1)


async def measure(users: int, repeat: int) -> dict[str, float]:
    """Best-of-``repeat`` seconds for the cold, warm and orjson paths, and the output size."""
    manager = SessionManager()
    populate(manager, users)
    warm_collector = PerUserMetricsCollector(manager)
    await warm_collector.collect_all_metrics()
    best = {"cold": float("inf"), "warm": float("inf"), "orjson": float("inf")}
    size = 0
    for round_ in range(repeat):
        started = time.perf_counter()
        out = (await PerUserMetricsCollector(manager).collect_all_metrics()).model_dump_json()
        best["cold"] = min(best["cold"], time.perf_counter() - started)
        touch(manager, 0.01, round_)
        started = time.perf_counter()
        out = (await warm_collector.collect_all_metrics()).model_dump_json()
        best["warm"] = min(best["warm"], time.perf_counter() - started)
        started = time.perf_counter()
        orjson.dumps(as_dicts(manager))
        best["orjson"] = min(best["orjson"], time.perf_counter() - started)
        size = len(out)
    best["kib"] = size / 1024
    return best


async def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    print(f"{'users':>8} {'cold ms':>9} {'warm ms':>9} {'orjson ms':>10} {'cold/oj':>8} {'warm/oj':>8} {'KiB':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        r = await measure(size, args.repeat)
        print(
            f"{size:>8} {r['cold'] * 1000:>9.1f} {r['warm'] * 1000:>9.1f} {r['orjson'] * 1000:>10.1f} "
            f"{r['cold'] / r['orjson']:>8.2f} {r['warm'] / r['orjson']:>8.2f} {r['kib']:>7.0f}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())

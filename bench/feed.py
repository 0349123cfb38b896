"""Benchmark (async): what one refresh costs the live feed, by users and connected clients.

For 1k, 10k and 100k users, prints the best of several runs of
  - frame:   building and serializing the default list view's frame from a new board (one page of
             100, the summary, the sort), the work done once per distinct view per refresh
  - publish: the producer's FrameBuilder and one group_send to N channels watching that one view
             over Channels' in-memory layer (the frame is built once; the layer copies the text
             per channel)
and the frame's size. Usage: .venv/bin/python bench/feed.py [--sizes 1000,10000] [--clients 1,100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The feed reads settings (frame budget, identity labels): a throwaway configuration will do.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from channels.layers import InMemoryChannelLayer  # noqa: E402

from usermetrics.board import Board  # noqa: E402
from usermetrics.clock import utcnow  # noqa: E402
from usermetrics.feed.builder import EVENT_TYPE, FrameBuilder, view_frame  # noqa: E402
from usermetrics.feed.views import View  # noqa: E402
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage  # noqa: E402
from usermetrics.monitor import MonitorService  # noqa: E402
from usermetrics.packing import BoardCache, board_build  # noqa: E402
from usermetrics.selection import FLAG_STATES, ViewSpec  # noqa: E402


class FixedSource:
    """A source that answers with the same users every time."""

    kind = "bench"
    timezone = None
    per_user_workflow_timeout = None

    def __init__(self, users: list[PerUserResourceUsage]) -> None:
        """Serve ``users``."""
        self.name = "bench"
        self.users = users

    async def fetch(self) -> PerUserMonitorResponse:
        """The users, as NAT would answer."""
        return PerUserMonitorResponse.model_construct(total_active_users=len(self.users), users=self.users)


def make_users(count: int) -> list[PerUserResourceUsage]:
    """``count`` NAT-like user records."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        PerUserResourceUsage.model_validate(
            {
                "user_id": f"user-{i:06d}@example.com",
                "session": {
                    "created_at": base,
                    "last_activity": base + timedelta(seconds=i),
                    "ref_count": i % 3,
                    "is_active": i % 3 > 0,
                },
                "requests": {
                    "total_requests": i % 97,
                    "active_requests": i % 3,
                    "avg_latency_ms": 12.5,
                    "error_count": i % 7,
                },
                "memory": {"per_user_functions_count": 2, "per_user_function_groups_count": 1, "exit_stack_size": 3},
            }
        )
        for i in range(count)
    ]


async def board_of(service: MonitorService, cache: BoardCache) -> Board:
    """A new board of the service's users (a new refresh: nothing memoized from the last run)."""
    snapshot = await service.refresh()
    return board_build(snapshot, producer="bench", published_at=utcnow(), cache=cache, flag_names=FLAG_STATES)


async def bench(users: int, clients: list[int], repeat: int) -> None:
    """Print the frame and publish timings for ``users``."""
    service = MonitorService([FixedSource(make_users(users))])
    cache = BoardCache()
    view = View(spec=ViewSpec())
    frame_best = float("inf")
    size = 0
    for _ in range(repeat):
        board = await board_of(service, cache)
        started = time.perf_counter()
        text, _ = view_frame(board, view, labels={})
        frame_best = min(frame_best, time.perf_counter() - started)
        size = len(text.encode())
    print(f"{users:>7} users  frame {frame_best * 1000:8.1f} ms  {size / 1024:6.1f} KiB")
    for count in clients:
        layer = InMemoryChannelLayer(capacity=10)
        for _ in range(count):
            await layer.group_add(view.group, await layer.new_channel())
        builder = FrameBuilder()
        best = float("inf")
        for _ in range(repeat):
            board = await board_of(service, cache)
            started = time.perf_counter()
            for group, text in builder.frames(board, {view.group: view}, labels={}):
                await layer.group_send(group, {"type": EVENT_TYPE, "text": text, "seq": board.seq})
            best = min(best, time.perf_counter() - started)
            await layer.flush()
        print(
            f"{'':>7}        publish to {count:>5} clients {best * 1000:8.1f} ms  ({builder.frames_built} frames built)"
        )


def main() -> None:
    """Parse arguments and run every size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--clients", default="1,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    for size in (int(s) for s in args.sizes.split(",")):
        asyncio.run(bench(size, clients, args.repeat))


if __name__ == "__main__":
    main()

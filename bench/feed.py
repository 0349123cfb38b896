"""Benchmark (async): what one refresh costs the live feed, by users and connected clients.

For 1k, 10k and 100k users, prints the best of several runs of
  - frame:   building and serializing the default list view's frame from a new board (one page of
             100, the summary, the sort), the work done once per distinct view per refresh
  - publish: the producer's FrameBuilder, the face's message (``face_messages``) and the face's
             follower handing the frame to N sockets watching that one view, until every socket
             has it (the frame is built once; sockets share its text)
  - face:    what a face does per refresh, split in two: taking the board in (decoding it and its
             default order: every user, for pages, the API and new subscribers' first frames) and
             the feed's own work, handing a ready frame to N sockets (grows with the sockets and
             watched views only, not with the users)
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

from usermetrics.board import Board  # noqa: E402
from usermetrics.board_wire import board_decode, board_encode  # noqa: E402
from usermetrics.clock import utcnow  # noqa: E402
from usermetrics.feed.builder import FrameBuilder, face_messages, subscription_frame  # noqa: E402
from usermetrics.feed.subscriptions import Subscription, SubscriptionRegistry  # noqa: E402
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage  # noqa: E402
from usermetrics.monitor import MonitorService  # noqa: E402
from usermetrics.packing import BoardCache, board_build  # noqa: E402
from usermetrics.publish.bus import LocalBus  # noqa: E402
from usermetrics.publish.follower import Follower  # noqa: E402
from usermetrics.selection import DEFAULT_SORT, FLAG_STATES, ViewSpec, board_order  # noqa: E402


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
    view = Subscription(spec=ViewSpec())
    frame_best = float("inf")
    size = 0
    for _ in range(repeat):
        board = await board_of(service, cache)
        started = time.perf_counter()
        text, _ = subscription_frame(board, view, labels={})
        frame_best = min(frame_best, time.perf_counter() - started)
        size = len(text.encode())
    print(f"{users:>7} users  frame {frame_best * 1000:8.1f} ms  {size / 1024:6.1f} KiB")
    data = board_encode(board)
    board_in = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        board_order(board_decode(data), DEFAULT_SORT)
        board_in = min(board_in, time.perf_counter() - started)
    print(f"{'':>7}        face: board in {board_in * 1000:8.1f} ms  ({len(data) / 2**20:.1f} MiB, every user)")
    for count in clients:
        registry = SubscriptionRegistry()
        sockets = [Socket() for _ in range(count)]
        for n, socket in enumerate(sockets):
            registry.subscribe(f"c{n}", view, socket)
        follower = Follower(bus=LocalBus(), registry=registry, face="bench", interval=1, stale_after=3)
        builder = FrameBuilder()
        best = float("inf")
        for _ in range(repeat):
            board = await board_of(service, cache)
            Socket.waiting, Socket.done = count, asyncio.Event()
            started = time.perf_counter()
            texts = dict(builder.frames(board, {view.group: view}, labels={}))
            for message in face_messages(texts, [view.group], seq=board.seq, producer=board.producer):
                follower.deliver(message)
            await Socket.done.wait()
            best = min(best, time.perf_counter() - started)
        hand_out = float("inf")
        for _ in range(repeat):  # the face's feed work alone: the frame is ready
            Socket.waiting, Socket.done = count, asyncio.Event()
            started = time.perf_counter()
            for message in face_messages(texts, [view.group], seq=board.seq, producer=board.producer):
                follower.deliver(message)
            await Socket.done.wait()
            hand_out = min(hand_out, time.perf_counter() - started)
        print(
            f"{'':>7}        publish to {count:>5} clients {best * 1000:8.1f} ms"
            f"  ({builder.frames_built} frames built); face: handed out {hand_out * 1000:6.1f} ms"
        )


class Socket:
    """A socket that takes its frame and says when every socket has one."""

    waiting = 0
    done = asyncio.Event()

    async def metrics_update(self, event: dict[str, object]) -> None:
        """Count the frame in."""
        Socket.waiting -= 1
        if Socket.waiting == 0:
            Socket.done.set()

    async def metrics_status(self, event: dict[str, object]) -> None:
        """Not sent here."""

    async def metrics_catch_up(self, event: dict[str, object]) -> None:
        """Not sent here (no socket here is new)."""


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

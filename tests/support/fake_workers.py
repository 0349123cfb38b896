"""NAT workers' command readers without NAT (async): the companion's own ``CommandReader`` over a test's Redis.

Each plays one NAT worker of a deployment: it reads ``<stream>:commands`` and answers into
``<stream>:results:<id>`` exactly as the companion does inside NAT (holds kept in a ``Holds``),
with an eviction that answers what the test says (done, or refused with requests in flight).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from usermetrics_nat.commands import CommandReader, Holds

BLOCK = 0.05  # seconds one read waits for a command: the tests' answers come at once


def evict_answering(status: str = "done", in_flight: int = 0):
    """An eviction that answers ``status`` (``refused`` says how many requests run, as the companion does)."""

    async def evict(user_id: str) -> tuple[str, str, int]:
        if status == "refused":
            return status, f"{in_flight} request(s) of this user run here; evict when none does", in_flight
        return status, "evicted" if status == "done" else "", 0

    return evict


@asynccontextmanager
async def workers_answering(
    stream: str, *labels: str, status: str = "done", in_flight: int = 0, deployment: str = "nat"
) -> AsyncIterator[dict]:
    """Workers ``labels`` of ``deployment`` reading the stream's commands while the block runs; their holds."""
    client = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    readers = {
        label: CommandReader(
            client,
            stream=stream,
            worker=label,
            holds=Holds(),
            evict=evict_answering(status, in_flight),
            block=BLOCK,
            deployment=deployment,
        )
        for label in labels
    }
    for reader in readers.values():
        reader.start()
    try:
        yield {label: reader.holds for label, reader in readers.items()}
    finally:
        for reader in readers.values():
            await reader.stop()
        await client.aclose()

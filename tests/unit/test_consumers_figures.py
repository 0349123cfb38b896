"""Live feed: the NAT companions' figures reach a socket (list frames' ``figures``, user frames' ``extras``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from channels.testing import WebsocketCommunicator

from tests.unit.test_consumers import communicator, receive_frame, staff_cookie, subscribe

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["staff_cookie"]  # the fixture, shared with the consumers' other tests


@asynccontextmanager
async def socket(path: str, cookie: bytes) -> AsyncIterator[WebsocketCommunicator]:
    """A connected staff socket on ``path``, always disconnected after."""
    comm = communicator(path, cookie)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    try:
        yield comm
    finally:
        await comm.disconnect()


async def test_consumers_list_frames_carry_the_pages_figures(companion, staff_cookie):
    async with socket("/ws/monitor/", staff_cookie) as comm:
        await receive_frame(comm)
        _, doc = await subscribe(comm, sort="-queued", page_size=2)
        assert [u["user_id"] for u in doc["users"]] == ["ada", "bob"]
        assert doc["figures"]["ada"]["queued"] == 2 and doc["figures"]["bob"]["queued"] == 0
        _, doc = await subscribe(comm, state="saturated")
        assert [u["user_id"] for u in doc["users"]] == ["ada"] and set(doc["figures"]) == {"ada"}
        _, doc = await subscribe(comm, q="cy")
        assert [u["user_id"] for u in doc["users"]] == ["cy"] and doc["figures"] == {}  # no companion


async def test_consumers_user_frames_carry_the_extras(companion, staff_cookie):
    async with socket("/ws/monitor/users/ada/", staff_cookie) as comm:
        _, doc = await receive_frame(comm)
        assert doc["extras"]["queue"]["queued"] == 2 and doc["extras"]["workers"] == ["nat-1:101", "nat-1:102"]
        assert doc["extras"]["latency"]["requests"] == 100
    async with socket("/ws/monitor/users/cy/", staff_cookie) as comm:
        _, doc = await receive_frame(comm)
        assert doc["users"][0]["user_id"] == "cy" and doc["extras"] is None

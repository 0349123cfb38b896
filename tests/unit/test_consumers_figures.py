"""Live feed: the NAT companions' figures reach a socket (list frames' ``figures``, user frames' ``extras``)."""

from __future__ import annotations

import pytest

from tests.unit.test_consumers import communicator, receive_frame, staff_cookie, subscribe

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["staff_cookie"]  # the fixture, shared with the consumers' other tests


async def test_consumers_list_frames_carry_the_pages_figures(companion, staff_cookie):
    comm = communicator("/ws/monitor/", staff_cookie)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    try:
        await receive_frame(comm)
        _, doc = await subscribe(comm, sort="-queued", page_size=2)
        assert [u["user_id"] for u in doc["users"]] == ["ada", "bob"]
        assert doc["figures"]["ada"]["queued"] == 2 and doc["figures"]["bob"]["queued"] == 0
        _, doc = await subscribe(comm, state="saturated")
        assert [u["user_id"] for u in doc["users"]] == ["ada"] and set(doc["figures"]) == {"ada"}
        _, doc = await subscribe(comm, q="cy")
        assert [u["user_id"] for u in doc["users"]] == ["cy"] and doc["figures"] == {}  # no companion
    finally:
        await comm.disconnect()


async def test_consumers_user_frames_carry_the_extras(companion, staff_cookie):
    comm = communicator("/ws/monitor/users/ada/", staff_cookie)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    try:
        _, doc = await receive_frame(comm)
        assert doc["extras"]["queue"]["queued"] == 2 and doc["extras"]["workers"] == ["nat-1:101", "nat-1:102"]
        assert doc["extras"]["latency"]["requests"] == 100
    finally:
        await comm.disconnect()
    comm = communicator("/ws/monitor/users/cy/", staff_cookie)
    connected, _ = await comm.connect(timeout=5)
    try:
        _, doc = await receive_frame(comm)
        assert doc["users"][0]["user_id"] == "cy" and doc["extras"] is None
    finally:
        await comm.disconnect()

"""The live feed's guards on a real Daphne: unknown paths, origins, a client that stops reading, connect churn."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.support.daphne import Daphne, manage, rss, server_env, serving, staff_session, wait_until

MiB = 1024 * 1024


class Served:
    """One Daphne with the demo workload, its staff cookie and its log."""

    def __init__(self, server: Daphne, cookie: str) -> None:
        self.server = server
        self.cookie = cookie
        self.origin = server.base
        self.ws = f"ws://127.0.0.1:{server.port}"

    def rss(self) -> int:
        """The Daphne process's resident memory, in bytes (from /proc)."""
        assert self.server.proc is not None
        return rss(self.server.proc.pid)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    var = tmp_path_factory.mktemp("var")
    env = server_env(
        var,
        USERMETRICS_DEMO="1",
        USERMETRICS_DEMO_USERS="1000",
        USERMETRICS_REFRESH_INTERVAL="1",
        USERMETRICS_HISTORY="0",
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    cookie = staff_session(env)
    with serving(env, var / "daphne.log") as server:
        yield Served(server, cookie)


async def _handshake(served: Served, path: str, *, origin: str | None = None, cookie: bool = True) -> int:
    """The handshake's HTTP status (101 when accepted; the socket is closed at once)."""
    headers = {"Origin": origin or served.origin}
    if cookie:
        headers["Cookie"] = f"sessionid={served.cookie}"
    try:
        async with websockets.connect(served.ws + path, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("path", ["/ws/anything", "/ws/monitor/users//", "/ws/monitor/users/~ZZ/", "/ws/"])
def test_ws_daphne_unknown_path_is_a_403_without_traceback(served, path):
    before = served.server.log()
    for cookie in (False, True):
        assert asyncio.run(_handshake(served, path, cookie=cookie)) == 403
    wait_until(lambda: served.server.log().count("no route") - before.count("no route") >= 2, what="the log line")
    added = served.server.log()[len(before) :]
    assert "Traceback" not in added and " 500 " not in added and "ERROR" not in added
    assert added.count("no route") == 2


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("{base}", 101),
        ("http://127.0.0.1:9999", 403),
        ("https://127.0.0.1", 403),
        ("https://127.0.0.1:{port}", 403),
        ("ws://127.0.0.1:{port}", 403),
        ("http://localhost:{port}", 403),
    ],
)
def test_ws_daphne_origin_must_be_scheme_host_and_port(served, origin, status):
    origin = origin.format(base=served.origin, port=served.server.port)
    assert asyncio.run(_handshake(served, "/ws/monitor/", origin=origin)) == status


# --- a client that stops reading -------------------------------------------------------------------


def _frame(text: str) -> bytes:
    """A masked client text frame (RFC 6455), as a browser would send it."""
    payload = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _raw_socket(served: Served) -> socket.socket:
    """A websocket to /ws/monitor/ that reads its handshake's answer and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's buffer fills
    sock.connect(("127.0.0.1", served.server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /ws/monitor/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{served.server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {served.origin}\r\nCookie: sessionid={served.cookie}\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_ws_daphne_client_that_stops_reading_is_dropped_and_memory_comes_back(served):
    asyncio.run(_handshake(served, "/ws/monitor/"))  # warm: the face is up, the first frames built
    before = served.rss()
    budget = 150 * MiB  # generous: the issue saw +650 MB; the byte budget is 4 MiB
    peak = before
    sock = _raw_socket(served)
    views = [json.dumps({"type": "subscribe", "page_size": 500, "page": p, "sort": "user_id"}) for p in (1, 2)]
    dropped = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and peak - before < budget:
            try:
                for i in range(50):
                    sock.sendall(_frame(views[i % 2]))
            except OSError:
                dropped = True  # the server closed the connection under us
                break
            time.sleep(0.05)
            peak = max(peak, served.rss())
    finally:
        sock.close()
    log = served.server.log()
    assert peak - before < budget, f"Daphne grew by {(peak - before) // MiB} MiB"
    assert dropped and "the client does not read" in log
    # After the close the memory comes back (within the same generous budget of the start).
    wait_until(lambda: served.rss() - before < 64 * MiB, what="memory to come back", deadline=30)
    print(f"Daphne RSS: before {before // MiB} MiB, peak {peak // MiB} MiB, after {served.rss() // MiB} MiB")
    # The server still serves others.
    assert asyncio.run(_handshake(served, "/ws/monitor/")) == 101

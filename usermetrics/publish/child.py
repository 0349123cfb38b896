"""The embedded producer in a child process (async): the one Daphne of the default serves, its child refreshes.

A thread of its own is not enough at 100,000 users: the refresh is CPU-bound Python and holds
the GIL against the serving loop (measured: list pages at p99 1.7 s with the producer in a
thread). So the Daphne process starts ``manage.py runmonitor --parent SOCKET`` and talks to it
over a Unix socket it listens on:

- the child sends each board (its ``board_encode`` bytes; the parent decodes them in a worker
  thread and puts the board on its ``LocalBus``) and each refresh's frames (one message; the
  parent's follower hands each frame to the sockets of its subscription);
- the child asks, at each refresh, what the parent's sockets subscribe to, and the parent answers
  from its ``SubscriptionRegistry``.

With Redis configured the child is a plain ``runmonitor`` on Redis instead, and the parent follows
Redis as any face does. Either way the child (``runmonitor --embedded``) reads its stdin, a pipe
from the parent, and ends when it closes: the parent stopped or was killed, so the child never
outlives its Daphne. A parent that exits (SIGTERM: Daphne stops its reactor, then the interpreter
exits) first stops its child and waits for it to write its history; nothing of the parent's waits
on the child in a thread, which would keep the interpreter from exiting. The parent starts the
child again when it dies (after 1 s, doubling up to 30 s while it keeps dying).

Wire form: a 4-byte big-endian length, then one byte of kind, then the payload.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from usermetrics.board import Board
from usermetrics.board_wire import board_encode
from usermetrics.feed.subscriptions import Subscription, SubscriptionRegistry
from usermetrics.orders import board_receive

from .bus import LocalBus, Published

logger = logging.getLogger(__name__)

BOARD, FRAME, ASK_SUBSCRIPTIONS, SUBSCRIPTIONS = b"B", b"F", b"?", b"S"
RESTART_MIN, RESTART_MAX = 1.0, 30.0
STOP_WAIT = 10.0  # seconds a stopping child gets to give its history to the database
EXIT_POLL = 0.25  # seconds between two looks at whether the child exited by itself


async def message_write(writer: asyncio.StreamWriter, kind: bytes, payload: bytes = b"") -> None:
    """Write one message."""
    writer.write((len(payload) + 1).to_bytes(4, "big") + kind + payload)
    await writer.drain()


async def message_read(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read one message: its kind and payload (IncompleteReadError at the end of the stream)."""
    size = int.from_bytes(await reader.readexactly(4), "big")
    data = await reader.readexactly(size)
    return data[:1], data[1:]


class ChildProducer:
    """The parent's side: listens, starts the child, and serves what it asks; restarts it when it dies."""

    def __init__(
        self,
        *,
        bus: LocalBus | None,
        registry: SubscriptionRegistry,
        deliver: Callable[[dict[str, Any]], None],
        command: list[str],
        arrived: Callable[[Board], None] | None = None,
    ) -> None:
        """Take boards onto ``bus`` (None: the child publishes through Redis), answer from ``registry``.

        ``deliver(message)`` hands a refresh's frames to this face's sockets (the follower's);
        ``command`` starts the child (``--embedded``, and ``--parent SOCKET`` when there is a bus, are added);
        ``arrived(board)`` is told of each board once it is on the bus (the follower's ``board_arrived``).
        """
        self.bus = bus
        self.registry = registry
        self.deliver = deliver
        self.arrived = arrived
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stopping = False
        self._dir: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a child running until ``stop``; then stop it (SIGTERM: it flushes its history)."""
        server = None
        command = [*self.command, "--embedded"]
        if self.bus is not None:
            self._dir = tempfile.mkdtemp(prefix="usermetrics-")
            path = str(Path(self._dir) / "producer.sock")
            server = await asyncio.start_unix_server(self._serve, path=path)
            command += ["--parent", path]
        delay = RESTART_MIN
        # Daphne has no shutdown hook for applications: on SIGTERM its reactor stops and the
        # interpreter exits, and this is what then stops the child (and waits for its history).
        atexit.register(self.stop_child)
        try:
            while not stop.is_set():
                # Popen, not asyncio's subprocesses: Daphne's loop is Twisted's, and a fork and exec
                # once per start is quick. Its stdin is our end of a pipe: it closes when we exit.
                self.process = subprocess.Popen(command, stdin=subprocess.PIPE)  # noqa: ASYNC220
                self.starts += 1
                code = await _wait_or_stop(self.process, stop)
                if code is None:
                    break
                pid = self.process.pid
                logger.warning("The embedded producer (pid %s) exited with %s; starting it again", pid, code)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, RESTART_MAX)
        finally:
            atexit.unregister(self.stop_child)
            self.stop_child()
            if server is not None:
                server.close()
            if self._dir is not None:
                with contextlib.suppress(OSError):
                    os.unlink(Path(self._dir) / "producer.sock")
                    os.rmdir(self._dir)

    def stop_child(self) -> None:
        """SIGTERM the child and wait for it (SIGKILL past ``STOP_WAIT``)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdin is not None:
            process.stdin.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One child's connection: boards, frames and questions until it closes."""
        try:
            while True:
                kind, payload = await message_read(reader)
                if kind == BOARD:
                    assert self.bus is not None
                    # Tens of MB at 100,000 users: decoded off the loop.
                    board = await asyncio.to_thread(board_receive, payload, self.bus.latest())
                    await self.bus.publish(board)
                    if self.arrived is not None:
                        self.arrived(board)
                elif kind == FRAME:
                    self.deliver(json.loads(payload))
                elif kind == ASK_SUBSCRIPTIONS:
                    held = {group: sub.to_json() for group, sub in self.registry.subscriptions().items()}
                    await message_write(writer, SUBSCRIPTIONS, json.dumps(held).encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the child ended; run() starts another
        except Exception:
            logger.exception("The embedded producer's connection failed")
        finally:
            writer.close()


async def _wait_or_stop(process: subprocess.Popen[bytes], stop: asyncio.Event) -> int | None:
    """The child's exit code when it exits by itself; None when ``stop`` came first.

    Polled on the loop, never waited for in a thread: a thread blocked in ``wait()`` on a child that
    runs on kept the interpreter of a SIGTERMed Daphne from ever exiting.
    """
    while (code := process.poll()) is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), EXIT_POLL)
        if stop.is_set():
            return None
    if process.stdin is not None:
        process.stdin.close()
    return code


async def stop_with_stdin(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin, the embedded producer's pipe from its Daphne, closes (the Daphne is gone)."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while await reader.read(4096):
            pass  # the parent writes nothing: only the end matters
    finally:
        transport.close()
        stop.set()


class ParentLink:
    """The child's side: a bus, the parent's subscriptions and a frame sender over the parent's socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Use an open connection (``connect``)."""
        self._reader, self._writer = reader, writer
        self._answers: asyncio.Queue[bytes] = asyncio.Queue()
        self._lock = asyncio.Lock()  # one question at a time: answers come back in order
        self.closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, path: str) -> ParentLink:
        """Connect to the parent listening at ``path``."""
        reader, writer = await asyncio.open_unix_connection(path)
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                kind, payload = await message_read(self._reader)
                if kind == SUBSCRIPTIONS:
                    await self._answers.put(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()  # the parent is gone: the producer stops

    async def publish(self, board: Board) -> None:
        """Hand ``board`` to the parent (its bytes; the parent decodes off its loop)."""
        data = await asyncio.to_thread(board_encode, board)  # off the loop, as on Redis
        await message_write(self._writer, BOARD, data)

    async def last_published(self) -> Published | None:
        """Nothing to continue from: each child is a new producer (its own name), numbering from 1."""
        return None

    async def subscriptions(self) -> Mapping[str, Subscription]:
        """What the parent's sockets subscribe to now."""
        async with self._lock:
            await message_write(self._writer, ASK_SUBSCRIPTIONS)
            get = asyncio.ensure_future(self._answers.get())
            closed = asyncio.ensure_future(self.closed.wait())
            await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                return {}
            closed.cancel()
            return {group: Subscription.from_json(text) for group, text in json.loads(get.result()).items()}

    async def send(self, face: str, message: dict[str, object]) -> None:
        """Send the parent (the one face) a refresh's frames (``feed.builder.face_messages``)."""
        await message_write(self._writer, FRAME, json.dumps(message).encode())

    async def aclose(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        self._task.cancel()


def child_command() -> list[str]:
    """How the parent starts its child: this Python, this project's ``manage.py runmonitor`` (same settings)."""
    return [sys.executable, str(Path(__file__).resolve().parents[2] / "manage.py"), "runmonitor"]

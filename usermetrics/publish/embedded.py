"""The embedded producer (a thread with its own event loop): the one Daphne of the default runs both sides.

The producer's refreshes (fetching, validating, merging, packing a board, building frames) run in
this thread's loop, never on the loop that serves pages, the API and sockets. What it hands over
to the serving side is a finished board (on the local bus) and finished frames (sent on the
serving loop's channel layer, which belongs to that loop).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

from .producer import Producer

logger = logging.getLogger(__name__)


class EmbeddedProducer:
    """Runs a producer in a daemon thread; ``stop()`` ends it cleanly (lease released, history flushed)."""

    def __init__(self, build: Callable[[], Awaitable[Producer]]) -> None:
        """``build()`` makes the producer inside the thread's loop (its Redis clients belong to that loop)."""
        self._build = build
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.producer: Producer | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._ready.clear()
        self._thread = threading.Thread(target=self._main, name="usermetrics-producer", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception:
            logger.exception("The embedded producer stopped")

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.producer = await self._build()
        finally:
            self._ready.set()
        await self.producer.run(self._stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the producer to stop and wait for it."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._thread = None

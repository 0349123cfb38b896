"""The hand-off (async edge over one thread, no Django): the newest item runs in a thread of its own.

The producer's loop hands work that blocks (database writes and reads) to a ``Handoff`` and goes
on at once. One dedicated thread runs the items in order, so a thread-bound resource (a database
connection) stays in that thread; while it is busy only the newest item waits, because every
owner's items supersede each other (cumulative counters, rules judged by timestamps, stats as of
now). A failure is logged once per kind: a missing migration would otherwise fail every refresh.
Hooks carry what the owner's framework needs in that thread (Django's ``connections.close_all``),
so this module imports none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """Runs ``run(item)`` for the newest item handed over, in one thread; the loop never waits for it."""

    def __init__(
        self,
        run: Callable[[T], object],
        *,
        name: str,
        failure: str,
        logger: logging.Logger,
        level: int = logging.ERROR,
        on_error: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        """Run items with ``run`` in a thread named ``name``; log a new kind of failure as ``failure`` on
        ``logger`` at ``level``; call ``on_error()`` in the thread after an item failed, and
        ``on_close()`` in the thread before it stops."""
        self._run = run
        self._name = name
        self._failure = failure
        self._logger = logger
        self._level = level
        self._on_error = on_error
        self._on_close = on_close
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[T] | None = None  # a box, so that None is an item too
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    def submit(self, item: T) -> None:
        """Hand ``item`` over and return at once (from the running loop); while busy, it replaces the one waiting."""
        self._pending = (item,)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=self._name)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            # One thread: items run in order, and what the thread holds (a connection) stays in it.
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        while self._pending is not None:
            (item,), self._pending = self._pending, None
            try:
                await loop.run_in_executor(self._executor, self._run_in_thread, item)
            except Exception as exc:
                kind = f"{type(exc).__name__}: {exc}"
                if kind != self._last_error:
                    self._logger.log(
                        self._level, "%s (logged again only when the error changes)", self._failure, exc_info=True
                    )
                self._last_error = kind
            else:
                self._last_error = None

    def _run_in_thread(self, item: T) -> None:
        try:
            self._run(item)
        except Exception:
            if self._on_error is not None:
                self._on_error()
            raise

    async def flush(self) -> None:
        """Wait until every item handed over so far has run."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Run what is pending, then ``on_close`` in the thread, and stop the thread (a later item starts a new one)."""
        await self.flush()
        if self._executor is not None:
            if self._on_close is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._on_close)
            self._executor.shutdown(wait=True)
            self._executor = None

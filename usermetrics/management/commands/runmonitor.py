"""``manage.py runmonitor``: the producer of a scaled deployment (async loop in the foreground).

Refreshes every source, records history, works out flags, publishes a board and one frame per
watched view through Redis, for Daphne workers started with ``USERMETRICS_PRODUCER=external``.
Several may run: one leads (a lease in Redis), the others stand by and take over within three
refresh intervals of the leader's death. SIGTERM or Ctrl+C stops it cleanly: it gives the lease
up at once and writes what its recorder still holds.

``--embedded`` is how the embedded default's Daphne starts its own producer as its child: it ends
when its stdin (a pipe from that Daphne) closes. With ``--parent SOCKET`` (no Redis) boards and
frames go to that Daphne over the socket instead of through Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from usermetrics.conf import get_config
from usermetrics.publish.assembly import child_producer, producer_run, redis_producer


class Command(BaseCommand):
    """Run the producer until stopped."""

    help = (
        "Run the producer: refresh the sources, record history, publish boards and frames through Redis "
        "(REDIS_URL). Several may run; one leads, the others stand by."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--no-history: publish but record nothing (a second site reading the same sources)."""
        parser.add_argument("--no-history", action="store_true", help="publish without recording history")
        parser.add_argument(
            "--embedded",
            action="store_true",
            help="the child of the embedded default's Daphne: stop when stdin (a pipe from it) closes",
        )
        parser.add_argument(
            "--parent", metavar="SOCKET", help="the embedded default: publish to the Daphne listening on SOCKET"
        )

    def handle(self, *args: Any, no_history: bool, embedded: bool, parent: str | None, **options: Any) -> None:
        """Build the producer from the settings and run it in this process's event loop."""
        config = get_config()
        if parent is not None:
            asyncio.run(self._run_child(parent, embedded=embedded))
            return
        if not config.redis_url:
            raise CommandError("runmonitor publishes through Redis: set REDIS_URL (faces read it there).")
        demo = " and the demo" if config.demo.enabled else ""
        self.stdout.write(
            f"usermetrics producer: {len(config.sources)} NAT source(s){demo}, refresh every "
            f"{config.refresh_interval:g} s, Redis {config.redis_prefix}:* (Ctrl+C stops)"
        )
        asyncio.run(self._run(record=not no_history, embedded=embedded))

    async def _run(self, *, record: bool, embedded: bool) -> None:
        producer = await redis_producer(record=record)
        self.stdout.write(f"{producer.name}: standing by until it holds the lease", ending="\n")
        self.stdout.flush()
        await producer_run(producer, embedded=embedded)

    async def _run_child(self, path: str, *, embedded: bool) -> None:
        producer, link = await child_producer(path)
        try:
            await producer_run(producer, embedded=embedded, parent=link)
        finally:
            await link.aclose()

"""The companion's NAT hook (async): ``CompanionWorker``, NAT's FastAPI worker with a reporter in each process.

Switched on in a NAT config with ``general.front_end.runner_class: usermetrics_nat.CompanionWorker``.
NAT builds the worker's app once (with gunicorn, before it forks its workers); each worker process
then runs the app's lifespan, which calls ``configure``: that is where each process starts its own
reporter, over its own session managers, with its own identity. Nothing else NAT serves changes:
the session managers are NAT's own class with the measuring added (``instrument``).
"""

from __future__ import annotations

import logging
import os
import socket
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from nat.front_ends.fastapi.fastapi_front_end_plugin_worker import FastApiFrontEndPluginWorker
from redis.asyncio import Redis

from .commands import CommandReader, Holds
from .instrument import CompanionSessionManager
from .report import WorkerIdentity, utc_now
from .reporter import Reporter
from .settings import CompanionSettings, SettingsError

logger = logging.getLogger("usermetrics_nat")


def nat_version() -> str:
    """The NAT release this worker runs."""
    try:
        return version("nvidia-nat-core")
    except PackageNotFoundError:
        return "unknown"


class CompanionWorker(FastApiFrontEndPluginWorker):
    """NAT's FastAPI worker; each worker process also reports its users to Redis."""

    def __init__(self, config: Any) -> None:
        """As NAT's worker; no reporter until a worker process configures its app."""
        super().__init__(config)
        self._reporter: Reporter | None = None
        self._commands: CommandReader | None = None

    async def _create_session_manager(self, builder: Any, entry_function: str | None = None) -> Any:
        """NAT's session manager for an endpoint, measured (``CompanionSessionManager``)."""
        manager = await CompanionSessionManager.create(
            config=self._config, shared_builder=builder, entry_function=entry_function
        )
        self._session_managers.append(manager)
        return manager

    async def configure(self, app: Any, builder: Any) -> None:
        """NAT's routes, then this process's reporter (when ``USERMETRICS_NAT_REDIS_URL`` is set)."""
        await super().configure(app, builder)
        workflow = getattr(self._config.workflow, "type", "") or type(self._config.workflow).__name__
        try:
            settings = CompanionSettings.from_env(config_name=str(workflow))
        except SettingsError as exc:
            logger.error("usermetrics companion: %s; not reporting", exc)
            return
        if not settings.redis_url:
            logger.warning("usermetrics companion: USERMETRICS_NAT_REDIS_URL is not set; not reporting")
            return
        identity = WorkerIdentity(
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=utc_now(),
            nat_version=nat_version(),
            config=settings.config_name,
        )
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        self._reporter = Reporter(self._session_managers, settings=settings, identity=identity, redis=redis)
        self._reporter.start()
        logger.info(
            "usermetrics companion: worker %s reports to %s every %g s",
            identity.label,
            settings.stream,
            settings.interval,
        )
        if settings.commands:
            holds = Holds()
            for manager in self._session_managers:
                manager.holds = holds
            self._commands = CommandReader(
                redis,
                stream=settings.stream,
                worker=identity.label,
                holds=holds,
                evict=self._evict,
                block=settings.interval,
            )
            self._commands.start()

    async def _evict(self, user_id: str) -> tuple[str, str, int]:
        """Evict the user on every endpoint of this worker: refused if any endpoint runs a request of theirs."""
        answers = [await manager.evict(user_id) for manager in self._session_managers]
        refused = [a for a in answers if a[0] == "refused"]
        if refused:
            return "refused", refused[0][1], sum(a[2] for a in refused)
        if any(a[0] == "done" for a in answers):
            return "done", "evicted", 0
        return "absent", "no per-user workflow of this user here", 0

    async def cleanup_session_managers(self) -> None:
        """Stop reporting (a last report says goodbye), then NAT's own clean-up."""
        reporter, self._reporter = self._reporter, None
        commands, self._commands = self._commands, None
        if commands is not None:
            await commands.stop()
        if reporter is not None:
            await reporter.stop()
        await super().cleanup_session_managers()

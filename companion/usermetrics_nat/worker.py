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
from .instrument import CompanionSessionManager, evict_everywhere
from .report import WorkerIdentity, utc_now
from .reporter import Reporter
from .settings import CompanionSettings, SettingsError

logger = logging.getLogger("usermetrics_nat")

SOCKET_TIMEOUT = 5.0  # seconds any Redis call of the companion may take before Redis counts as away


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
        redis = Redis.from_url(settings.redis_url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT)
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
                deployment=settings.deployment,
                worker=identity.label,
                holds=holds,
                evict=self._evict,
                # A blocked read must end before the client's socket timeout takes it for a dead link.
                block=min(settings.interval, SOCKET_TIMEOUT - 1),
            )
            self._commands.start()

    async def _evict(self, user_id: str) -> tuple[str, str, int]:
        """Evict the user on every endpoint of this worker, or on none while a request of theirs runs on one."""
        return await evict_everywhere(self._session_managers, user_id)

    async def cleanup_session_managers(self) -> None:
        """Stop reporting (a last report says goodbye), then NAT's own clean-up."""
        reporter, self._reporter = self._reporter, None
        commands, self._commands = self._commands, None
        if commands is not None:
            await commands.stop()
        if reporter is not None:
            await reporter.stop()
        await super().cleanup_session_managers()

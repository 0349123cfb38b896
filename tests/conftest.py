"""Shared fixtures: runtime session managers, an installed service, staff clients, tokens, services."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import AsyncClient

from tests.support import producers
from tests.support.machine import REQUIRE_SERVICES
from usermetrics import testing
from usermetrics.monitor import MonitorService
from usermetrics.publish.producer import Producer
from usermetrics.runtime import SessionManager
from usermetrics.sources import Source

# The guard that fails the run when a process it started outlives it.
pytest_plugins = ["tests.support.leftovers"]


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the run's SQLite test database directory (tests/settings.py), WAL side files and all."""
    directory = getattr(settings, "TEST_DATABASE_DIR", None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Run service-marked tests only where the service is configured; in CI, fail instead of skipping."""
    needs = {
        "redis": ("REDIS_URL", 6379),
        "postgres": ("DATABASE_URL", 5432),
    }
    for marker, (var, port) in needs.items():
        if item.get_closest_marker(marker) is None:
            continue
        url = os.environ.get(var, "")
        if marker == "postgres" and url and not url.startswith("postgres"):
            url = ""
        problem = None if url and _reachable(url, port) else (f"{var} is not set" if not url else f"{url} unreachable")
        if problem:
            if REQUIRE_SERVICES:
                pytest.fail(f"{marker} test cannot run: {problem} (USERMETRICS_REQUIRE_SERVICES=1)")
            pytest.skip(f"{marker} not available: {problem}")


@pytest.fixture(autouse=True)
def _close_executor_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the DB connections that async tests opened in asgiref's sync thread.

    Async views and the async test client run ORM code in asgiref's single thread-sensitive
    executor, and the test client keeps Django from closing connections after a request. Left
    open, they stop PostgreSQL from dropping the test database at the end of the run.
    """
    yield
    if request.node.get_closest_marker("django_db") is not None:
        from asgiref.sync import SyncToAsync
        from django.db import connections

        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture(autouse=True)
def _local_face() -> Iterator[None]:
    """Every in-process test gets a face of its own on a local bus: no producer thread, no Redis keys.

    Whole-stack tests start real Daphne and runmonitor processes for those.
    """
    previous = testing.face_install(testing.face_local())
    yield
    testing.face_install(previous)


@pytest.fixture
async def manager() -> AsyncIterator[SessionManager]:
    """A runtime SessionManager, closed after the test."""
    mgr = SessionManager()
    yield mgr
    await mgr.aclose()


@pytest.fixture
async def install_service() -> AsyncIterator[Callable[..., Awaitable[Producer]]]:
    """A producer over the given sources, publishing to this process's face, for one test.

    ``await install_service(sources, interval=...)`` runs one refresh (a board is on the bus);
    ``await producer.refresh()`` runs another. Flags (stuck, rising, erroring) are worked out with
    ``flags=True`` (they read the history, so the test needs the database).
    """
    installed: list[Producer] = []
    previous = testing.face_install(None)

    async def install(sources: list[Source], *, flags: bool = False, **kwargs: Any) -> Producer:
        face = testing.face_local()
        producer = testing.producer_local(face, monitor=MonitorService(sources, **kwargs))
        if not flags:
            producer.flag_tracker = None
        testing.face_install(face)
        installed.append(producer)
        producers.installed.append(producer)
        await producer.tick()
        return producer

    yield install
    for producer in installed:
        await producer.close()
    producers.installed.clear()
    testing.face_install(previous)


@pytest.fixture
async def monitor() -> AsyncIterator[Callable[..., MonitorService]]:
    """A MonitorService over the given sources, closed after the test."""
    made: list[MonitorService] = []

    def make(sources: list[Source], **kwargs: Any) -> MonitorService:
        made.append(MonitorService(sources, **kwargs))
        return made[-1]

    yield make
    for service in made:
        await service.aclose()


@pytest.fixture
def staff_user(django_user_model):
    """An active staff user."""
    return django_user_model.objects.create_user(username="staff", password="pw-staff-123", is_staff=True)


@pytest.fixture
def plain_user(django_user_model):
    """An active user without staff rights."""
    return django_user_model.objects.create_user(username="plain", password="pw-plain-123")


@pytest.fixture
async def staff_client(staff_user) -> AsyncClient:
    """An async client logged in as staff."""
    client = AsyncClient()
    await client.aforce_login(staff_user)
    return client


@pytest.fixture
def api_tokens(settings) -> Iterator[list[str]]:
    """Two valid API tokens configured for the test."""
    tokens = ["token-one-" + "a" * 20, "token-two-" + "b" * 20]
    settings.USERMETRICS = {**settings.USERMETRICS, "API_TOKENS": tokens}
    yield tokens

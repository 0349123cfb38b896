"""Fixtures of the in-process tests: a Redis client under a prefix of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from usermetrics.publish.assembly import redis_client


@pytest.fixture
async def redis(settings) -> AsyncIterator[object]:
    """A client of the test Redis, and a prefix of this test's own (its keys are deleted after)."""
    prefix = f"{settings.USERMETRICS['REDIS_PREFIX']}-{uuid.uuid4().hex[:8]}"
    client = redis_client()
    client.test_prefix = prefix
    yield client
    async for key in client.scan_iter(match=f"{prefix}*"):
        await client.delete(key)
    await client.aclose()

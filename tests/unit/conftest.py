"""Fixtures of the in-process tests: a Redis client under a prefix of the test's own, an empty label cache."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from usermetrics import identities
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


@pytest.fixture
def fresh_label_cache() -> Iterator[None]:
    """The identities' label cache empty before and after the test (it outlives a flushed database)."""
    identities.identity_labels_forget()
    yield
    identities.identity_labels_forget()

"""What the tests of actions ask (async): the commands a deployment was sent, a CSRF-checked client, the error."""

from __future__ import annotations

import json
import os
from typing import Any

from django.test import AsyncClient
from redis.asyncio import Redis
from redis.exceptions import ResponseError

ACT_TOKEN = "act-token-" + "z" * 24  # a token the tests list in ACTIONS_TOKENS


async def commands_sent(stream: str) -> int:
    """How many commands were ever added to the deployment's command stream (taken back ones too)."""
    client = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    try:
        return int((await client.xinfo_stream(f"{stream}:commands"))["entries-added"])
    except ResponseError:  # no such key: nothing was ever sent
        return 0
    finally:
        await client.aclose()


async def csrf_client(user: Any) -> tuple[AsyncClient, str]:
    """A client that Django's CSRF check applies to, logged in as ``user``, and its CSRF token (from the user page)."""
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(user)
    assert (await client.get("/users/ada/")).status_code == 200
    return client, client.cookies["csrftoken"].value


def detail(response: Any) -> str:
    """The ``detail`` of a JSON error."""
    assert response["Content-Type"] == "application/json", response.content
    return json.loads(response.content)["detail"]

"""The floor of the throughput benchmark (async ASGI app): a bare Daphne answering every request with fixed bytes.

``FLOOR_BODY`` names a file; every HTTP request gets its bytes in one message, with nothing in
between: what Daphne alone costs to send that body. ``FLOOR_HEADERS``, when set, names a JSON file
of ``[name, value]`` pairs sent instead of the two default headers: the floor of a small answer
then sends the very headers our stack sent with it (the security headers, CSP, cache control).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ["FLOOR_BODY"]).read_bytes()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
if os.environ.get("FLOOR_HEADERS"):
    HEADERS = [
        (n.encode("latin-1"), v.encode("latin-1")) for n, v in json.loads(Path(os.environ["FLOOR_HEADERS"]).read_text())
    ]


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with ``BODY``."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

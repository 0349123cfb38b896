"""What a test may use of this machine (sync): the repository, free loopback ports, and whether CI requires services."""

from __future__ import annotations

import os
import socket
from pathlib import Path

# The repository root (where manage.py, pyproject.toml and static/ are).
ROOT = Path(__file__).resolve().parents[2]

# .ci/run sets this: a test that needs a service (Redis, PostgreSQL, NAT, ESLint) must run there, never skip.
REQUIRE_SERVICES = os.environ.get("USERMETRICS_REQUIRE_SERVICES") == "1"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

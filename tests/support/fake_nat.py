"""A NAT-compatible ``/monitor/users`` server for tests and benchmarks (sync, a thread): counts its fetches.

It answers like NAT 1.9.0 (naive local timestamps, the seed's fields) for ``users`` generated
users; before each answer it moves a share of them (``moving``: their requests, latency and last
activity change), the way a busy NAT server looks between two reads. Every user's JSON is kept
serialized and only the moved ones are written again, so a 100,000-user body costs the server
little: what a benchmark measures is the reader. ``status`` switches the answer (404: per-user
monitoring off).
"""

from __future__ import annotations

import http.server
import json
import random
import threading
from datetime import datetime, timedelta
from typing import Any

from tests.support.machine import free_port


class FakeNat:
    """``GET /monitor/users`` of ``users`` users, ``moving`` of them changing before each fetch."""

    def __init__(self, users: int, *, moving: float = 0.1, seed: int = 0, prefix: str = "user") -> None:
        """Generate the users (ids ``<prefix>-000000@example.com``...)."""
        self.rng = random.Random(seed)
        self.moving = moving
        self.status = 200
        self.fetches = 0
        self.lock = threading.Lock()
        now = datetime.now().replace(microsecond=0)  # naive local time, as NAT writes it
        self.users: list[dict[str, Any]] = [
            {
                "user_id": f"{prefix}-{i:06d}@example.com",
                "session": {
                    "created_at": (now - timedelta(hours=1)).isoformat(),
                    "last_activity": (now - timedelta(seconds=i % 600)).isoformat(),
                    "ref_count": 0,
                    "is_active": False,
                },
                "requests": {"total_requests": i % 50, "active_requests": 0, "avg_latency_ms": 120.5, "error_count": 0},
                "memory": {"per_user_functions_count": 2, "per_user_function_groups_count": 1, "exit_stack_size": 3},
            }
            for i in range(users)
        ]
        self.docs = [json.dumps(u, separators=(",", ":")).encode() for u in self.users]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: http.server.ThreadingHTTPServer | None = None

    def move(self) -> None:
        """Change ``moving`` of the users, as traffic between two reads does."""
        count = int(len(self.users) * self.moving)
        stamp = datetime.now().isoformat()
        for i in self.rng.sample(range(len(self.users)), count) if count else ():
            user = self.users[i]
            requests = user["requests"]
            total = requests["total_requests"] + 1
            requests["avg_latency_ms"] = round((requests["avg_latency_ms"] * (total - 1) + 100.0) / total, 2)
            requests["total_requests"] = total
            user["session"]["last_activity"] = stamp
            self.docs[i] = json.dumps(user, separators=(",", ":")).encode()

    def body(self) -> bytes:
        """The next ``/monitor/users`` answer (after moving users)."""
        self.move()
        head = json.dumps({"timestamp": datetime.now().isoformat(), "total_active_users": len(self.docs)})
        return head[:-1].encode() + b',"users":[' + b",".join(self.docs) + b"]}"

    def start(self) -> FakeNat:
        """Serve on 127.0.0.1:``port`` in a daemon thread."""
        nat = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/monitor/users":
                    self.send_error(404)
                    return
                with nat.lock:
                    nat.fetches += 1
                    status = nat.status
                    body = nat.body() if status == 200 else b'{"detail":"Not Found"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-nat", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

"""A loopback HTTP receiver for Apprise's ``json://`` notifications (sync, a thread): what arrived, and how to fail.

``mode`` says how it answers: ``ok`` (200, the notification is kept), ``fail`` (500) or ``hang``
(holds the request until ``release()``, then answers 503). ``stop()`` closes the port (a receiver
that is down: connections are refused); ``start()`` opens the same port again.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

from tests.support.machine import free_port


class Receiver:
    """Apprise ``json://127.0.0.1:<port>/hook`` notifications, collected."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "ok"
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.holding = threading.Event()  # a request is held (mode "hang")
        self._release = threading.Event()
        self.arrived = threading.Condition()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The Apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                if receiver.mode == "hang":
                    receiver.holding.set()
                    receiver._release.wait(30)
                    self.send_response(503)
                elif receiver.mode == "fail":
                    self.send_response(500)
                else:
                    with receiver.arrived:
                        receiver.received.append(json.loads(body))
                        receiver.headers.append(dict(self.headers))
                        receiver.paths.append(self.path)
                        receiver.arrived.notify_all()
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="alert-receiver", daemon=True).start()
        return self

    def release(self) -> None:
        """Let held requests go (they are answered 503)."""
        self._release.set()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until ``count`` notifications arrived (or ``timeout``); what arrived."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def stop(self) -> None:
        """Close the port."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

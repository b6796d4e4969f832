"""A local HTTP receiver for Apprise's json:// notifications, on a free loopback port.

Apprise's JSON service POSTs `{"version", "title", "message", "type"}` to the
URL's host and path (https://github.com/caronc/apprise/wiki/Notify_Custom_JSON).
This receiver keeps every POST in order, answers each path with the status it
is told to (200 by default), can hold its reply after taking a message (a slow
service), and can be stopped and started again on the same port: a channel that
is unreachable, then reachable.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from programs.ports import LOOPBACK, free_port


class Webhook:
    def __init__(self) -> None:
        self.host = LOOPBACK
        self.port = free_port()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status: dict[str, int] = {}
        #: seconds to hold the reply to a path after taking its message (a slow service)
        self.hold: dict[str, float] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        """The Apprise URL for a path here (json:// is plain HTTP)."""
        return f"json://{self.host}:{self.port}/{path.lstrip('/')}"

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?")[0]
                code = hook.status.get(path, 200)
                if code == 200:
                    with hook._lock:
                        hook.received.append((path, json.loads(body)))
                time.sleep(hook.hold.get(path, 0.0))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def messages(self, path: str) -> list[str]:
        with self._lock:
            return [d["message"] for p, d in self.received if p == path]

    def wait(self, path: str, count: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages(path)) >= count:
                break
            time.sleep(0.05)
        return self.messages(path)

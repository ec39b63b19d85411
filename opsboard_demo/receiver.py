"""A local webhook receiver: the other end of a notification channel in the demo and the benchmarks.

It accepts JSON POSTs on 127.0.0.1, keeps each with the time it arrived, appends it to a JSON-lines
file if given one, and calls `on_receive` (the demo prints a line per notification).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float  # time.time() on arrival
    path: str
    body: Any


class WebhookReceiver:
    def __init__(
        self, port: int = 0, log_path: str | Path | None = None, on_receive: Callable[[Received], None] | None = None
    ):
        self.received: list[Received] = []
        self.log_path = Path(log_path) if log_path else None
        self.on_receive = on_receive
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver._keep(Received(time.time(), self.path, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):  # quiet: the demo prints its own line
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/opsboard"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _keep(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
            if self.log_path:
                with self.log_path.open("a") as fh:
                    fh.write(json.dumps({"received_at": item.at, "body": item.body}) + "\n")
        if self.on_receive:
            self.on_receive(item)

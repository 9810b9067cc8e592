"""Shared fixtures of the on-call tests: a real HTTP receiver on 127.0.0.1 (a thread running
http.server) that answers from a plan and records every request it got."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """Answers `fail_first` requests with `fail_status`, the rest with 200; `gate` (a threading.Event),
    when set by a test, holds every answer until it is set. `requests`: (path, headers, raw body)."""

    def __init__(self, fail_first: int = 0, fail_status: int = 500):
        self.fail_first, self.fail_status = fail_first, fail_status
        self.requests: list[tuple[str, dict, bytes]] = []
        self.arrived = threading.Event()
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append((self.path, dict(self.headers), raw))
                    n = len(receiver.requests)
                receiver.arrived.set()
                if receiver.gate is not None:
                    receiver.gate.wait(10)
                code = receiver.fail_status if n <= receiver.fail_first else 200
                answer = b'{"ok": true}' if code < 300 else b"receiver says no"
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def by_delivery(self) -> dict[str, int]:
        """How many times each X-Loupe-Delivery key arrived (a duplicate counts above 1)."""
        counts: dict[str, int] = {}
        for _, headers, _ in self.requests:
            key = headers.get("X-Loupe-Delivery", "")
            counts[key] = counts.get(key, 0) + 1
        return counts

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()

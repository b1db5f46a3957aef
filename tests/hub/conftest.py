"""Fixtures for the weights tests: an isolated torch hub cache and a weights server on
127.0.0.1 (http.server in a thread) that can also break a download mid-body. No test here
reaches the internet."""
from __future__ import annotations

import http.server
import os
import threading
from typing import Dict, Iterator, List

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    files: Dict[str, bytes] = {}
    truncate: Dict[str, int] = {}  # path -> bytes sent before the connection is closed
    requests: List[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.truncate.get(self.path)
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass


class WeightsServer:
    """``serve(path, data, truncate_at=None) -> url``; ``requests`` lists the paths asked for."""

    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {"files": {}, "truncate": {}, "requests": []})
        self.handler = handler
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> List[str]:
        return self.handler.requests

    def serve(self, path: str, data: bytes, truncate_at: int = None) -> str:
        self.handler.files[path] = data
        if truncate_at is not None:
            self.handler.truncate[path] = truncate_at
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def weights_server() -> Iterator[WeightsServer]:
    server = WeightsServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> str:
    """``$TORCH_HOME`` in a temporary folder; returns the cache folder ``hub/checkpoints``."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("MVIT_TASKS_WEIGHTS_MIRROR", raising=False)
    return os.path.join(str(home), "hub", "checkpoints")

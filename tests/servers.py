"""Real servers on loopback for tests: started in a thread, polled until they listen,
and stopped and joined afterwards so no thread outlives its test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import waitress

# Debian's chromium as the tests and benchmarks start it: as root, and with no traffic to
# anything but loopback (background networking would try Google's hosts).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_until_listening(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def waitress_server(app: Any) -> Iterator[int]:
    """Serve a WSGI app with waitress on 127.0.0.1 and a free port; yields the port."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    port = int(server.effective_port)  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    wait_until_listening(port)
    try:
        yield port
    finally:
        server.close()
        thread.join(timeout=5)

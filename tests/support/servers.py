"""Real servers on loopback for tests: started in a thread, polled until they listen,
and stopped and joined afterwards so no thread outlives its test. waitress for the site and
the API, aiosmtpd for mail."""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import waitress
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from waitress import wasyncore

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


def free_port() -> int:
    """A port nothing listens on right now (for a server the test starts later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
def waitress_server(app: Any, port: int = 0, threads: int = 8) -> Iterator[int]:
    """waitress on 127.0.0.1:`port` (0: any free one); yields the port.

    The loop runs in short rounds and is stopped before the sockets close, so no select()
    ever sees a closed descriptor (closing under a running loop errors at teardown).
    """
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=threads)
    actual = int(server.effective_port)  # type: ignore[union-attr]
    stop = threading.Event()
    sockets = server._map  # type: ignore[union-attr]

    def loop() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=sockets, count=1)

    thread = threading.Thread(target=loop, name="waitress", daemon=True)
    thread.start()
    wait_until_listening(actual)
    try:
        yield actual
    finally:
        stop.set()
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()  # type: ignore[union-attr]
        wasyncore.close_all(sockets)  # the listening socket, the trigger, open connections


class Inbox:
    """The aiosmtpd handler: keeps what it accepted; refuses the addresses in `refuse`."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.refuse: set[str] = set()
        self.logins: list[tuple[bytes, bytes]] = []
        self.on_data: Any = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        if self.on_data is not None:
            self.on_data()
        return "250 2.0.0 queued"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        ok = data.password == b"s3cret-pass"
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535

    @property
    def messages(self) -> list[EmailMessage]:
        return [parse(envelope.content) for envelope in self.envelopes]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


@contextmanager
def smtp_server(port: int | None = None, **options: Any) -> Iterator[tuple[int, Inbox]]:
    """aiosmtpd on 127.0.0.1; stopped (thread joined) when the block ends."""
    port = port or free_port()
    inbox = Inbox()
    if "authenticator" in options:
        options["authenticator"] = inbox.authenticate
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()

"""A fake upstream exchange API: a real HTTP server on loopback for tests, benchmarks and
`otmetka demo --upstream`.

It serves a list of changes (the demo school by default) as pages with opaque cursors,
exactly as docs/exchange-format.md describes the upstream API, accepts events with
deduplication by `event_id`, and misbehaves on request so the daemon can be tested against
a bad line: delays, 500s, cut connections, garbage, an HTML login page, a wrong content
type, a truncated body.

    with FakeUpstream.demo(students=300) as upstream:
        upstream.inject("http500", times=2)          # the next two requests fail
        upstream.inject("delay", seconds=0.2, times=None, path="changes")  # every page
        ...  pull from upstream.url with upstream.token

`python -m otmetka.daemon.demo.fake_upstream --port 8765`
serves the demo school until Ctrl-C; faults
can also be injected over HTTP with `POST /_fake/faults {"kind": "cut", "times": 1}`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from otmetka.daemon.demo import school

log = logging.getLogger("otmetka.fake_upstream")

CHANGES_PATH = "/exchange/v1/changes"
EVENTS_PATH = "/exchange/v1/events"
CONTROL_PATH = "/_fake/faults"
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000

FAULT_KINDS = {
    "delay": "wait `seconds`, then answer normally",
    "delay_after": "do the work (store the events), wait `seconds`, then answer",
    "http500": "answer 500 Internal Server Error",
    "cut": "close the connection without an answer",
    "garbage": "answer 200 application/json with bytes that are not JSON",
    "html_login": "answer 200 text/html with a login page (a captive portal)",
    "wrong_type": "answer the right JSON as text/plain",
    "truncated": "announce the whole body, send half of it, close the connection",
    "short_json": "send half of the JSON as a whole body (a proxy that dropped the rest)",
    "unauthorized": "answer 401, as if the token were wrong",
    "redirect": "answer 302 to /_fake/login, as a captive portal does",
}

_LOGIN_PAGE = (
    "<!doctype html><html><head><title>Вход в сеть</title></head><body>"
    "<form action='/login'><input name='user'><input name='password' type='password'>"
    "<button>Войти</button></form></body></html>"
).encode()


@dataclass
class Fault:
    kind: str
    path: str = ""  # "changes", "events" or "" for any request
    times: int | None = 1  # how many requests it hits; None: every one
    seconds: float = 0.0

    def matches(self, path: str) -> bool:
        return not self.path or self.path in path


class FakeUpstream:
    """The server and its state; every method is safe to call from the test's thread."""

    def __init__(
        self,
        header: dict[str, Any],
        changes: Iterable[dict[str, Any]],
        *,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        page_keys_last: bool = False,
    ) -> None:
        self.page_keys_last = page_keys_last  # as an upstream may order them
        self.header = {key: value for key, value in header.items() if key != "changes"}
        self.token = token or secrets.token_urlsafe(24)
        self.changes: list[dict[str, Any]] = list(changes)
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[str] = []  # every event id received, repeats included
        self.requests: list[str] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.upstream = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @classmethod
    def demo(
        cls, students: int = 300, seed: int = 1, as_of: dt.date | None = None, **kwargs: Any
    ) -> FakeUpstream:
        """The demo school (same generator as `otmetka demo`) as the upstream stream."""
        header = school.document_header(students, seed, as_of)
        return cls(header, school.iter_changes(students, seed, as_of), **kwargs)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state --------------------------------------------------------------------------

    def add_changes(self, changes: Iterable[dict[str, Any]]) -> None:
        """Append changes: the next pull from the stored cursor gets them as a delta."""
        with self.lock:
            self.changes.extend(changes)

    def inject(
        self, kind: str, *, path: str = "", times: int | None = 1, seconds: float = 0.0
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self.lock:
            self.faults.append(Fault(kind, path, times, seconds))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def cursor_after(self, count: int) -> str:
        """The cursor upstream hands out after the first `count` changes."""
        return f"c{count}"

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(path) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def page(self, cursor: str | None, limit: int) -> dict[str, Any] | None:
        """The page after `cursor`, or None for a cursor this upstream never issued."""
        start = self._offset(cursor)
        if start is None:
            return None
        with self.lock:
            total = len(self.changes)
            start = min(start, total)
            end = min(start + limit, total)
            changes = self.changes[start:end]
        envelope = {**self.header, "mode": "delta", "cursor": cursor or ""}
        page = {
            "next_cursor": self.cursor_after(end),
            "has_more": end < total,
            "remaining": total - end,
        }
        if self.page_keys_last:
            return {**envelope, "changes": changes, **page}
        # The page keys before the records: a client reads them without a second walk.
        return {**envelope, **page, "changes": changes}

    def _offset(self, cursor: str | None) -> int | None:
        if cursor is None or cursor == "":
            return 0
        if not cursor.startswith("c") or not cursor[1:].isdigit():
            return None
        return int(cursor[1:])

    def receive(self, events: list[Any]) -> list[dict[str, Any]]:
        """Store events once per event_id; a repeat is a duplicate, not a second event."""
        results = []
        with self.lock:
            for event in events:
                results.append(self._receive_one(event))
        return results

    def _receive_one(self, event: Any) -> dict[str, Any]:
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if not isinstance(event_id, str) or not event_id:
            return {"event_id": "", "status": "rejected", "error": "no event_id"}
        self.deliveries.append(event_id)
        known = self.events.get(event_id)
        if known is None:
            self.events[event_id] = event
            return {"event_id": event_id, "status": "accepted"}
        if known != event:
            return {
                "event_id": event_id,
                "status": "rejected",
                "error": "this event_id was received before with another body",
            }
        return {"event_id": event_id, "status": "duplicate"}


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-upstream"

    @property
    def upstream(self) -> FakeUpstream:
        return self.server.upstream  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        upstream = self.upstream
        with upstream.lock:
            upstream.requests.append(f"{self.command} {self.path}")
        body = self._read_body()
        path = urlsplit(self.path).path
        if path == CONTROL_PATH and self.command == "POST":
            self._control(body)
            return
        fault = upstream.take_fault(path)
        if fault is not None and fault.kind == "delay":
            upstream.stopping.wait(fault.seconds)
        if fault is not None and fault.kind not in ("delay", "delay_after"):
            self._misbehave(fault)
            return
        status, answer = self._answer(path, body)
        if fault is not None and fault.kind == "delay_after":
            upstream.stopping.wait(fault.seconds)
        self._send(status, "application/json", _encode(answer))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, path: str, body: bytes) -> tuple[int, Any]:
        if self.headers.get("Authorization") != f"Bearer {self.upstream.token}":
            return 401, {"error": "unauthorized"}
        if path == CHANGES_PATH and self.command == "GET":
            return self._changes()
        if path == EVENTS_PATH and self.command == "POST":
            return self._events(body)
        return 404, {"error": "not found"}

    def _changes(self) -> tuple[int, Any]:
        query = parse_qs(urlsplit(self.path).query)
        cursor = query.get("cursor", [None])[0]
        try:
            limit = min(max(int(query.get("limit", [DEFAULT_LIMIT])[0]), 1), MAX_LIMIT)
        except ValueError:
            return 400, {"error": "limit must be a whole number"}
        page = self.upstream.page(cursor, limit)
        if page is None:
            return 400, {"error": f"unknown cursor {cursor!r}"}
        return 200, page

    def _events(self, body: bytes) -> tuple[int, Any]:
        try:
            events = json.loads(body.decode("utf-8"))["events"]
            if not isinstance(events, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return 400, {"error": 'the body must be {"events": [...]}'}
        return 200, {"results": self.upstream.receive(events)}

    def _control(self, body: bytes) -> None:
        try:
            spec = json.loads(body.decode("utf-8"))
            self.upstream.inject(
                spec["kind"],
                path=spec.get("path", ""),
                times=spec.get("times", 1),
                seconds=float(spec.get("seconds", 0.0)),
            )
        except (ValueError, KeyError, TypeError) as error:
            self._send(400, "application/json", _encode({"error": str(error)}))
            return
        self._send(200, "application/json", _encode({"ok": True}))

    def _misbehave(self, fault: Fault) -> None:
        if fault.kind == "cut":
            self.close_connection = True  # no status line at all
        elif fault.kind == "http500":
            self._send(500, "application/json", _encode({"error": "internal"}))
        elif fault.kind == "redirect":
            self.send_response(302)
            self.send_header("Location", f"{self.upstream.url}/_fake/login")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True
        elif fault.kind == "unauthorized":
            self._send(401, "application/json", _encode({"error": "unauthorized"}))
        elif fault.kind == "garbage":
            self._send(200, "application/json", b'{"changes": [\x00\xff\xfe garbage')
        elif fault.kind == "html_login":
            self._send(200, "text/html; charset=utf-8", _LOGIN_PAGE)
        else:
            status, answer = self._answer(urlsplit(self.path).path, b"")
            data = _encode(answer)
            if fault.kind == "wrong_type":
                self._send(status, "text/plain", data)
            elif fault.kind == "short_json":
                self._send(status, "application/json", data[: len(data) // 2])
            else:  # truncated
                self._send(status, "application/json", data[: len(data) // 2], len(data))

    def _send(self, status: int, content_type: str, data: bytes, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True


def _encode(answer: Any) -> bytes:
    # orjson: a real upstream answers from another machine; this one shares the CPUs with
    # the puller in tests and bench/, so it should not make the puller wait for long.
    return orjson.dumps(answer)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the demo school as a fake upstream.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--token", default=None, help="bearer token (default: random)")
    args = parser.parse_args(argv)
    upstream = FakeUpstream.demo(args.students, args.seed, token=args.token, port=args.port)
    print(f"fake upstream on {upstream.url} (token {upstream.token}); Ctrl-C stops", flush=True)
    upstream.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        upstream.stop()


if __name__ == "__main__":
    main()

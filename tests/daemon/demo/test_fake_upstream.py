"""The fake upstream: a real HTTP server that pages the demo school, deduplicates events
and misbehaves exactly as asked; and `otmetka demo --upstream`, which pulls through it."""

from __future__ import annotations

import datetime as dt
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import config_from_dict
from otmetka.daemon.demo.fake_upstream import FAULT_KINDS, FakeUpstream
from otmetka.db import close_database, models, open_database
from tests.support.factories import small_school

AS_OF = dt.date(2026, 11, 27)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    document = small_school()
    with FakeUpstream(document, document["changes"], token="secret-token") as server:
        yield server


def _call(
    upstream: FakeUpstream,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = "secret-token",
) -> tuple[int, str, bytes]:
    host, port = upstream.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def _page(upstream: FakeUpstream, query: str) -> dict[str, Any]:
    status, content_type, body = _call(upstream, "GET", f"/exchange/v1/changes?{query}")
    assert status == 200 and content_type == "application/json"
    return json.loads(body)  # type: ignore[no-any-return]


def test_pages_cover_every_change_once_in_order(upstream: FakeUpstream) -> None:
    seen: list[str] = []
    page = _page(upstream, "limit=10")
    assert page["format"] == "otmetka-exchange" and page["school_id"] == "sch-1"
    while True:
        seen += [c["id"] for c in page["changes"]]
        assert page["remaining"] == len(upstream.changes) - len(seen)
        if not page["has_more"]:
            break
        page = _page(upstream, f"cursor={page['next_cursor']}&limit=10")
    assert seen == [c["id"] for c in small_school()["changes"]]
    assert _page(upstream, f"cursor={page['next_cursor']}")["changes"] == []


def test_added_changes_come_after_the_last_cursor(upstream: FakeUpstream) -> None:
    first = _page(upstream, "limit=1000")
    new = {"type": "subject", "id": "new", "updated_at": "2026-12-01T10:00:00Z"}
    upstream.add_changes([{**new, "data": {"name": "Черчение"}}])
    delta = _page(upstream, f"cursor={first['next_cursor']}")
    assert [c["id"] for c in delta["changes"]] == ["new"] and delta["has_more"] is False


def test_wrong_token_and_unknown_cursor_are_refused(upstream: FakeUpstream) -> None:
    assert _call(upstream, "GET", "/exchange/v1/changes", token="wrong")[0] == 401
    assert _call(upstream, "GET", "/exchange/v1/changes", token=None)[0] == 401
    status, _, body = _call(upstream, "GET", "/exchange/v1/changes?cursor=zzz")
    assert status == 400 and b"unknown cursor" in body


def test_events_are_deduplicated_by_event_id(upstream: FakeUpstream) -> None:
    event = {"event_id": "e-1", "type": "event", "data": {"kind": "acknowledgement"}}
    other = {"event_id": "e-1", "type": "event", "data": {"kind": "consent"}}
    status, _, body = _call(upstream, "POST", "/exchange/v1/events", {"events": [event, event]})
    assert status == 200
    assert [r["status"] for r in json.loads(body)["results"]] == ["accepted", "duplicate"]
    _, _, body = _call(upstream, "POST", "/exchange/v1/events", {"events": [other]})
    assert json.loads(body)["results"][0]["status"] == "rejected"
    assert upstream.events == {"e-1": event}
    assert upstream.deliveries == ["e-1", "e-1", "e-1"]
    assert _call(upstream, "POST", "/exchange/v1/events", {"wrong": 1})[0] == 400


def _raw_exchange(upstream: FakeUpstream) -> bytes:
    """The bytes on the wire for one GET, however broken, read until the server closes."""
    import socket

    host, port = upstream.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        request = (
            "GET /exchange/v1/changes?limit=5 HTTP/1.1\r\nHost: x\r\n"
            "Authorization: Bearer secret-token\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_each_fault_breaks_the_answer_as_described(upstream: FakeUpstream) -> None:
    assert set(FAULT_KINDS) >= {"delay", "http500", "cut", "garbage", "html_login", "truncated"}
    upstream.inject("cut")
    assert _raw_exchange(upstream) == b""
    upstream.inject("http500")
    assert _raw_exchange(upstream).startswith(b"HTTP/1.0 500")
    upstream.inject("garbage")
    head, body = _raw_exchange(upstream).split(b"\r\n\r\n", 1)
    assert b"application/json" in head
    with pytest.raises(ValueError):
        json.loads(body)
    upstream.inject("html_login")
    head, body = _raw_exchange(upstream).split(b"\r\n\r\n", 1)
    assert b"text/html" in head and body.startswith(b"<!doctype html>")
    upstream.inject("wrong_type")
    head, body = _raw_exchange(upstream).split(b"\r\n\r\n", 1)
    assert b"text/plain" in head and json.loads(body)["has_more"] is True
    upstream.inject("truncated")
    head, body = _raw_exchange(upstream).split(b"\r\n\r\n", 1)
    lengths = [line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")]
    announced = int(lengths[0].split(b":")[1])
    assert 0 < len(body) < announced
    assert _raw_exchange(upstream).startswith(b"HTTP/1.0 200")  # each fault hit once


def test_faults_hit_only_their_path_and_count(upstream: FakeUpstream) -> None:
    upstream.inject("http500", path="events", times=2)
    assert _call(upstream, "GET", "/exchange/v1/changes")[0] == 200
    body = {"events": []}
    statuses = [_call(upstream, "POST", "/exchange/v1/events", body)[0] for _ in range(3)]
    assert statuses == [500, 500, 200]


def test_faults_can_be_injected_over_http(upstream: FakeUpstream) -> None:
    status, _, _ = _call(upstream, "POST", "/_fake/faults", {"kind": "http500", "times": 1})
    assert status == 200
    assert _call(upstream, "GET", "/exchange/v1/changes")[0] == 500
    assert _call(upstream, "POST", "/_fake/faults", {"kind": "nonsense"})[0] == 400
    with pytest.raises(ValueError, match="unknown fault"):
        upstream.inject("nonsense")


def test_demo_school_upstream_serves_the_generated_school() -> None:
    with FakeUpstream.demo(students=20, seed=3, as_of=AS_OF) as upstream:
        page = upstream.page(None, 5)
        assert page is not None
        assert page["school_id"] == "demo-school" and page["remaining"] > 1000


def test_demo_pulls_the_school_through_the_http_source(
    runner: CliRunner, config_file: Path
) -> None:
    config_file.write_text(
        "site:\n  kdf_iterations: 100000\nsource:\n  page_limit: 3000\n", encoding="utf-8"
    )
    result = runner.invoke(
        main, ["--config", str(config_file), "demo", "--students", "20", "--no-serve", "--upstream"]
    )
    assert result.exit_code == 0, result.output
    assert "fake upstream serving the demo school on http://127.0.0.1:" in result.output
    assert "pull: " in result.output and " pages, " in result.output
    close_database()
    config = config_from_dict({}, base_dir=config_file.parent, env={})
    open_database(config.database.url)
    try:
        pages = list(models.ImportLog.select().where(models.ImportLog.source == "http"))
        assert len(pages) > 3
        state = models.SyncState.get(models.SyncState.source == "http")
        assert state.cursor == pages[-1].cursor
        assert models.Student.select().count() == 20
    finally:
        close_database()

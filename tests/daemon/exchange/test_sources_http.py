"""The HTTP source against the fake upstream: paging, resume from the committed cursor,
retries through every kind of bad answer, and one clear error with nothing half-applied."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config, ConfigError, config_from_dict
from otmetka.daemon.core.config_sections import plain_http_problem
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.exchange import http
from otmetka.daemon.exchange.http import HttpParams, UpstreamError, pull
from otmetka.daemon.exchange.reader import BatchError
from otmetka.db import close_database, journal, models
from tests.support.factories import change, small_school
from tests.support.sync_support import clean_import, journal_dump

TOKEN = "t0ken-Sekr3t-value"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    document = small_school()
    with FakeUpstream(document, document["changes"], token=TOKEN) as server:
        yield server


def _params(upstream: FakeUpstream, **extra: Any) -> HttpParams:
    defaults: dict[str, Any] = {"limit": 5, "retries": 3, "backoff_s": 0.01, "timeout_s": 2.0}
    return HttpParams(upstream.url, TOKEN, **{**defaults, **extra})


def _import_logs() -> list[tuple[str, str]]:
    log = models.ImportLog
    return [(row.source, row.cursor) for row in log.select().order_by(log.id)]


def test_pull_in_pages_equals_one_clean_import(
    upstream: FakeUpstream, file_db: Path, tmp_path: Path
) -> None:
    result = pull(_params(upstream))
    assert result.pages == 7 and result.records == 33 and result.changed
    assert result.cursor == journal.cursor_of("http") == upstream.cursor_after(33)
    expected = [f"c{n}" for n in (5, 10, 15, 20, 25, 30, 33)]
    assert [cursor for _, cursor in _import_logs()] == expected
    pulled = journal_dump()
    close_database()
    assert pulled == clean_import(small_school(), tmp_path / "clean.sqlite3")


def test_page_keys_after_the_records_are_read_too(file_db: Path, tmp_path: Path) -> None:
    document = small_school()
    with FakeUpstream(document, document["changes"], token=TOKEN, page_keys_last=True) as up:
        result = pull(_params(up))
    assert (result.pages, result.records, result.cursor) == (7, 33, "c33")
    pulled = journal_dump()
    close_database()
    assert pulled == clean_import(small_school(), tmp_path / "clean.sqlite3")


def test_pull_resumes_from_the_committed_cursor(upstream: FakeUpstream, file_db: Path) -> None:
    first = pull(_params(upstream), max_pages=2)
    assert first.cursor == "c10" and journal.cursor_of("http") == "c10"
    upstream.requests.clear()
    rest = pull(_params(upstream))
    assert upstream.requests[0].startswith("GET /exchange/v1/changes?cursor=c10&")
    assert rest.pages == 5 and rest.records == 23
    assert models.Mark.select().count() == 3


def test_delta_then_nothing_new(upstream: FakeUpstream, file_db: Path) -> None:
    pull(_params(upstream))
    upstream.add_changes(
        [change("subject", "art", {"name": "ИЗО"}, updated_at="2026-12-01T10:00:00+03:00")]
    )
    delta = pull(_params(upstream))
    assert (delta.pages, delta.records, delta.cursor) == (1, 1, "c34")
    idle = pull(_params(upstream))
    assert (idle.pages, idle.records, idle.changed) == (0, 0, False)
    assert "nothing new" in idle.summary()
    assert len(_import_logs()) == 8  # an idle pull logs no empty batch


@pytest.mark.parametrize(
    ("fault", "extra"),
    [
        ("http500", {}),
        ("cut", {}),
        ("garbage", {}),
        ("html_login", {}),
        ("wrong_type", {}),
        ("truncated", {}),
        ("short_json", {}),
        ("redirect", {}),
        ("delay", {"seconds": 1.0}),  # longer than the client's timeout below
    ],
)
def test_a_bad_answer_is_retried_and_the_data_is_whole(
    upstream: FakeUpstream, file_db: Path, tmp_path: Path, fault: str, extra: dict[str, Any]
) -> None:
    upstream.inject(fault, path="changes", times=2, **extra)
    result = pull(_params(upstream, timeout_s=0.3))
    assert result.records == 33
    assert len(upstream.requests) == 7 + 2
    assert not any("/_fake/login" in request for request in upstream.requests)  # never followed
    pulled = journal_dump()
    close_database()
    assert pulled == clean_import(small_school(), tmp_path / "clean.sqlite3")


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("http500", "answered 500"),
        ("cut", "the connection broke"),
        ("garbage", "not valid JSON"),
        ("html_login", "HTML page instead of JSON"),
        ("wrong_type", "content type 'text/plain'"),
        ("truncated", "cut off"),
        ("short_json", "the JSON is cut off or malformed"),
        ("redirect", "a redirect to"),
    ],
)
def test_a_lasting_fault_is_one_clear_error_and_nothing_half_applied(
    upstream: FakeUpstream, file_db: Path, fault: str, words: str
) -> None:
    pull(_params(upstream), max_pages=2)
    before = journal_dump()
    upstream.inject(fault, path="changes", times=None)
    with pytest.raises(UpstreamError) as error:
        pull(_params(upstream, retries=2))
    message = str(error.value)
    assert "gave up after 3 attempts" in message and words in message
    assert "cursor=c10" in message and TOKEN not in message
    assert journal_dump() == before and journal.cursor_of("http") == "c10"
    facts = http.last_pull()
    assert words in facts["last_error"] and facts["last_error_at"] >= facts["last_ok_at"]


def test_a_timeout_names_the_timeout(upstream: FakeUpstream, file_db: Path) -> None:
    upstream.inject("delay", seconds=1.0, times=None)
    with pytest.raises(UpstreamError, match=r"no answer within 0\.2 s"):
        pull(_params(upstream, timeout_s=0.2, retries=1))


def test_a_refused_token_is_not_retried_and_not_shown(
    upstream: FakeUpstream, file_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = HttpParams(upstream.url, "wrong-token-value", retries=5, token_name="the token in X")
    with pytest.raises(UpstreamError, match="answered 401: the token in X was refused"):
        pull(wrong)
    assert len(upstream.requests) == 1
    assert "wrong-token-value" not in caplog.text
    upstream.inject("http500", times=1)
    pull(_params(upstream))
    assert TOKEN not in caplog.text and "answered 500" in caplog.text


def test_a_bad_page_is_rejected_whole_and_the_cursor_stays(
    upstream: FakeUpstream, file_db: Path
) -> None:
    pull(_params(upstream))
    mark = {"student_id": "s-1", "subject_id": "math", "date": "2026-09-20", "raw": "6"}
    bad = change("mark", "mk-bad", mark)
    good = change("subject", "art", {"name": "ИЗО"})
    upstream.add_changes([good, bad])
    before = journal_dump()
    with pytest.raises(BatchError) as error:
        pull(_params(upstream))
    assert "upstream page after cursor c33: record 1 (id 'mk-bad', type 'mark')" in str(error.value)
    assert "field 'raw'" in str(error.value)
    assert journal_dump() == before and journal.cursor_of("http") == "c33"


def test_upstream_that_does_not_move_its_cursor_is_reported(file_db: Path) -> None:
    class Stuck(FakeUpstream):
        def cursor_after(self, count: int) -> str:
            return "c0"

    document = small_school()
    with Stuck(document, document["changes"], token=TOKEN) as stuck:
        pull(HttpParams(stuck.url, TOKEN, limit=5), max_pages=1)
        with pytest.raises(UpstreamError, match="does not move the cursor"):
            pull(HttpParams(stuck.url, TOKEN, limit=5))


def test_pull_draws_a_bar_when_upstream_says_how_much_remains(
    upstream: FakeUpstream, file_db: Path
) -> None:
    drawn: list[tuple[str, int]] = []
    advanced: list[int] = []

    @contextmanager
    def bar(label: str, total: int) -> Iterator[Any]:
        drawn.append((label, total))
        yield advanced.append

    pull(_params(upstream), bar=bar)
    assert drawn == [("pull", 33)] and sum(advanced) == 33


def _http_config(project_dir: Path, url: str) -> Config:
    source = {"kind": "http", "url": url, "page_limit": 10, "backoff_s": 0.01}
    return config_from_dict({"source": source}, base_dir=project_dir, env={})


def test_params_come_from_config_and_environment(
    upstream: FakeUpstream, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _http_config(project_dir, upstream.url)
    monkeypatch.delenv("OTMETKA_UPSTREAM_TOKEN", raising=False)
    with pytest.raises(OtmetkaError, match="OTMETKA_UPSTREAM_TOKEN is empty or not set"):
        http.params_from_config(config)
    monkeypatch.setenv("OTMETKA_UPSTREAM_TOKEN", TOKEN)
    params = http.params_from_config(config)
    assert (params.url, params.token, params.limit) == (upstream.url, TOKEN, 10)
    assert TOKEN not in params.token_name
    empty = config_from_dict({}, base_dir=project_dir, env={})
    with pytest.raises(OtmetkaError, match=r"source\.url is not set"):
        http.params_from_config(empty)


def test_cli_sync_http(
    upstream: FakeUpstream,
    runner: CliRunner,
    project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = project_dir / "config.yaml"
    text = f"site:\n  kdf_iterations: 100000\nsource:\n  kind: http\n  url: {upstream.url}\n"
    path.write_text(text + "  backoff_s: 0.01\n  retries: 1\n", encoding="utf-8")
    monkeypatch.setenv("OTMETKA_UPSTREAM_TOKEN", TOKEN)
    result = runner.invoke(main, ["--config", str(path), "sync", "--http"])
    assert result.exit_code == 0, result.output
    assert "pull: 1 pages, 33 records" in result.output
    close_database()
    upstream.inject("http500", times=None)
    upstream.add_changes([change("subject", "art", {"name": "ИЗО"})])
    failed = runner.invoke(main, ["--config", str(path), "sync", "--http"])
    assert failed.exit_code == 1
    assert "gave up after 2 attempts; last problem: answered 500" in failed.output
    assert "Traceback" not in failed.output and TOKEN not in failed.output
    close_database()
    both = runner.invoke(main, ["--config", str(path), "sync", "--http", "--inbox"])
    assert both.exit_code == 2 and "exactly one of" in both.output


# --- plain http ------------------------------------------------------------------------------


def _elsewhere(upstream: FakeUpstream) -> str:
    """The fake upstream's address as if it were another machine: 0.0.0.0 is not a loopback
    address, yet Linux delivers a connection to it on this machine, so nothing leaves it
    whatever the code under test does."""
    return upstream.url.replace("://127.0.0.1:", "://0.0.0.0:")


def test_the_token_never_goes_over_plain_http_to_another_machine(
    upstream: FakeUpstream, file_db: Path
) -> None:
    params = HttpParams(_elsewhere(upstream), TOKEN, limit=50, retries=0)
    with pytest.raises(UpstreamError) as error:
        pull(params)
    message = str(error.value)
    assert "is not https" in message and "source.allow_plain_http: true" in message
    assert TOKEN not in message
    assert upstream.requests == [], "not one request, so the token was never sent"
    assert "is not https" in http.last_pull()["last_error"]
    with pytest.raises(UpstreamError, match="is not https"):
        http.UpstreamClient(params).push_events([])
    assert upstream.requests == []
    allowed = HttpParams(_elsewhere(upstream), TOKEN, limit=50, allow_plain_http=True)
    assert pull(allowed).records == 33 and len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://upstream.example/exchange", False),
        ("HTTPS://upstream.example", False),
        ("http://127.0.0.1:8080", False),
        ("http://127.8.0.1/", False),
        ("http://[::1]:8080/", False),
        ("http://localhost:8080", False),
        ("", False),
        ("http://upstream.example", True),
        ("http://10.0.0.5:8080/", True),
        ("http://127.0.0.1.example.com/", True),
        ("http://0.0.0.0:8080", True),
        ("http://[::ffff:10.0.0.5]/", True),
    ],
)
def test_which_addresses_are_plain_http_off_this_machine(url: str, refused: bool) -> None:
    assert (plain_http_problem(url) is not None) == refused


def test_config_refuses_a_plain_http_source_unless_allowed(project_dir: Path) -> None:
    for kind in ("http", "inbox"):  # the outbox pushes to source.url whatever the kind
        source = {"kind": kind, "url": "http://upstream.example/"}
        with pytest.raises(ConfigError) as error:
            config_from_dict({"source": source}, base_dir=project_dir, env={})
        assert "source.url" in str(error.value) and "is not https" in str(error.value)
    allowed = {"kind": "http", "url": "http://upstream.example/", "allow_plain_http": True}
    config = config_from_dict({"source": allowed}, base_dir=project_dir, env={})
    assert config.source.allow_plain_http
    safe = {"kind": "http", "url": "https://upstream.example/"}
    assert not config_from_dict(
        {"source": safe}, base_dir=project_dir, env={}
    ).source.allow_plain_http


def test_cli_sync_refuses_plain_http_before_any_request(
    upstream: FakeUpstream, runner: CliRunner, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project_dir / "config.yaml"
    text = (
        f"site:\n  kdf_iterations: 100000\nsource:\n  kind: http\n  url: {_elsewhere(upstream)}\n"
    )
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("OTMETKA_UPSTREAM_TOKEN", TOKEN)
    refused = runner.invoke(main, ["--config", str(path), "sync", "--http"])
    assert refused.exit_code != 0 and "is not https" in refused.output
    assert "source.allow_plain_http" in refused.output and "Traceback" not in refused.output
    assert upstream.requests == []
    path.write_text(text + "  allow_plain_http: true\n", encoding="utf-8")
    allowed = runner.invoke(main, ["--config", str(path), "sync", "--http"])
    assert allowed.exit_code == 0, allowed.output
    assert "pull: 1 pages, 33 records" in allowed.output

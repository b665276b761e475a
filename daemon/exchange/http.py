"""The HTTP source: pages of changes from the upstream exchange API, resumed by cursor.

`GET /exchange/v1/changes?cursor=C&limit=N` answers one page; each page is imported as one
batch in one transaction together with its `next_cursor`, so after a crash or a cut line
the next pull asks for the page after the last one committed. Transient problems (a 5xx, a
timeout, a cut connection, an HTML login page of a captive portal, a truncated or garbled
body, a wrong content type) are retried with exponential backoff and then reported as one
clear `UpstreamError`. The token is sent only in the Authorization header: it is never
logged, never put in a message, never follows a redirect to another host, and never goes
over plain http to another machine unless `source.allow_plain_http` says so.

Public API (also for bench/): `params_from_config(config)`, `HttpParams`,
`UpstreamClient`, `pull(params, progress) -> PullResult` (runtime.pull_now for a config).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import logging
import os
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.config_sections import plain_http_problem
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import importer
from otmetka.daemon.exchange.reader import BatchError, RawBatch, read_bytes
from otmetka.db import journal
from otmetka.db import outbox as sync_db

log = logging.getLogger("otmetka.sources.http")

SOURCE = "http"
CHANGES_PATH = "/exchange/v1/changes"
EVENTS_PATH = "/exchange/v1/events"
PULL_FACT = "pull.http"
_PAGE_KEYS = ("next_cursor", "has_more", "remaining")
_SHOWN_BODY = 200

Progress = Callable[[int], None]
Bar = Callable[[str, int], contextlib.AbstractContextManager[Progress]]


class UpstreamError(OtmetkaError):
    """Upstream could not be reached or answered nonsense; nothing of the failed page was
    applied and the stored cursor still points at the last page imported."""


class Interrupted(Exception):
    """The daemon is stopping: a wait between retries was cut short."""


class _Transient(Exception):
    """A problem worth retrying (the line, a proxy, an overloaded upstream)."""


@dataclass
class HttpParams:
    """Everything a pull or a push needs; `params_from_config` fills it from config.yaml."""

    url: str
    token: str
    limit: int = 5000
    timeout_s: float = 30.0
    retries: int = 5
    backoff_s: float = 2.0
    backoff_max_s: float = 120.0
    push_batch: int = 100
    token_name: str = "the upstream token"  # how messages refer to the token, never its value
    allow_plain_http: bool = False  # source.allow_plain_http


def params_from_config(config: Config) -> HttpParams:
    source = config.source
    if not source.url:
        raise OtmetkaError(
            "source.url is not set: put the base URL of the upstream exchange API in "
            "config.yaml (source.url) or OTMETKA_SOURCE_URL"
        )
    token = os.environ.get(source.token_env, "").strip()
    if not token:
        raise OtmetkaError(
            f"environment variable {source.token_env} is empty or not set: put the bearer "
            "token issued by upstream there (source.token_env names the variable)"
        )
    return HttpParams(
        url=source.url,
        token=token,
        limit=source.page_limit,
        timeout_s=source.timeout_s,
        retries=source.retries,
        backoff_s=source.backoff_s,
        backoff_max_s=source.backoff_max_s,
        push_batch=source.push_batch,
        token_name=f"the token in {source.token_env}",
        allow_plain_http=source.allow_plain_http,
    )


# --- the client -----------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a captive portal or a misconfigured proxy; following it would hand the
    bearer token to another host, so it is reported instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _shorten(body: bytes) -> str:
    text = body[:_SHOWN_BODY].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("…" if len(body) > _SHOWN_BODY else "")


def _refuse_non_json(content_type: str, body: bytes) -> None:
    if "html" in content_type or body.lstrip()[:1] == b"<":
        raise _Transient(
            "answered with an HTML page instead of JSON (a login page of a proxy or captive "
            f"portal?): {_shorten(body)!r}"
        )
    if content_type != "application/json":
        raise _Transient(f"answered with content type {content_type!r}, not application/json")


def _json_answer(content_type: str, body: bytes) -> Any:
    _refuse_non_json(content_type, body)
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Transient(f"the answer is not valid JSON ({error}): {_shorten(body)!r}") from None


Check = Callable[[Any], None]
Decode = Callable[[str, bytes], Any]


@dataclass
class Page:
    """One page of changes whose bytes were checked; its records are validated on import.

    `batch.header["cursor"]` is the page's `next_cursor`, so the importer stores where the
    next page starts in the same transaction as this page's data."""

    batch: RawBatch
    next_cursor: str
    has_more: bool
    remaining: int | None
    size: int


def _page_answer(origin: str) -> Decode:
    """Turns the bytes of an answer into a Page without building its records as dicts: the
    importer validates each record straight from its JSON text, as it does for a file."""

    def decode(content_type: str, body: bytes) -> Page:
        _refuse_non_json(content_type, body)
        try:
            batch = read_bytes(body, origin)
        except BatchError as error:
            problem = error.problems[0]
            raise _Transient(f"the answer is not valid JSON of a page ({problem})") from None
        return _page(batch)

    return decode


class UpstreamClient:
    """Requests to the upstream API with timeouts and retries with exponential backoff."""

    def __init__(self, params: HttpParams, stop: threading.Event | None = None) -> None:
        refused = None if params.allow_plain_http else plain_http_problem(params.url)
        if refused:
            raise UpstreamError(f"not connecting to upstream: {refused}")
        self.params = params
        self.stop = stop or threading.Event()
        self._opener = urllib.request.build_opener(_NoRedirect)

    def changes(
        self, cursor: str | None, limit: int | None = None, *, attempts: int | None = None
    ) -> Page:
        query = {"limit": str(limit or self.params.limit)}
        if cursor is not None:
            query = {"cursor": cursor, **query}
        path = f"{CHANGES_PATH}?{urlencode(query)}"
        decode = _page_answer(_origin(cursor))
        return self.request("GET", path, decode=decode, attempts=attempts)  # type: ignore[no-any-return]

    def prefetch(self, cursor: str) -> Page | None:
        """One quiet try at the next page while the current one is imported; None on any
        trouble, and the page is then fetched again the normal way, with retries."""
        try:
            return self.changes(cursor, attempts=1)
        except (UpstreamError, Interrupted):
            return None

    def push_events(self, events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Post events; returns upstream's verdict per event id (accepted/duplicate/rejected)."""
        answer = self.request("POST", EVENTS_PATH, body={"events": events}, check=_check_results)
        return {item["event_id"]: item for item in answer["results"]}

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        check: Check | None = None,
        decode: Decode = _json_answer,
        attempts: int | None = None,
    ) -> Any:
        url = self.params.url.rstrip("/") + path
        attempts = attempts or self.params.retries + 1
        last: _Transient | None = None
        for attempt in range(attempts):
            try:
                answer = decode(*self._once(method, url, body))
                if check is not None:
                    check(answer)
                return answer
            except _Transient as problem:
                last = problem
                log.warning(
                    "%s %s: %s (attempt %d of %d)", method, url, problem, attempt + 1, attempts
                )
            if attempt + 1 < attempts and self.stop.wait(self._delay(attempt)):
                raise Interrupted
        raise UpstreamError(
            f"upstream {method} {url}: gave up after {attempts} attempts; last problem: {last}"
        )

    def _delay(self, attempt: int) -> float:
        # Exponential with jitter, so schools that lost the line together do not return
        # together and flatten upstream.
        ceiling = min(self.params.backoff_s * 2**attempt, self.params.backoff_max_s)
        return ceiling * random.uniform(0.5, 1.0)

    def _once(self, method: str, url: str, body: Any) -> tuple[str, bytes]:
        """(content type, body) of one request; _Transient for the line's troubles."""
        headers = {
            "Authorization": f"Bearer {self.params.token}",
            "Accept": "application/json",
            "User-Agent": "otmetka",
        }
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with (
            self._failures_explained(url),
            self._opener.open(request, timeout=self.params.timeout_s) as response,
        ):
            content_type = response.headers.get_content_type()
            raw = response.read()
        return content_type, raw

    @contextlib.contextmanager
    def _failures_explained(self, url: str) -> Iterator[None]:
        timeout = self.params.timeout_s
        try:
            yield
        except urllib.error.HTTPError as error:
            raise self._status_problem(error) from None
        except TimeoutError:
            raise _Transient(f"no answer within {timeout:g} s") from None
        except http.client.IncompleteRead as error:
            raise _Transient(
                f"the answer was cut off after {len(error.partial)} bytes (the line dropped?)"
            ) from None
        except urllib.error.URLError as error:
            raise _Transient(f"cannot connect ({error.reason})") from None
        except (http.client.HTTPException, OSError) as error:
            raise _Transient(f"the connection broke ({type(error).__name__}: {error})") from None

    def _status_problem(self, error: urllib.error.HTTPError) -> Exception:
        status = error.code
        body = _shorten(error.read() or b"")
        if status in (401, 403):
            return UpstreamError(
                f"upstream {error.url}: answered {status}: {self.params.token_name} was refused; "
                "ask upstream for a valid token and set it"
            )
        if 300 <= status < 400:
            where = error.headers.get("Location", "?")
            return _Transient(f"answered {status}, a redirect to {where} (a captive portal?)")
        if status in (408, 425, 429) or status >= 500:
            return _Transient(f"answered {status} {error.reason}: {body!r}")
        return UpstreamError(
            f"upstream {error.url}: answered {status} {error.reason}: {body!r}; "
            "check source.url and the upstream's documentation"
        )


def _page(batch: RawBatch) -> Page:
    """The page keys checked and taken out of the envelope (`changes` being a list was
    checked by the reader)."""
    header = batch.header
    next_cursor, has_more = header.get("next_cursor"), header.get("has_more")
    problems = []
    if not isinstance(next_cursor, str) or not next_cursor:
        problems.append("'next_cursor' is not a non-empty string")
    if not isinstance(has_more, bool):
        problems.append("'has_more' is not true or false")
    if problems:
        raise _Transient("the page is malformed: " + "; ".join(problems))
    remaining = header.get("remaining")
    batch.header = {key: value for key, value in header.items() if key not in _PAGE_KEYS}
    batch.header["cursor"] = next_cursor
    batch.taken = frozenset(_PAGE_KEYS)
    known = remaining if isinstance(remaining, int) and remaining >= 0 else None
    return Page(batch, str(next_cursor), bool(has_more), known, len(batch.records))


def _check_results(answer: Any) -> None:
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or not all(
        isinstance(item, dict) and isinstance(item.get("event_id"), str) for item in results
    ):
        raise _Transient("the answer to the events has no list 'results' of {event_id, status}")


# --- the pull -------------------------------------------------------------------------------


@dataclass
class PullResult:
    pages: int = 0
    records: int = 0
    already_imported: int = 0
    cursor: str | None = None
    stopped: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.records > 0

    def add(self, imported: importer.ImportResult) -> None:
        self.pages += 1
        if imported.already_imported:
            self.already_imported += 1
        self.records += imported.records
        for entity, count in imported.counts.items():
            total = count["upserted"] + count["deleted"]
            if total:
                self.counts[entity] = self.counts.get(entity, 0) + total

    def summary(self) -> str:
        if not self.pages:
            return f"pull: nothing new upstream (cursor {self.cursor})"
        parts = ", ".join(f"{name} {n}" for name, n in self.counts.items())
        stopped = "; stopped before the end, the next pull resumes" if self.stopped else ""
        return (
            f"pull: {self.pages} pages, {self.records} records"
            f"{f' ({parts})' if parts else ''}; cursor {self.cursor}{stopped}"
        )


def _origin(cursor: str | None) -> str:
    return f"upstream page after cursor {cursor}" if cursor else "upstream first page"


class _Progress:
    """Draws a bar when upstream says how much remains (the optional `remaining`)."""

    def __init__(self, progress: Progress | None, bar: Bar | None) -> None:
        self.progress = progress
        self.bar = bar
        self.stack = contextlib.ExitStack()

    def first_page(self, page: Page) -> None:
        if self.bar is not None and page.remaining is not None:
            total = page.size + page.remaining
            advance = self.stack.enter_context(self.bar("pull", total))
            self.progress = advance if self.progress is None else _both(advance, self.progress)


def _both(first: Progress, second: Progress) -> Progress:
    def advance(n: int) -> None:
        first(n)
        second(n)

    return advance


class _Pages:
    """Pages from a cursor on, the next one fetched while the current one is imported (the
    network and JSON decoding then overlap the database work)."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self.ahead: tuple[str, Future[Page | None]] | None = None

    def get(self, cursor: str | None) -> Page:
        if self.ahead is not None and self.ahead[0] == cursor:
            page = self.ahead[1].result()
            self.ahead = None
            if page is not None:
                return page
        return self.client.changes(cursor)

    def fetch_ahead(self, cursor: str) -> None:
        self.ahead = (cursor, self.pool.submit(self.client.prefetch, cursor))

    def close(self) -> None:
        # A prefetch still running makes one request at most; nobody waits for it.
        self.pool.shutdown(wait=False, cancel_futures=True)


def _pull_pages(
    client: UpstreamClient,
    rules: MarkRules,
    result: PullResult,
    shown: _Progress,
    max_pages: int | None,
) -> None:
    cursor = result.cursor
    pages = _Pages(client)
    known = importer.KnownIds()
    try:
        while max_pages is None or result.pages < max_pages:
            if client.stop.is_set():
                result.stopped = True
                return
            page = pages.get(cursor)
            if not page.size and page.next_cursor == cursor:
                return  # nothing new since the stored cursor
            if page.next_cursor == cursor and page.has_more:
                raise UpstreamError(
                    f"upstream says there is more after cursor {cursor} but does not move "
                    "the cursor; report this to upstream"
                )
            if page.has_more and (max_pages is None or result.pages + 1 < max_pages):
                pages.fetch_ahead(page.next_cursor)
            if result.pages == 0:
                shown.first_page(page)
            imported = importer.import_batch(
                page.batch, rules, source=SOURCE, progress=shown.progress, known=known
            )
            result.add(imported)
            cursor = result.cursor = page.next_cursor
            if not page.has_more:
                return
    finally:
        pages.close()


def _note(**facts: Any) -> None:
    known = sync_db.get_fact(PULL_FACT) or {}
    sync_db.put_fact(PULL_FACT, {**known, **facts})


def pull(
    params: HttpParams,
    progress: Progress | None = None,
    *,
    rules: MarkRules | None = None,
    bar: Bar | None = None,
    stop: threading.Event | None = None,
    max_pages: int | None = None,
) -> PullResult:
    """Pull pages from the stored cursor until upstream has no more (or `stop` is set).

    The caller has opened the project database (runtime.pull_now does it for a Config).
    Raises UpstreamError or BatchError; pages imported before stay imported.
    """
    result = PullResult(cursor=journal.cursor_of(SOURCE))
    shown = _Progress(progress, bar)
    # A first pull fills empty tables a page at a time, each page its own transaction: their
    # indexes are set aside until the last page and made once, not grown key by key.
    journal.restore_set_aside()  # an earlier pull's, if its own restore failed
    journal.set_aside_while_empty()
    try:
        client = UpstreamClient(params, stop)
        with shown.stack:
            _pull_pages(client, rules or MarkRules(), result, shown, max_pages)
    except Interrupted:
        result.stopped = True
    except OtmetkaError as error:
        _note(last_error=str(error), last_error_at=_now())
        raise
    finally:
        journal.restore_set_aside()
    if not result.stopped:
        _note(last_ok_at=_now(), last_records=result.records, cursor=result.cursor)
    return result


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def last_pull() -> dict[str, Any]:
    """What the last pulls did: last_ok_at, last_records, cursor, last_error, last_error_at."""
    return sync_db.get_fact(PULL_FACT) or {}

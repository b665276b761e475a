"""The Flask endpoint: serves the built site and the JSON API under /api/v1/.

`create_app(config)` is a factory so tests, `otmetka serve` and `otmetka run` each get their
own app bound to their own config. The API (docs/api.md, docs/openapi.json):

- ``POST /api/v1/acknowledgements``, ``/consents``, ``/breach-reports``: an act, with the
  page's token as the only authority (no cookies, so no CSRF); ``GET /api/v1/health``.
- Strict JSON schemas (unknown fields are errors); 400 with a message for malformed input,
  413 for a body over ``endpoint.max_body_bytes``, 415 without a JSON content type, 429
  over the per-address or per-login rate, 401 for an unknown token, 403 for a blocked one.
- Idempotent by ``event_id``: a replay gets the first answer again; the same id with another
  body gets 422. CORS allows any origin without credentials (pages open from file:// and
  mirrors).
- Site files: content-hash ETags, one fixed Last-Modified, gzip (compressed once per content
  version) for clients that accept it, and for a missing ``p/<page id>.html`` a 404 page that
  leads back to the login form (login.js asks for the page at once, no HEAD first).

This module holds the routes, the error answers and headers, and `serve`; the request schemas
are in `schemas`, the rate limits in `limits`, the group-commit writer every act goes through in
`writer`, and the API description in `openapi`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import mimetypes
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import peewee
from flask import Flask, Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.security import safe_join

from otmetka.daemon.acts import rules as acts
from otmetka.daemon.core.config import Config
from otmetka.daemon.endpoint.limits import RateLimiter, check_rate
from otmetka.daemon.endpoint.schemas import ApiError, parse_act
from otmetka.daemon.endpoint.writer import ActWriter, DatabaseBusy
from otmetka.daemon.runtime import open_project
from otmetka.db import acts as events
from otmetka.site_builder import publishing

log = logging.getLogger("otmetka.endpoint")

API_PREFIX = "/api/"
JSON_TYPES = ("application/json",)
# Site files worth compressing: pages, scripts, styles. Encrypted pages shrink too, since
# their envelope is base64 and their inline scripts are plain text.
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
MIN_COMPRESS_BYTES = 256
GZIP_CACHE_BYTES = 64 * 1024 * 1024
PAGE_PATH = re.compile(r"p/([0-9a-f]{16,64})\.html")
# The answer for a login without a page: login.js goes to the page at once (no HEAD first),
# so this sends the browser back to the login form, which says the login is wrong.
NO_PAGE = """<!doctype html>
<html lang="ru"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="0; url=../index.html#notfound={page_id}">
<title>Страница не найдена</title>
<p>Страница для этого логина не найдена.
<a href="../index.html#notfound={page_id}">Вернитесь ко входу</a> и проверьте логин.</p>
"""


@dataclass
class Api:
    config: Config
    writer: ActWriter
    per_address: RateLimiter
    per_login: RateLimiter

    def handle(self, path: str) -> tuple[int, dict[str, Any]]:
        check_rate(self.per_address, request.remote_addr or "?", "from this address")
        if request.mimetype not in JSON_TYPES:
            raise ApiError(415, "unsupported_media_type", "send the act as application/json")
        act, token_hash = parse_act(path, request.get_data(cache=False))
        check_rate(self.per_login, token_hash, "for this login")
        outcome = self.record(act, token_hash)
        return outcome.status, outcome.body

    def record(self, act: acts.Act, token_hash: str) -> acts.Outcome:
        now = dt.datetime.now(dt.UTC)
        ctx = acts.ActContext(self.config, now, "page")
        try:
            early = self._answer_without_writing(act, token_hash)
            if early is not None:
                return early
            leaked = acts.needs_new_login(act, token_hash)
            if leaked is not None:
                ctx.prepared = acts.successor(self.config, leaked)
            outcome = self.writer.submit(ctx, lambda: acts.record_from_page(ctx, act, token_hash))
        except acts.ActRefused as refused:
            raise ApiError(refused.status, refused.code, refused.message) from None
        except peewee.IntegrityError:
            raise ApiError(409, "conflict", "the act clashed with another; send it again") from None
        except DatabaseBusy:
            raise ApiError(503, "busy", "the school server is busy; the page retries", 5) from None
        acts.run_all(ctx.after)
        log.info("%s %s: %s", act.kind, act.event_id, outcome.status)
        return outcome

    @staticmethod
    def _answer_without_writing(act: acts.Act, token_hash: str) -> acts.Outcome | None:
        """Unknown tokens and replays need no write: answer them without the writer."""
        credential = acts.credential_for(token_hash)
        existing = events.find(act.event_id)
        if existing is None:
            acts.refuse_blocked(credential)
            return None
        return acts.replay_of(existing, act, credential)


def _error_response(status: int, code: str, message: str, retry_after: int = 0) -> Response:
    response = jsonify(error=code, message=message)
    response.status_code = status
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _json_error(error: HTTPException) -> Response | HTTPException:
    if not request.path.startswith(API_PREFIX):
        return error
    code = error.name.lower().replace(" ", "_")
    return _error_response(error.code or 500, code, error.description or error.name)


def _api_error(error: ApiError) -> Response:
    return _error_response(error.status, error.code, error.message, error.retry_after)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # No page may be framed: an unlocked journal in another site's frame could be clickjacked
    # into acknowledging (the page's own CSP meta tag cannot say frame-ancestors).
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.endswith(".html") or request.path == "/":
        # Pages change on every rebuild; a stale cached page would show old marks.
        response.headers["Cache-Control"] = "no-cache"
    if request.path.startswith(API_PREFIX):
        _cors(response)
    return response


def _cors(response: Response) -> None:
    """Any origin (file:// pages send "null"), never credentials: the token is in the body."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "86400"
    response.headers["Cache-Control"] = "no-store"
    if request.headers.get("Access-Control-Request-Private-Network") == "true":
        # Chromium asks before a page from a public origin or file:// posts to a LAN address.
        response.headers["Access-Control-Allow-Private-Network"] = "true"


def create_app(config: Config) -> Flask:
    open_project(config)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.endpoint.max_body_bytes
    api = Api(
        config,
        ActWriter(config.endpoint.write_wait_s),
        RateLimiter(config.endpoint.rate_per_address_per_minute),
        RateLimiter(config.endpoint.rate_per_credential_per_minute),
    )
    app.extensions["otmetka_api"] = api
    _api_routes(app, api)
    _site_routes(app, config.site.output_dir)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _json_error)
    app.after_request(_security_headers)
    return app


def _api_routes(app: Flask, api: Api) -> None:
    @app.get("/api/v1/health")
    def health() -> Any:
        return {"status": "ok"}

    @app.route(
        '/api/v1/<any("acknowledgements", "consents", "breach-reports"):path>', methods=["POST"]
    )
    def post_act(path: str) -> Any:
        status, body = api.handle(path)
        return body, status

    @app.before_request
    def preflight() -> Response | None:
        """CORS preflight of any API path: 204 with the headers `_cors` adds."""
        if request.method == "OPTIONS" and request.path.startswith(API_PREFIX):
            return Response(status=204)
        return None


class GzipCache:
    """Gzipped copies of site files by the SHA-256 of their content, least recently used
    dropped past `limit` bytes: each version of a page is compressed once, on its first
    request, then served as stored. A rebuilt page has a new hash, so nothing goes stale."""

    def __init__(self, limit: int = GZIP_CACHE_BYTES) -> None:
        self.limit = limit
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, digest: str, data: bytes) -> bytes:
        with self._lock:
            found = self._items.get(digest)
            if found is not None:
                self._items.move_to_end(digest)
                return found
        # mtime=0: the gzip header would otherwise say when the page was served first.
        packed = gzip.compress(data, compresslevel=9, mtime=0)
        with self._lock:
            if digest not in self._items:
                self._items[digest] = packed
                self._size += len(packed)
            while self._size > self.limit and self._items:
                self._size -= len(self._items.popitem(last=False)[1])
        return packed


def _site_routes(app: Flask, output_dir: Path) -> None:
    packed = GzipCache()

    @app.get("/")
    def index() -> Any:
        return _site_file(output_dir, "index.html", packed)

    @app.get("/<path:path>")
    def site_file(path: str) -> Any:
        if any(part.startswith(".") for part in path.split("/")):
            abort(404)  # dotfiles: a build's temp files, never part of the site
        return _site_file(output_dir, path, packed)


def _site_file(output_dir: Path, path: str, packed: GzipCache) -> Response:
    """A file of the site, with headers that tell nothing of when it was written.

    The ETag is the SHA-256 of the content (werkzeug's default carries the mtime to 0.1 µs)
    and Last-Modified is the one fixed time every file of the site has. Only the ETag makes
    a request conditional: a date would answer 304 for a page that changed since. A client
    that accepts gzip gets the gzipped file (about half the bytes of an encrypted page) with
    its own ETag, the content's hash and "-gzip", as a cache must tell the two apart.
    """
    found = safe_join(str(output_dir), path)
    if found is None or not Path(found).is_file():
        _not_found(path)
    data = Path(found).read_bytes()
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    digest = hashlib.sha256(data).hexdigest()
    compressible = kind.startswith(COMPRESSIBLE) and len(data) >= MIN_COMPRESS_BYTES
    gzipped = compressible and request.accept_encodings["gzip"] > 0
    if gzipped:
        data = packed.get(digest, data)
        digest += "-gzip"
    response = Response(data, mimetype=kind)
    if gzipped:
        response.content_encoding = "gzip"
    if compressible:
        response.vary.add("Accept-Encoding")
    response.set_etag(digest)
    response.make_conditional(request, accept_ranges=True, complete_length=len(data))
    response.last_modified = publishing.FIXED_TIME  # set after the check: never compared
    return response


def _not_found(path: str) -> NoReturn:
    """404; for a missing page (a mistyped login) a page that leads back to the login form."""
    page = PAGE_PATH.fullmatch(path)
    if page is None:
        abort(404)
    response = Response(NO_PAGE.format(page_id=page.group(1)), 404, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    abort(response)


def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    """Serve the app with waitress until interrupted."""
    import waitress

    waitress.serve(
        create_app(config),
        host=host or config.endpoint.host,
        port=port or config.endpoint.port,
        threads=config.endpoint.threads,
        ident="otmetka",
    )

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

This module holds the routes, the error answers and headers, and `serve`; the request schemas
are in `schemas`, the rate limits in `limits`, the group-commit writer every act goes through in
`writer`, and the API description in `openapi`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee
from flask import Flask, Response, abort, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from otmetka.daemon.acts import rules as acts
from otmetka.daemon.core.config import Config
from otmetka.daemon.endpoint.limits import RateLimiter, check_rate
from otmetka.daemon.endpoint.schemas import ApiError, parse_act
from otmetka.daemon.endpoint.writer import ActWriter, DatabaseBusy
from otmetka.daemon.runtime import open_project
from otmetka.db import acts as events

log = logging.getLogger("otmetka.endpoint")

API_PREFIX = "/api/"
JSON_TYPES = ("application/json",)


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


def _site_routes(app: Flask, output_dir: Path) -> None:
    @app.get("/")
    def index() -> Any:
        return send_from_directory(output_dir, "index.html")

    @app.get("/<path:path>")
    def site_file(path: str) -> Any:
        if any(part.startswith(".") for part in path.split("/")):
            abort(404)  # dotfiles: a build's temp files, never part of the site
        return send_from_directory(output_dir, path)


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

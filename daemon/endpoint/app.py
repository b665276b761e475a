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

Writes go through one writer thread that commits the acts waiting at that moment in ONE
transaction, each in its own savepoint (group commit): SQLite with synchronous=FULL pays one
fsync per commit, so batching is what lets a school's parents post at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import peewee
from flask import Flask, Response, abort, jsonify, request, send_from_directory
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as SchemaError
from werkzeug.exceptions import HTTPException

from otmetka.daemon.acts import rules as acts
from otmetka.daemon.core.config import Config
from otmetka.daemon.runtime import open_project
from otmetka.db import acts as events
from otmetka.db import database, write_transaction
from otmetka.site_builder import crypto

log = logging.getLogger("otmetka.endpoint")

API_PREFIX = "/api/"
JSON_TYPES = ("application/json",)

# --- request schemas ------------------------------------------------------------------------

EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{20,128}$")]
PersonId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _ActRequest(_Strict):
    event_id: EventId = Field(description="Random id made by the page; the same on every retry.")
    token: Token = Field(description="The page's endpoint token: the only authority.")
    occurred_at: AwareDatetime = Field(description="When the parent acted (page clock).")


class Shown(_Strict):
    as_of: dt.date
    week_start: dt.date
    week_end: dt.date


class AckRequest(_ActRequest):
    page_version: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    children: list[PersonId] = Field(min_length=1, max_length=20)
    shown: Shown


class ConsentRequest(_ActRequest):
    decision: Literal["granted", "refused", "withdrawn"]
    text_version: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class BreachRequest(_ActRequest):
    note: Annotated[str, StringConstraints(max_length=1000)] = ""


ROUTES: dict[str, tuple[str, type[_ActRequest]]] = {
    "acknowledgements": (acts.ACK, AckRequest),
    "consents": (acts.CONSENT, ConsentRequest),
    "breach-reports": (acts.BREACH, BreachRequest),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def _schema_message(error: SchemaError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        if item["type"] == "json_invalid":
            return "the body is not valid JSON"
        parts.append(f"field '{where}': {item['msg'].lower()}")
    return "; ".join(parts)


def parse_act(path: str, body: bytes) -> tuple[acts.Act, str]:
    """The act and the token's hash, from a request body; ApiError(400) if malformed."""
    kind, schema = ROUTES[path]
    try:
        parsed = schema.model_validate_json(body)
    except SchemaError as error:
        raise ApiError(400, "invalid_request", _schema_message(error)) from None
    stored = parsed.model_dump(mode="json", exclude={"token"})
    act = acts.Act(kind, parsed.event_id, stored, parsed.occurred_at, acts.ELECTRONIC)
    return act, crypto.hash_token(parsed.token)


# --- rate limits -----------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per key: `per_minute` requests a minute, bursts up to `per_minute`."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def wait_for(self, key: str) -> float:
        """0 if the request may go now (and it is counted), else seconds until it may."""
        now = self.clock()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.refill)
            if tokens < 1.0:
                self.buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.refill
            self.buckets[key] = (tokens - 1.0, now)
            if len(self.buckets) > 100_000:
                self._forget_idle(now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        """Full buckets carry no state: drop them so memory stays bounded."""
        full_after = self.capacity / self.refill
        idle = [k for k, (_t, last) in self.buckets.items() if now - last > full_after]
        for key in idle:
            del self.buckets[key]


def _check_rate(limiter: RateLimiter, key: str, what: str) -> None:
    wait = limiter.wait_for(key)
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        raise ApiError(429, "rate_limited", f"too many requests {what}; retry later", seconds)


# --- the writer (group commit) --------------------------------------------------------------


@dataclass
class _Job:
    ctx: acts.ActContext
    run: Callable[[], acts.Outcome]
    done: threading.Event = field(default_factory=threading.Event)
    outcome: acts.Outcome | None = None
    error: BaseException | None = None


class DatabaseBusy(Exception):
    """The database stayed locked (a long import) longer than endpoint.write_wait_s."""


def _locked(error: peewee.OperationalError) -> bool:
    # SQLite: "database is locked"; PostgreSQL: "canceling statement due to lock timeout".
    text = str(error).lower()
    return "locked" in text or "busy" in text or "lock timeout" in text


class ActWriter:
    """One thread writes every act: it takes all acts waiting, runs each in a savepoint of
    one transaction and commits once. A database locked by an import is waited for."""

    IDLE_S = 30.0  # the thread ends when idle this long and starts again on demand
    MAX_BATCH = 256

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self.jobs: queue.Queue[_Job] = queue.Queue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, ctx: acts.ActContext, run: Callable[[], acts.Outcome]) -> acts.Outcome:
        job = _Job(ctx, run)
        self.jobs.put(job)
        self._ensure_thread()
        if not job.done.wait(self.wait_s + 30):
            raise DatabaseBusy("the act writer did not answer in time")
        if job.error is not None:
            raise job.error
        assert job.outcome is not None
        return job.outcome

    def _ensure_thread(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="act-writer", daemon=True)
                self.thread.start()

    def _loop(self) -> None:
        try:
            while True:
                try:
                    first = self.jobs.get(timeout=self.IDLE_S)
                except queue.Empty:
                    with self.lock:
                        if self.jobs.empty():
                            self.thread = None
                            return
                    continue
                self._write([first, *self._more()])
        finally:
            if database.obj is not None:
                database.close()  # this thread's connection

    def _more(self) -> list[_Job]:
        found: list[_Job] = []
        while len(found) < self.MAX_BATCH:
            try:
                found.append(self.jobs.get_nowait())
            except queue.Empty:
                break
        return found

    def _write(self, batch: list[_Job]) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                with write_transaction():
                    for job in batch:
                        self._run_one(job)
                break
            except peewee.OperationalError as error:
                self._undo(batch)
                if not _locked(error) or time.monotonic() > deadline:
                    self._fail(batch, DatabaseBusy(str(error)))
                    return
                time.sleep(0.05)
            except Exception as error:  # a failed commit: nothing of the batch is stored
                log.exception("writing %d acts failed", len(batch))
                self._undo(batch)
                self._fail(batch, error)
                return
        for job in batch:
            job.done.set()

    @staticmethod
    def _run_one(job: _Job) -> None:
        job.outcome, job.error = None, None
        job.ctx.after.clear()
        try:
            with database.atomic():  # a savepoint: one refused act leaves the others
                job.outcome = job.run()
        except peewee.OperationalError:
            raise  # the database itself (locked, I/O): the whole batch is retried or fails
        except Exception as error:  # this act only: its savepoint is rolled back
            if not isinstance(error, acts.ActRefused | peewee.IntegrityError):
                log.exception("recording an act failed")
            acts.run_all(job.ctx.undo)
            job.ctx.undo.clear()
            job.error = error

    @staticmethod
    def _undo(batch: list[_Job]) -> None:
        for job in batch:
            acts.run_all(job.ctx.undo)
            job.ctx.undo.clear()
            job.ctx.after.clear()

    @staticmethod
    def _fail(batch: list[_Job], error: BaseException) -> None:
        for job in batch:
            job.outcome, job.error = None, error
            job.done.set()


# --- the API ---------------------------------------------------------------------------------


@dataclass
class Api:
    config: Config
    writer: ActWriter
    per_address: RateLimiter
    per_login: RateLimiter

    def handle(self, path: str) -> tuple[int, dict[str, Any]]:
        _check_rate(self.per_address, request.remote_addr or "?", "from this address")
        if request.mimetype not in JSON_TYPES:
            raise ApiError(415, "unsupported_media_type", "send the act as application/json")
        act, token_hash = parse_act(path, request.get_data(cache=False))
        _check_rate(self.per_login, token_hash, "for this login")
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
    output_dir = config.site.output_dir
    api = Api(
        config,
        ActWriter(config.endpoint.write_wait_s),
        RateLimiter(config.endpoint.rate_per_address_per_minute),
        RateLimiter(config.endpoint.rate_per_credential_per_minute),
    )
    app.extensions["otmetka_api"] = api

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

    @app.get("/")
    def index() -> Any:
        return send_from_directory(output_dir, "index.html")

    @app.get("/<path:path>")
    def site_file(path: str) -> Any:
        if any(part.startswith(".") for part in path.split("/")):
            abort(404)  # dotfiles: a build's temp files, never part of the site
        return send_from_directory(output_dir, path)

    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _json_error)
    app.after_request(_security_headers)
    return app


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


# --- the API description -------------------------------------------------------------------


class Answer(BaseModel):
    """What an act gets back: 201 the first time, the same answer again on a replay."""

    event_id: str
    kind: Literal["acknowledgement", "consent", "breach_report"]
    status: Literal["recorded"]
    received_at: str = Field(description="When the school received the act (UTC, ISO 8601).")
    children: list[str] | None = Field(None, description="acknowledgement: whose pages.")
    consent_state: Literal["granted", "refused", "withdrawn"] | None = Field(
        None,
        description="consent: the state after this act (a refusal after consent is a withdrawal).",
    )
    deadline: str | None = Field(None, description="breach: end of the next working day (UTC).")
    credential: Literal["revoked"] | None = None
    invalidated: int | None = Field(None, description="breach: acts of the login made invalid.")


class ErrorAnswer(BaseModel):
    error: str = Field(description="A stable code, e.g. event_id_reused, rate_limited.")
    message: str = Field(description="What is wrong and what to do, in English.")


_ERRORS = {
    "400": "Malformed JSON or a field that breaks the schema; the message names the field.",
    "401": "Unknown token: the page is not one of this school's current pages.",
    "403": "The login is blocked (breach report, refused consent), or not allowed this act.",
    "409": "Not now: e.g. an acknowledgement before consent was granted.",
    "413": "The body is larger than endpoint.max_body_bytes.",
    "415": "The body is not sent as application/json.",
    "422": "The event_id was used for another act, or the act names unknown children / text.",
    "429": "Over the per-address or per-login rate; Retry-After says when to try again.",
    "503": "The database stayed busy (a long import); retry later with the same event_id.",
}
_SUMMARIES = {
    "acknowledgements": "A parent confirms they have read the page (its exact version).",
    "consents": "A legal representative grants, refuses or withdraws consent.",
    "breach-reports": "Someone reports that this page's login and password leaked.",
}


def openapi() -> dict[str, Any]:
    """docs/openapi.json, generated from the schemas the endpoint validates with."""
    from pydantic.json_schema import models_json_schema

    models: list[type[BaseModel]] = [AckRequest, ConsentRequest, BreachRequest, Answer, ErrorAnswer]
    inputs: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (m, "validation") for m in models
    ]
    _, schema = models_json_schema(inputs, ref_template="#/components/schemas/{model}")
    error_ref = {"$ref": "#/components/schemas/ErrorAnswer"}
    paths: dict[str, Any] = {
        "/api/v1/health": {
            "get": {"summary": "Is the endpoint up.", "responses": {"200": {"description": "ok"}}}
        }
    }
    for path, (_kind, model) in ROUTES.items():
        responses: dict[str, Any] = {
            "201": {
                "description": "Recorded (also the answer to a replay of the same act).",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}
                },
            }
        }
        for code, text in _ERRORS.items():
            responses[code] = {
                "description": text,
                "content": {"application/json": {"schema": error_ref}},
            }
        paths[f"/api/v1/{path}"] = {
            "post": {
                "summary": _SUMMARIES[path],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                        }
                    },
                },
                "responses": responses,
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "otmetka acts API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schema["$defs"]},
    }


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:] != ["openapi"]:
        sys.exit("usage: python -m otmetka.daemon.endpoint.app openapi > docs/openapi.json")
    sys.stdout.write(json.dumps(openapi(), ensure_ascii=False, indent=2) + "\n")

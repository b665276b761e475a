"""The Flask endpoint: serves the built site and the JSON API under /api/v1/.

`create_app(config)` is a factory so tests, `otmetka serve` and `otmetka run` each get their
own app bound to their own config.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException

from daemon.config import Config

API_PREFIX = "/api/"


def _json_error(error: HTTPException) -> Response | HTTPException:
    if not request.path.startswith(API_PREFIX):
        return error
    response = jsonify(error=error.name.lower().replace(" ", "_"), message=error.description)
    response.status_code = error.code or 500
    return response


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.endswith(".html") or request.path == "/":
        # Pages change on every rebuild; a stale cached page would show old marks.
        response.headers["Cache-Control"] = "no-cache"
    return response


def create_app(config: Config) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.endpoint.max_body_bytes
    output_dir = config.site.output_dir

    @app.get("/api/v1/health")
    def health() -> Any:
        return {"status": "ok"}

    @app.get("/")
    def index() -> Any:
        return send_from_directory(output_dir, "index.html")

    @app.get("/<path:path>")
    def site_file(path: str) -> Any:
        return send_from_directory(output_dir, path)

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

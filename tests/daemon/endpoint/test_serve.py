"""`otmetka serve`: the Flask app under waitress serves the built site and JSON on /api."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from otmetka.daemon.core.config import Config
from otmetka.daemon.endpoint.app import create_app
from tests.support.servers import waitress_server


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def site_url(config: Config) -> object:
    output: Path = config.site.output_dir
    (output / "p").mkdir(parents=True)
    (output / "index.html").write_text("<!doctype html><title>вход</title>", encoding="utf-8")
    (output / "p" / "abc.html").write_text("<!doctype html><p>page</p>", encoding="utf-8")
    with waitress_server(create_app(config)) as port:
        yield f"http://127.0.0.1:{port}"


def test_serves_index_and_pages_uncached(site_url: str) -> None:
    status, headers, body = _get(f"{site_url}/")
    assert status == 200 and "вход" in body.decode()
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, _, body = _get(f"{site_url}/p/abc.html")
    assert status == 200 and b"page" in body


def test_health_and_json_errors_on_api(site_url: str) -> None:
    status, headers, body = _get(f"{site_url}/api/v1/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, headers, body = _get(f"{site_url}/api/v1/nothing-here")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "not_found"


def test_missing_page_is_plain_404_and_no_traversal(site_url: str) -> None:
    status, headers, _ = _get(f"{site_url}/p/missing.html")
    assert status == 404 and "json" not in headers["Content-Type"]
    status, _, _ = _get(f"{site_url}/../config.yaml")
    assert status == 404


def test_missing_page_leads_back_to_the_login_form(site_url: str) -> None:
    """login.js goes to p/<page id>.html at once; a mistyped login comes back to the form."""
    page_id = "0123456789abcdef0123456789abcdef"
    status, headers, body = _get(f"{site_url}/p/{page_id}.html")
    text = body.decode()
    assert status == 404 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert f'content="0; url=../index.html#notfound={page_id}"' in text
    assert f'<a href="../index.html#notfound={page_id}">' in text
    assert "Страница для этого логина не найдена" in text
    assert headers["Content-Security-Policy"] == "default-src 'none'"
    for other in ("p/missing.html", "p/ABCDEF0123456789.html", "q/" + page_id + ".html"):
        status, _, body = _get(f"{site_url}/{other}")
        assert status == 404 and b"notfound" not in body, other

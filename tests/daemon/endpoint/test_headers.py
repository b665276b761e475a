"""Headers of the site files `otmetka serve` answers with: nothing in them tells when a
file was written (docs/security.md). The ETag is the content's SHA-256, Last-Modified the
one fixed time of every file of the site, and only the ETag makes a request conditional."""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from otmetka.daemon.core.config import Config
from otmetka.daemon.endpoint.app import GzipCache, create_app
from otmetka.db import close_database
from otmetka.site_builder import publishing
from tests.support.servers import waitress_server

FIXED_DATE = "Sat, 01 Jan 2000 00:00:00 GMT"
PAGE = b"<!doctype html><p>page</p>" * 40


def _get(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            found = {k.lower(): v for k, v in response.headers.items()}
            return response.status, found, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.fixture
def site(config: Config) -> Iterator[tuple[str, Path]]:
    output: Path = config.site.output_dir
    (output / "p").mkdir(parents=True)
    (output / "index.html").write_text("<!doctype html><title>вход</title>", encoding="utf-8")
    page = output / "p" / "abc.html"
    page.write_bytes(PAGE)
    os.utime(page, ns=(1_712_345_678_123_456_700, 1_712_345_678_123_456_700))  # a real mtime
    with waitress_server(create_app(config)) as port:
        yield f"http://127.0.0.1:{port}", page
    close_database()


def test_etag_is_the_content_hash_and_the_date_is_fixed(site: tuple[str, Path]) -> None:
    base, page = site
    status, headers, body = _get(f"{base}/p/abc.html")
    assert status == 200 and body == PAGE
    assert headers["etag"] == f'"{hashlib.sha256(PAGE).hexdigest()}"'
    assert headers["last-modified"] == FIXED_DATE  # whatever the file's own mtime says
    assert "1712345678" not in str(headers)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-cache"
    page.write_bytes(PAGE + b"<p>new</p>")
    os.utime(page, ns=(1_712_345_678_123_456_700, 1_712_345_678_123_456_700))
    _status, changed, _body = _get(f"{base}/p/abc.html")
    assert changed["etag"] != headers["etag"]  # same mtime, new content: a new ETag


def test_only_the_etag_answers_not_modified(site: tuple[str, Path]) -> None:
    base, _page = site
    etag = f'"{hashlib.sha256(PAGE).hexdigest()}"'
    assert _get(f"{base}/p/abc.html", **{"If-None-Match": etag})[0] == 304
    assert _get(f"{base}/p/abc.html", **{"If-None-Match": '"other"'})[0] == 200
    assert _get(f"{base}/p/abc.html", **{"If-Modified-Since": FIXED_DATE})[0] == 200
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert _get(f"{base}/p/abc.html", **{"If-Modified-Since": later})[0] == 200


def test_ranges_head_and_index(site: tuple[str, Path]) -> None:
    base, _page = site
    status, headers, body = _get(f"{base}/p/abc.html", Range="bytes=0-9")
    assert (
        status == 206 and body == PAGE[:10] and headers["content-range"].endswith(f"/{len(PAGE)}")
    )
    status, headers, body = _get(f"{base}/p/abc.html", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(PAGE))
    status, headers, body = _get(f"{base}/")
    assert status == 200 and "вход" in body.decode()
    assert headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'


def test_missing_hidden_and_outside_files_are_404(site: tuple[str, Path], config: Config) -> None:
    base, _page = site
    (config.site.output_dir / "p" / ".tmp-stage-1.html").write_bytes(b"half")
    assert _get(f"{base}/p/missing.html")[0] == 404
    assert _get(f"{base}/p/.tmp-stage-1.html")[0] == 404
    assert _get(f"{base}/p")[0] == 404  # a folder is not a file
    assert _get(f"{base}/../config.yaml")[0] == 404
    assert _get(f"{base}/p/..%2F..%2Fconfig.yaml")[0] == 404


def test_the_fixed_time_is_the_one_the_builder_writes() -> None:
    assert int(publishing.FIXED_TIME.timestamp()) == publishing.FIXED_MTIME
    assert publishing.FIXED_TIME.strftime("%a, %d %b %Y %H:%M:%S GMT") == FIXED_DATE


# ---- gzip: one compressed copy per content version --------------------------------------


def test_gzip_when_accepted_with_its_own_etag(site: tuple[str, Path]) -> None:
    base, page = site
    status, plain, body = _get(f"{base}/p/abc.html")
    assert status == 200 and body == PAGE and "content-encoding" not in plain
    assert plain["vary"] == "Accept-Encoding"
    status, packed, body = _get(f"{base}/p/abc.html", **{"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and packed["content-encoding"] == "gzip"
    assert packed["vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == PAGE and len(body) < len(PAGE) // 4
    assert body[4:8] == b"\0\0\0\0"  # the gzip header's time is zero: nothing tells when
    assert packed["content-length"] == str(len(body))
    assert packed["etag"] == f'"{hashlib.sha256(PAGE).hexdigest()}-gzip"' != plain["etag"]
    assert packed["last-modified"] == FIXED_DATE and packed["cache-control"] == "no-cache"
    # The same version answers the same bytes (compressed once), a new version new ones.
    assert _get(f"{base}/p/abc.html", **{"Accept-Encoding": "gzip"})[2] == body
    page.write_bytes(PAGE + b"<p>new</p>")
    _status, changed, again = _get(f"{base}/p/abc.html", **{"Accept-Encoding": "gzip"})
    assert gzip.decompress(again) == PAGE + b"<p>new</p>" and changed["etag"] != packed["etag"]


def test_gzip_etag_answers_not_modified_only_for_its_variant(site: tuple[str, Path]) -> None:
    base, _page = site
    digest = hashlib.sha256(PAGE).hexdigest()
    gz = {"Accept-Encoding": "gzip"}
    assert _get(f"{base}/p/abc.html", **gz, **{"If-None-Match": f'"{digest}-gzip"'})[0] == 304
    assert _get(f"{base}/p/abc.html", **gz, **{"If-None-Match": f'"{digest}"'})[0] == 200
    assert _get(f"{base}/p/abc.html", **{"If-None-Match": f'"{digest}-gzip"'})[0] == 200


def test_no_gzip_when_refused_or_not_worth_it(site: tuple[str, Path], config: Config) -> None:
    base, _page = site
    for refused in ("identity", "gzip;q=0", "br"):
        status, headers, body = _get(f"{base}/p/abc.html", **{"Accept-Encoding": refused})
        assert status == 200 and body == PAGE and "content-encoding" not in headers, refused
    status, headers, body = _get(f"{base}/", **{"Accept-Encoding": "gzip"})
    assert body.startswith(b"<!doctype html>") and "content-encoding" not in headers  # tiny
    (config.site.output_dir / "photo.png").write_bytes(b"\x89PNG" + bytes(4000))
    status, headers, body = _get(f"{base}/photo.png", **{"Accept-Encoding": "gzip"})
    assert status == 200 and len(body) == 4004 and "content-encoding" not in headers
    assert "vary" not in headers


def test_gzip_cache_drops_the_least_recently_used() -> None:
    cache = GzipCache(limit=200)
    first = cache.get("a", bytes(1000))
    assert gzip.decompress(first) == bytes(1000)
    assert cache.get("a", b"ignored: the digest names the content") is first
    for name in "bcdefghij":
        cache.get(name, name.encode() * 500)
    assert cache.get("a", b"x" * 300) != first  # compressed again: it had been dropped


@pytest.mark.parametrize("path", ["/", "/p/abc.html", "/api/v1/health"])
def test_nothing_may_be_framed_or_sniffed(site: tuple[str, Path], path: str) -> None:
    base, _page = site
    _status, headers, _body = _get(base + path)
    assert headers["content-security-policy"] == "frame-ancestors 'none'"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"

"""What an observer learns from the public folder and the HTTP headers of the served site:
the number of pages and their size buckets, nothing more (docs/security.md).

A school of two classes is built, then a guardian consents and another login is reported
leaked, and it is built again. Each time: every file carries the one fixed mtime, every page
has the same shell, its envelope is padded to a bucket, no two files share a salt, the pages
are renamed into place in an order that is not the class order, and the served ETags are
hashes of the content.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import json
import os
import re
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.access import credentials
from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.endpoint.app import create_app
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.runtime import open_project
from otmetka.db import close_database, models, printing, write_transaction
from otmetka.site_builder import build, crypto, publishing
from tests.support.acts_support import QUIET, make_config
from tests.support.page_factories import two_class_school
from tests.support.servers import waitress_server

TODAY = dt.date(2026, 9, 16)
PER_CLASS = 4  # 2 teachers, 8 students, 8 guardians: 18 pages, 18! orders
ENVELOPE = re.compile(r'<script type="application/json" id="otm-envelope">([^<]*)</script>')
FIXED_DATE = "Sat, 01 Jan 2000 00:00:00 GMT"


@dataclass
class Built:
    """One build as an observer sees it, and the order the builder rendered and renamed."""

    pages: dict[str, bytes]  # page id -> file
    rendered: list[str]  # page ids, in the order the builder rendered them
    renamed: list[str]  # page ids, in the order their files were renamed into place


@pytest.fixture
def school(project_dir: Path) -> Iterator[tuple[Config, dict[str, dict[str, str]]]]:
    config = make_config(project_dir)
    open_project(config)
    import_document(two_class_school(PER_CLASS), "school.json", MarkRules())
    issued = credentials.issue_credentials(config, class_name=None, everyone=True, reporter=QUIET)
    assert issued.list_path is not None
    rows = _rows(issued.list_path)
    _print_extracts(config)
    yield config, rows
    close_database()


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8-sig") as handle:
        return {row["login"]: row for row in csv.DictReader(handle)}


def _print_extracts(config: Config) -> None:
    """A PDF of extracts for each class, as `otmetka print extracts` records it."""
    for class_id in ("c5a", "c5b"):
        pdf = config.paths.var_dir / f"{class_id}.pdf"
        pdf.parent.mkdir(parents=True, exist_ok=True)
        pdf.write_bytes(b"%PDF-1.7\n" + class_id.encode() * 500)
        with write_transaction():
            printing.record_batch(
                class_id=class_id,
                path=str(pdf),
                pdf_sha256=hashlib.sha256(pdf.read_bytes()).hexdigest(),
                extracts=PER_CLASS,
                pages=PER_CLASS,
                paper_only=False,
                period_id=None,
                at=dt.datetime(2026, 9, 15, 12, 0),
            )


def _build(config: Config, monkeypatch: pytest.MonkeyPatch, *, full: bool = False) -> Built:
    """Build once, recording the render order and every rename into output/p."""
    rendered: list[str] = []
    renamed: list[str] = []
    real_rendered, real_replace = build._rendered, os.replace

    def rendering(plan: build.Plan, options: build.BuildOptions) -> Iterator[Any]:
        for key, fragment in real_rendered(plan, options):
            rendered.append(plan.credentials[key].page_id)
            yield key, fragment

    def replace(source: Any, target: Any) -> None:
        path = Path(target)
        if path.parent.name == build.PAGES_DIR and not path.name.startswith("."):
            renamed.append(path.stem)
        real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(build, "_rendered", rendering)
        patch.setattr(publishing.os, "replace", replace)
        build.build_site(build_options(config, today=TODAY, full=full))
    pages_dir = config.site.output_dir / build.PAGES_DIR
    pages = {p.stem: p.read_bytes() for p in pages_dir.glob("*.html")}
    return Built(pages, rendered, renamed)


def _envelope(html: bytes) -> dict[str, Any]:
    found = ENVELOPE.search(html.decode("utf-8"))
    assert found is not None
    envelope: dict[str, Any] = json.loads(found.group(1))
    return envelope


def _shell_only(page_id: str, html: bytes) -> str:
    """The page with its envelope and its id taken out: what would tell pages apart."""
    return ENVELOPE.sub("", html.decode("utf-8")).replace(page_id, "")


def _padded(envelope: dict[str, Any]) -> int:
    return len(base64.b64decode(envelope["ct"])) - 16  # the GCM tag


def _files(output: Path) -> list[Path]:
    return [output, *output.rglob("*")]


# --- what each build shows ---------------------------------------------------------------------


def _check_times(output: Path) -> None:
    stamps = {p.relative_to(output).as_posix(): p.stat().st_mtime for p in _files(output)}
    assert set(stamps.values()) == {publishing.FIXED_MTIME}, stamps
    assert not [p for p in _files(output) if p.name.startswith(".")]  # nothing staged is left


def _check_pages_alike(built: Built) -> set[int]:
    """Every page has the same shell and a v2 envelope padded to a bucket; returns the sizes."""
    shells = {_shell_only(page_id, html) for page_id, html in built.pages.items()}
    assert len(shells) == 1
    sizes = set()
    for html in built.pages.values():
        envelope = _envelope(html)
        assert set(envelope) == {"v", "kdf", "iter", "salt", "hs", "iv", "ct"}
        assert envelope["v"] == 2 and envelope["iter"] == 100_000
        padded = _padded(envelope)
        assert crypto.padded_size(padded) == padded  # a bucket, not a page's own length
        sizes.add(len(html))
    assert len(sizes) == len({_padded(_envelope(h)) for h in built.pages.values()})
    return sizes


def _check_salts(output: Path, built: Built) -> None:
    salts = []
    for html in built.pages.values():
        envelope = _envelope(html)
        salts += [envelope["salt"], envelope["hs"]]
    sealed_files = sorted(output.glob("[fr]/*.bin"))
    assert len(sealed_files) == 2  # each class teacher's extracts
    for path in sealed_files:
        envelope = json.loads(path.read_bytes())
        assert set(envelope) == {"v", "kdf", "hs", "iv", "ct"}  # no PBKDF2 salt in a file
        assert crypto.padded_size(_padded(envelope)) == _padded(envelope)
        salts.append(envelope["hs"])
    assert len(salts) == len(set(salts)), "a salt is shared between files"


def _check_order(built: Built) -> None:
    written = set(built.renamed)
    in_class_order = [page_id for page_id in built.rendered if page_id in written]
    assert sorted(built.renamed) == sorted(in_class_order)
    assert len(built.renamed) == 2 * PER_CLASS * 2 + 2
    assert built.renamed != in_class_order


# --- the test ----------------------------------------------------------------------------------


def test_the_public_folder_tells_only_the_number_of_pages(
    school: tuple[Config, dict[str, dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, rows = school
    output = config.site.output_dir
    first = _build(config, monkeypatch)
    _check_times(output)
    sizes = _check_pages_alike(first)
    _check_salts(output, first)
    _check_order(first)

    guardian, leaked = _credential("guardian", "g-c5a-0"), _credential("student", "s-c5b-1")
    paper.register_consent(config, login=guardian.login, decision="granted", paper=True)
    paper.register_breach(config, login=leaked.login, received_at=dt.datetime.now(dt.UTC))
    second = _build(config, monkeypatch)
    _check_times(output)
    assert _check_pages_alike(second) <= sizes
    _check_salts(output, second)

    # The consented guardian's page now shows the journal, in the same bucket as the form.
    assert len(second.pages[guardian.page_id]) == len(first.pages[guardian.page_id])
    assert _opened(guardian, rows, second) != _opened(guardian, rows, first)
    # The leaked login's page is the notice: same shell, envelope and bucket as any page.
    blocked = second.pages[leaked.page_id]
    assert len(blocked) in {len(h) for k, h in second.pages.items() if k != leaked.page_id}
    notice = _opened(leaked, rows, second)
    assert "Доступ заблокирован" in notice and build.BLOCKED_MARK.decode() in notice
    assert build.BLOCKED_MARK not in blocked


def _credential(kind: str, person: str) -> models.Credential:
    c = models.Credential
    return c.get(c.person_kind == kind, c.person_id == person, c.state == "active")


def _opened(credential: models.Credential, rows: dict[str, dict[str, str]], built: Built) -> str:
    envelope = _envelope(built.pages[credential.page_id])
    password = rows[credential.login]["password"]
    key = crypto.derive_key(password, bytes(credential.salt), envelope["iter"])
    return crypto.decrypt_page(envelope, key, credential.page_id).decode("utf-8")


# --- the served site ---------------------------------------------------------------------------


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers.items()), error.read()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}  # waitress writes "Etag"


def _served(config: Config) -> dict[Path, tuple[dict[str, str], bytes]]:
    """Every file of the site as `otmetka serve` answers for it: headers and body."""
    output = config.site.output_dir
    with waitress_server(create_app(config)) as port:
        answers = {}
        for path in (p for p in output.rglob("*") if p.is_file()):
            status, headers, body = _get(f"http://127.0.0.1:{port}/{path.relative_to(output)}")
            assert status == 200 and body == path.read_bytes()
            answers[path] = (headers, body)
    return answers


def test_served_headers_carry_content_hashes_and_one_date(
    school: tuple[Config, dict[str, dict[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _rows = school
    output = config.site.output_dir
    built = _build(config, monkeypatch)
    before = _served(config)
    for headers, body in before.values():
        assert headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        assert headers["last-modified"] == FIXED_DATE
    page = output / build.PAGES_DIR / f"{next(iter(built.pages))}.html"
    with waitress_server(create_app(config)) as port:
        url = f"http://127.0.0.1:{port}/{page.relative_to(output)}"
        assert _get(url, **{"If-None-Match": before[page][0]["etag"]})[0] == 304
        # A date alone never answers 304: every file of the site has the same one.
        assert _get(url, **{"If-Modified-Since": FIXED_DATE})[0] == 200
        status, headers, _body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and headers["etag"] == before[output / "index.html"][0]["etag"]

    with write_transaction():  # forget the manifest: the next build rewrites every page
        models.BuildManifest.delete().execute()
    _build(config, monkeypatch, full=True)
    after = _served(config)
    assert after.keys() == before.keys()
    for path, (headers, body) in after.items():
        assert headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        changed = headers["etag"] != before[path][0]["etag"]
        assert changed == (path.parent.name == build.PAGES_DIR), path  # new iv, new ETag

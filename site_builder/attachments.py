"""PDFs attached to staff pages, encrypted like the pages: a class's latest extracts and
the latest analytics reports.

`otmetka print extracts` records each class PDF (otmetka.db.printing); `otmetka report class
7Б` and `otmetka report school` record each report (otmetka.db.analytics). On the next
build the class teacher's page links the class's extracts and latest report, the deputy
head's page the school's report, and the builder writes one sealed copy per reader: a v2
file envelope (crypto.seal_file: the PDF deflated, padded to a size bucket and sealed with
AES-256-GCM under a key derived from the reader's credential key and the file's own salt),
with the file id in the place of the page id in the associated data, so a file cannot be
passed off as another. Extracts go to
`output/f/<file id>.bin`, reports to `output/r/`: a folder each, because publishing removes
every file of a folder it did not write. In the browser, static/download.js fetches the
file, decrypts it with the key the reader's password already unlocked
(`OtmUnlock.openFile`) and saves the PDF.

A file id is a hash of the class (or the school) and the PDF's SHA-256, so the page can
name the file without any key, and a new print gets a new name. The files written, and
for which credential, are remembered in a setting per folder: a rotated login re-encrypts
the file once, an unchanged one costs nothing per build. Imports no WeasyPrint: the
builder uses this module on every build.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from otmetka.db import analytics, build_state, queries
from otmetka.db import printing as printed
from otmetka.db.models import Credential
from otmetka.db.row_types import PageKey
from otmetka.site_builder import crypto, static_files
from otmetka.site_builder.atomic import write_atomic

EXTRACTS_DIR = "f"
REPORTS_DIR = "r"
DOWNLOAD_SCRIPT = "download.js"
FILE_MARK = "data-otm-file"
SCHOOL = analytics.SCHOOL
# Settings: JSON {file id: page id of the key used}, one per folder.
_EXTRACTS_PUBLISHED = "printing.published_files"
_REPORTS_PUBLISHED = "reports.published_files"


# --- the download script ---------------------------------------------------------------------


@functools.cache
def download_script() -> str:
    return static_files.script(DOWNLOAD_SCRIPT)


@functools.cache
def script_version() -> str:
    """Written next to each link, so a changed download.js changes the page's hash."""
    return hashlib.sha256(download_script().encode()).hexdigest()[:12]


def connect_src(base: str, fragment: str) -> str:
    """The page's CSP connect-src, plus its own origin where it links a file to fetch
    (the .bin sits beside the page, on the school's server or a mirror)."""
    if FILE_MARK not in fragment:
        return base
    return "'self'" if base.strip() == "'none'" else f"{base} 'self'"


# --- what the pages link ---------------------------------------------------------------------


def extract_file_id(class_id: str, pdf_sha256: str) -> str:
    digest = hashlib.sha256(f"otmetka extracts file v1|{class_id}|{pdf_sha256}".encode())
    return digest.hexdigest()[:32]


def report_file_id(scope: str, pdf_sha256: str) -> str:
    digest = hashlib.sha256(f"otmetka report file v1|{scope}|{pdf_sha256}".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class AttachedPdf:
    """What a staff page says about a PDF it links (the template reads these names)."""

    folder: ClassVar[str]
    file_id: str
    file_name: str  # the name the browser saves it under
    path: Path
    pages: int
    printed_on: dt.date
    version: str = ""

    @property
    def href(self) -> str:
        return f"../{self.folder}/{self.file_id}.bin"  # relative to p/<page id>.html


@dataclass(frozen=True, kw_only=True)
class ClassFile(AttachedPdf):
    """A class's latest extracts PDF, linked from the class teacher's page."""

    folder: ClassVar[str] = EXTRACTS_DIR
    class_id: str
    extracts: int


@dataclass(frozen=True, kw_only=True)
class ReportFile(AttachedPdf):
    """An analytics PDF, linked from the pages of those who read it."""

    folder: ClassVar[str] = REPORTS_DIR
    scope: str  # class id or SCHOOL


class _Recorded(Protocol):
    """A PDF the database recorded: an extracts batch or an analytics report."""

    @property
    def path(self) -> str: ...
    @property
    def pdf_sha256(self) -> str: ...
    @property
    def pages(self) -> int: ...
    @property
    def created_at(self) -> dt.datetime: ...


_Row = TypeVar("_Row", bound=_Recorded)


def _on_disk(
    recorded: Mapping[str, _Row],
    titles: Mapping[str, str],
    word: str,
    file_id: Callable[[str, str], str],
) -> Iterator[tuple[str, _Row, dict[str, Any]]]:
    """(key, row, the link's common fields) of each recorded PDF whose key has a title and
    whose file is still on disk; the browser saves it as «<word> <title> <day>.pdf»."""
    for key, row in recorded.items():
        path = Path(row.path)
        if key not in titles or not path.is_file():
            continue
        day = row.created_at.date()
        link = {
            "file_id": file_id(key, row.pdf_sha256),
            "file_name": f"{word} {titles[key]} {day:%d.%m.%Y}.pdf",
            "path": path,
            "pages": row.pages,
            "printed_on": day,
            "version": script_version(),
        }
        yield key, row, link


def class_files(class_names: Mapping[str, str]) -> dict[str, ClassFile]:
    """Class id -> its latest extracts PDF that is still on disk."""
    found = _on_disk(printed.latest_batches(), class_names, "Выписки", extract_file_id)
    return {key: ClassFile(**link, class_id=key, extracts=row.extracts) for key, row, link in found}


def report_files(class_names: Mapping[str, str]) -> dict[str, ReportFile]:
    """Scope -> its latest analytics PDF that is still on disk."""
    titles = {**class_names, SCHOOL: "школа"}
    found = _on_disk(analytics.latest_reports(), titles, "Аналитика", report_file_id)
    return {key: ReportFile(**link, scope=key) for key, _, link in found}


def for_reader(report: ReportFile, teacher_id: str) -> ReportFile:
    """Two deputies read the same school report, each under their own key: a file each."""
    if report.scope != SCHOOL:
        return report
    scope = f"{SCHOOL}|{teacher_id}"
    return dataclasses.replace(report, file_id=report_file_id(scope, report.file_id))


# --- publishing ------------------------------------------------------------------------------


def publish(output_dir: Path, credentials: Mapping[PageKey, Credential]) -> int:
    """Write each reader's encrypted copy of the latest extracts and reports; delete copies
    nobody links any more. Returns how many files were written."""
    extracts = _sync(output_dir / EXTRACTS_DIR, _extracts_wanted(credentials), _EXTRACTS_PUBLISHED)
    reports = _sync(output_dir / REPORTS_DIR, _reports_wanted(credentials), _REPORTS_PUBLISHED)
    return extracts + reports


def _extracts_wanted(
    credentials: Mapping[PageKey, Credential],
) -> dict[str, tuple[ClassFile, Credential]]:
    """File id -> (file, the class teacher's credential), for teachers with a page."""
    classes = queries.class_units()
    files = class_files({c.id: c.name for c in classes})
    wanted = {}
    for cls in classes:
        found = files.get(cls.id)
        credential = credentials.get(("teacher", cls.class_teacher_id or ""))
        if found is not None and credential is not None:
            wanted[found.file_id] = (found, credential)
    return wanted


def _reports_wanted(
    credentials: Mapping[PageKey, Credential],
) -> dict[str, tuple[ReportFile, Credential]]:
    """File id -> (a reader's copy of a report, the reader's credential)."""
    files = report_files({c.id: c.name for c in queries.class_units()})
    wanted: dict[str, tuple[ReportFile, Credential]] = {}
    for scope, readers in _report_readers(credentials).items():
        if scope in files:
            for credential in readers:
                mine = for_reader(files[scope], str(credential.person_id))
                wanted[mine.file_id] = (mine, credential)
    return wanted


def _report_readers(credentials: Mapping[PageKey, Credential]) -> dict[str, list[Credential]]:
    """Scope -> credentials of those who read its report: the class teacher of a class,
    the deputy heads for the school."""
    readers: dict[str, list[Credential]] = {}
    for cls in queries.class_units():
        credential = credentials.get(("teacher", cls.class_teacher_id or ""))
        if credential is not None:
            readers.setdefault(cls.id, []).append(credential)
    for teacher in queries.teachers():
        credential = credentials.get(("teacher", teacher.id))
        if "deputy_head" in teacher.roles and credential is not None:
            readers.setdefault(SCHOOL, []).append(credential)
    return readers


def _sealed(pdf: bytes, credential: Credential, fid: str) -> bytes:
    """A v2 file envelope under the reader's credential key: its own HKDF salt and iv, no
    PBKDF2 salt (nothing ties it to its reader's page), padded to a size bucket."""
    envelope = crypto.seal_file(pdf, bytes(credential.derived_key), fid)
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode("ascii")


def _sync(
    folder: Path, wanted: Mapping[str, tuple[AttachedPdf, Credential]], setting_key: str
) -> int:
    """Make `folder` hold exactly the sealed files in `wanted` (file id -> (file, reader's
    credential)); a file is rewritten only when it is missing or its reader's page
    changed. Returns how many files were written."""
    done = json.loads(build_state.get_setting(setting_key) or "{}")
    written = 0
    for fid, (found, credential) in wanted.items():
        target = folder / f"{fid}.bin"
        if done.get(fid) == credential.page_id and target.exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(target, _sealed(found.path.read_bytes(), credential, fid))
        written += 1
    if folder.is_dir():
        for stale in folder.glob("*.bin"):
            if stale.stem not in wanted:
                stale.unlink()
    now = {fid: credential.page_id for fid, (_found, credential) in wanted.items()}
    if now != done:  # most builds change nothing here, and then write nothing
        build_state.put_setting(setting_key, json.dumps(now, sort_keys=True))
    return written

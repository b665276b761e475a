"""The latest analytics PDFs on the staff pages, encrypted like the pages.

`otmetka report class 7Б` and `otmetka report school` record each PDF they write
(otmetka.db.analytics). On the next build the class teacher's page links the class's latest report
and the deputy head's page the school's, and the builder writes `output/r/<file id>.bin`
for each reader: the same envelope and the same download script as the class's extracts
(site_builder/attachments.py, static/download.js), sealed with the reader's page key and the
file id as associated data. A folder of its own, because the extracts' publisher removes
every file of its folder it did not write.

Imports no WeasyPrint: the builder uses it on every build.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from otmetka.db import analytics
from otmetka.db import queries as q
from otmetka.db.models import Credential
from otmetka.site_builder import attachments as extract_files
from otmetka.site_builder import crypto

FILES_DIR = "r"
SCHOOL = analytics.SCHOOL
_PUBLISHED = "reports.published_files"  # setting: JSON {file id: page id of the key used}

PageKey = tuple[str, str]


def file_id(scope: str, pdf_sha256: str) -> str:
    digest = hashlib.sha256(f"otmetka report file v1|{scope}|{pdf_sha256}".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class ReportFile:
    """What a staff page says about an analytics PDF (the names the template reads are
    those of the extracts' link)."""

    scope: str  # class id or SCHOOL
    file_id: str
    file_name: str
    path: Path
    pages: int
    printed_on: dt.date
    version: str

    @property
    def href(self) -> str:
        return f"../{FILES_DIR}/{self.file_id}.bin"  # relative to p/<page id>.html


def report_files(class_names: Mapping[str, str]) -> dict[str, ReportFile]:
    """Scope -> its latest analytics PDF that is still on disk."""
    found = {}
    for scope, row in analytics.latest_reports().items():
        path = Path(row.path)
        if (scope != SCHOOL and scope not in class_names) or not path.is_file():
            continue
        day = row.created_at.date()
        what = "школа" if scope == SCHOOL else class_names[scope]
        name = f"Аналитика {what} {day:%d.%m.%Y}.pdf"
        found[scope] = ReportFile(
            scope,
            file_id(scope, row.pdf_sha256),
            name,
            path,
            row.pages,
            day,
            extract_files.script_version(),
        )
    return found


def _readers(credentials: Mapping[PageKey, Credential]) -> dict[str, list[Credential]]:
    """Scope -> credentials of those who read its report: the class teacher of a class,
    the deputy heads for the school."""
    readers: dict[str, list[Credential]] = {}
    for cls in q.class_units():
        credential = credentials.get(("teacher", cls.class_teacher_id or ""))
        if credential is not None:
            readers.setdefault(cls.id, []).append(credential)
    for teacher in q.teachers():
        credential = credentials.get(("teacher", teacher.id))
        if "deputy_head" in teacher.roles and credential is not None:
            readers.setdefault(SCHOOL, []).append(credential)
    return readers


def _sealed(pdf: bytes, credential: Credential, fid: str) -> bytes:
    envelope = crypto.encrypt_page(
        pdf, bytes(credential.derived_key), bytes(credential.salt), fid, credential.kdf_iterations
    )
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode("ascii")


def for_reader(report: ReportFile, teacher_id: str) -> ReportFile:
    """Two deputies read the same school report, each under their own key: a file each."""
    if report.scope != SCHOOL:
        return report
    return dataclasses.replace(report, file_id=file_id(f"{SCHOOL}|{teacher_id}", report.file_id))


def publish(output_dir: Path, credentials: Mapping[PageKey, Credential]) -> int:
    """Write each reader's encrypted copy of the latest reports; delete copies nobody
    links any more. Returns how many files were written."""
    folder = output_dir / FILES_DIR
    files = report_files({c.id: c.name for c in q.class_units()})
    wanted: dict[str, tuple[ReportFile, Credential]] = {}
    for scope, readers in _readers(credentials).items():
        if scope in files:
            for credential in readers:
                mine = for_reader(files[scope], str(credential.person_id))
                wanted[mine.file_id] = (mine, credential)
    return extract_files.sync_sealed_files(folder, wanted, _PUBLISHED, _sealed)

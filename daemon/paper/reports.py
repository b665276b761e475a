"""`otmetka report class 7Б` and `otmetka report school`: analytics PDFs.

The PDFs are written owner-only (they hold marks and names) under
`paths.var_dir/reports/<date>/` unless `--out` says otherwise, recorded (otmetka.db.analytics), and
their readers' pages marked for a rebuild: the next build links a class's latest report
from its class teacher's page and the school's from the deputy heads' pages, encrypted for
each reader (otmetka.site_builder.attachments). `report school` also writes and records every
class's report, so each class teacher gets theirs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.private import PRIVATE_FILE, new_private_dirs
from otmetka.daemon.core.settings import today_in
from otmetka.daemon.lists.export import safe_name
from otmetka.daemon.lists.layout import find_class
from otmetka.db import acts as events
from otmetka.db import analytics, queries, write_transaction
from otmetka.site_builder.atomic import write_atomic
from otmetka.site_builder.pdf import reports as site_reports

ProgressBar = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


def _no_bar(_label: str, _total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda _n: None)


@dataclass
class ReportResult:
    files: list[Path] = field(default_factory=list)
    classes: int = 0
    pages: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        where = self.files[-1] if self.files else "nothing written"
        return (
            f"wrote {len(self.files)} analytics PDFs ({self.classes} classes, {self.pages} pages)"
            f" in {self.seconds:.1f} s: {where} (owner-only; the staff pages link them after "
            "the next build)"
        )


def _write_private(path: Path, data: bytes) -> None:
    new_private_dirs(path.parent)
    write_atomic(path, data, mode=PRIVATE_FILE)


def _target(out: Path | None, default: Path) -> Path:
    if out is None:
        return default
    if out.is_dir():
        return out / default.name
    if out.suffix.lower() != ".pdf":
        raise OtmetkaError(f"--out {out}: give a file name ending in .pdf, or a folder")
    return out


def _record(scope: str, path: Path, pdf: site_reports.Pdf, readers: list[str]) -> None:
    digest = hashlib.sha256(pdf.data).hexdigest()
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with write_transaction():
        analytics.record_report(scope, str(path.resolve()), digest, pdf.pages, at)
        for teacher_id in readers:
            events.mark_dirty("teacher", teacher_id)


def _folder(config: Config, today: dt.date) -> Path:
    return config.paths.var_dir / "reports" / today.isoformat()


def report_class(
    config: Config, *, class_name: str | None, out: Path | None, today: dt.date | None = None
) -> ReportResult:
    """Write one class's analytics PDF (as of `today`, by default the school's today)."""
    if not class_name:
        raise OtmetkaError("say which class: otmetka report class 7Б")
    started = time.monotonic()
    today = today or today_in(config)
    row = find_class(class_name)
    school = site_reports.School.load(today, config.school.name)
    _report, pdf = site_reports.class_pdf(school, row.id)
    path = _target(out, _folder(config, today) / f"{safe_name(row.name)}.pdf")
    _write_private(path, pdf.data)
    _record(row.id, path, pdf, [row.class_teacher_id] if row.class_teacher_id else [])
    return ReportResult([path], 1, pdf.pages, time.monotonic() - started)


def report_school(
    config: Config,
    *,
    out: Path | None,
    bar: ProgressBar = _no_bar,
    today: dt.date | None = None,
) -> ReportResult:
    """Write every class's analytics PDF and the school's (overview + every class)."""
    started = time.monotonic()
    today = today or today_in(config)
    school = site_reports.School.load(today, config.school.name)
    if not school.lookup.classes:
        raise OtmetkaError("no classes yet: import the journal first (otmetka sync)")
    folder = _folder(config, today)
    result = ReportResult()
    with bar("report", len(school.lookup.classes)) as advance:

        def store(report: site_reports.ClassReport, pdf: site_reports.Pdf) -> None:
            row = school.lookup.classes[report.class_id]
            path = folder / f"{safe_name(row.name)}.pdf"
            _write_private(path, pdf.data)
            _record(row.id, path, pdf, [row.class_teacher_id] if row.class_teacher_id else [])
            result.files.append(path)
            result.classes += 1
            advance(1)

        whole = site_reports.school_pdf(school, config.printing.workers, store)
    path = _target(out, folder / "school.pdf")
    _write_private(path, whole.data)
    deputies = [t.id for t in queries.teachers() if "deputy_head" in t.roles]
    _record(analytics.SCHOOL, path, whole, deputies)
    result.files.append(path)
    result.pages = whole.pages
    result.seconds = time.monotonic() - started
    return result

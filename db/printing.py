"""What was printed: extracts (with the codes of their tear-off slips), class PDFs of
extracts, and credential slips. Only this module knows those tables.

An extract's code is what staff type into `otmetka ack register` when a signed slip comes
back; `extract_by_code` gives the acknowledgement everything it records: for whom the
extract was, which students it showed, which version (content hash) and when.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass

from otmetka.db import models
from otmetka.db.connection import batches, chunks
from otmetka.db.row_types import PageKey

# Cyrillic capitals that look like Latin ones: a code typed on a Russian layout still
# matches (otmetka.site_builder.crypto maps passwords the same way).
_LOOKALIKES = str.maketrans("АВЕКМНОРСТХУ", "ABEKMHOPCTXY")


def normalise_code(code: str) -> str:
    """«k7mp 2x4q», «K7MP-2X4Q» and «К7МР2Х4Q» (Cyrillic) are all the code K7MP2X4Q."""
    folded = code.upper().translate(_LOOKALIKES)
    return "".join(ch for ch in folded if ch.isascii() and ch.isalnum())


# --- extracts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractRecord:
    """A printed extract, as an acknowledgement needs it."""

    code: str
    student_ids: tuple[str, ...]
    guardian_ids: tuple[str, ...]
    class_unit_id: str
    period_id: str | None
    week_start: dt.date
    as_of: dt.date
    content_hash: str
    issued_at: dt.datetime
    printed_at: dt.datetime


@dataclass(frozen=True)
class NewExtract:
    code: str
    student_id: str
    class_unit_id: str
    guardian_ids: tuple[str, ...]
    period_id: str | None
    week_start: dt.date
    as_of: dt.date
    content_hash: str


def _record(row: models.ExtractIssue) -> ExtractRecord:
    return ExtractRecord(
        code=row.code,
        student_ids=(row.student_id,),
        guardian_ids=tuple(json.loads(row.guardian_ids)),
        class_unit_id=row.class_unit_id,
        period_id=row.period_id,
        week_start=row.week_start,
        as_of=row.as_of,
        content_hash=row.content_hash,
        issued_at=row.issued_at,
        printed_at=row.printed_at,
    )


def extract_by_code(code: str) -> ExtractRecord | None:
    """The extract whose tear-off slip carries `code` (as typed: case, spaces, dashes and
    Cyrillic look-alikes do not matter), or None."""
    e = models.ExtractIssue
    row = e.get_or_none(e.code == normalise_code(code))
    return _record(row) if row else None


def codes_in_use(codes: Iterable[str]) -> dict[str, tuple[str, str]]:
    """code -> (student id, content hash) for those of `codes` already recorded."""
    e = models.ExtractIssue
    found: dict[str, tuple[str, str]] = {}
    for chunk in chunks(codes):
        query = e.select(e.code, e.student_id, e.content_hash).where(e.code.in_(chunk))
        found.update({row.code: (row.student_id, row.content_hash) for row in query})
    return found


def record_extracts(extracts: Iterable[NewExtract], at: dt.datetime) -> None:
    """Record printed extracts; printing the same extract (same code) again counts a print.

    Call inside `write_transaction()` together with `record_batch`.
    """
    e = models.ExtractIssue
    for item in extracts:
        updated = (
            e.update(printed_at=at, prints=e.prints + 1)
            .where(e.code == item.code, e.content_hash == item.content_hash)
            .execute()
        )
        if not updated:
            e.create(
                code=item.code,
                student_id=item.student_id,
                class_unit_id=item.class_unit_id,
                guardian_ids=json.dumps(list(item.guardian_ids)),
                period_id=item.period_id,
                week_start=item.week_start,
                as_of=item.as_of,
                content_hash=item.content_hash,
                issued_at=at,
                printed_at=at,
            )


def extracts_of_class(class_id: str) -> dict[str, ExtractRecord]:
    """Student id -> the extract last printed for them in this class."""
    e = models.ExtractIssue
    rows = e.select().where(e.class_unit_id == class_id).order_by(e.printed_at, e.id)
    return {row.student_id: _record(row) for row in rows}


# --- class PDFs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRow:
    class_unit_id: str
    path: str
    pdf_sha256: str
    extracts: int
    pages: int
    paper_only: bool
    created_at: dt.datetime


def record_batch(
    *,
    class_id: str,
    path: str,
    pdf_sha256: str,
    extracts: int,
    pages: int,
    paper_only: bool,
    period_id: str | None,
    at: dt.datetime,
) -> None:
    models.ExtractBatch.create(
        class_unit_id=class_id,
        path=path,
        pdf_sha256=pdf_sha256,
        extracts=extracts,
        pages=pages,
        paper_only=paper_only,
        period_id=period_id,
        created_at=at,
    )


def latest_batches() -> dict[str, BatchRow]:
    """Class id -> its most recent PDF of extracts."""
    b = models.ExtractBatch
    latest: dict[str, BatchRow] = {}
    for row in b.select().order_by(b.created_at, b.id):
        latest[row.class_unit_id] = BatchRow(
            row.class_unit_id,
            row.path,
            row.pdf_sha256,
            row.extracts,
            row.pages,
            bool(row.paper_only),
            row.created_at,
        )
    return latest


# --- credential slips -----------------------------------------------------------------------


@dataclass(frozen=True)
class SlipRow:
    login: str
    key: PageKey
    with_password: bool


def record_slips(slips: Iterable[SlipRow], at: dt.datetime) -> None:
    rows = [
        {
            "login": s.login,
            "person_kind": s.key[0],
            "person_id": s.key[1],
            "with_password": s.with_password,
            "printed_at": at,
        }
        for s in slips
    ]
    for batch in batches(rows):
        models.CredentialSlip.insert_many(batch).execute()


def logins_with_password_slip(logins: Iterable[str]) -> set[str]:
    """Those of `logins` whose password was printed on a slip (at issue or later)."""
    s = models.CredentialSlip
    found: set[str] = set()
    for chunk in chunks(logins):
        query = s.select(s.login).where(
            s.login.in_(chunk),
            s.with_password == True,  # noqa: E712
        )
        found.update(row.login for row in query)
    return found


def people_without_slips(people: Iterable[PageKey]) -> set[PageKey]:
    """Those of `people` who have not been given credentials: no active login, or an active
    login whose password was never printed on a slip. For the class teacher's list."""
    wanted = set(people)
    c = models.Credential
    active = {
        (row.person_kind, row.person_id): row.login
        for row in c.select(c.person_kind, c.person_id, c.login).where(c.state == "active")
        if (row.person_kind, row.person_id) in wanted
    }
    printed = logins_with_password_slip(active.values())
    return {key for key in wanted if active.get(key) not in printed}

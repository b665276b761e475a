"""Reading a OneRoster 1.1 / 1.2 CSV bundle (a folder or a .zip) into rows, tolerantly.

Spreadsheets exported on Windows differ in small ways that must not stop a school: the
encoding (UTF-8, UTF-8 with BOM, or Windows-1251), the delimiter (`,` or Excel's `;` in a
Russian locale, or tab), the case and spacing of headers (`Sourced Id`, `SOURCEDID`,
`sourced_id`). Every row keeps its file and spreadsheet row number (the header is row 1)
so a message can say exactly where a problem is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

from otmetka.daemon.exchange import files
from otmetka.daemon.exchange.reader import BatchError

# Files of the bundle this adapter reads (lower-case name -> canonical name).
FILES = {
    name.lower(): name
    for name in (
        "manifest.csv",
        "orgs.csv",
        "academicSessions.csv",
        "courses.csv",
        "classes.csv",
        "users.csv",
        "roles.csv",
        "enrollments.csv",
        "categories.csv",
        "lineItems.csv",
        "results.csv",
    )
}

_COLUMN_WORDS = (
    "sourcedId status dateLastModified name type identifier parentSourcedId title startDate "
    "endDate schoolYear courseCode grades orgSourcedId subjects classCode classType location "
    "courseSourcedId schoolSourcedId termSourcedIds enabledUser orgSourcedIds role roles "
    "username userIds givenName familyName middleName email sms phone agentSourcedIds password "
    "userSourcedId roleType beginDate endDate primary classSourcedId categorySourcedId "
    "gradingPeriodSourcedId academicSessionSourcedId assignDate dueDate description "
    "resultValueMin resultValueMax lineItemSourcedId studentSourcedId scoreStatus score "
    "textScore scoreDate comment weight propertyName value preferredGivenName "
    "preferredFamilyName preferredMiddleName primaryOrgSourcedId userMasterIdentifier"
)
COLUMNS = _COLUMN_WORDS.split()

REQUIRED = {
    "orgs.csv": ("sourcedId", "name", "type"),
    "academicSessions.csv": ("sourcedId", "title", "type", "startDate", "endDate"),
    "courses.csv": ("sourcedId", "title"),
    "classes.csv": ("sourcedId", "title", "classType"),
    "users.csv": ("sourcedId", "givenName", "familyName"),
    "roles.csv": ("userSourcedId", "role"),
    "enrollments.csv": ("sourcedId", "classSourcedId", "userSourcedId", "role"),
    "categories.csv": ("sourcedId", "title"),
    "lineItems.csv": ("sourcedId", "title", "classSourcedId"),
    "results.csv": ("sourcedId", "lineItemSourcedId", "studentSourcedId"),
    "manifest.csv": ("propertyName", "value"),
}


def _squash(header: str) -> str:
    return re.sub(r"[\s_\-.]", "", header.replace("\ufeff", "")).lower()


_CANONICAL = {_squash(name): name for name in COLUMNS}


@dataclass
class Row:
    file: str
    number: int  # spreadsheet row: the header is row 1
    values: dict[str, str]

    def get(self, column: str) -> str:
        return self.values.get(column, "")

    def ids(self, column: str) -> list[str]:
        """A comma-separated list of ids, as OneRoster writes them."""
        return [part.strip() for part in self.get(column).split(",") if part.strip()]

    @property
    def sourced_id(self) -> str:
        return self.get("sourcedId")

    @property
    def deleted(self) -> bool:
        return self.get("status").replace(" ", "").lower() == "tobedeleted"

    def where(self, column: str | None = None) -> str:
        place = f"{self.file} row {self.number}"
        if self.sourced_id:
            place += f" (sourcedId '{self.sourced_id}')"
        return f"{place}, column '{column}'" if column else place


@dataclass
class Bundle:
    origin: str
    stamp: dt.datetime  # when the bundle was made: the time of rows without dateLastModified
    tables: dict[str, list[Row]] = field(default_factory=dict)
    manifest: dict[str, str] = field(default_factory=dict)

    def rows(self, name: str) -> list[Row]:
        return self.tables.get(name, [])

    @property
    def version(self) -> str:
        return self.manifest.get(
            "oneroster.version", "1.2" if "roles.csv" in self.tables else "1.1"
        )

    @property
    def delta(self) -> bool:
        modes = {v.lower() for k, v in self.manifest.items() if k.startswith("file.")}
        return "delta" in modes


# --- decoding -----------------------------------------------------------------------------


def decode(data: bytes, origin: str) -> str:
    """UTF-8 (with or without BOM), else Windows-1251, as Excel on Russian Windows saves."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1251")
        except UnicodeDecodeError as error:
            raise BatchError(
                origin,
                [
                    f"{origin}: byte {error.start} is neither UTF-8 nor Windows-1251; "
                    "save the file as CSV UTF-8"
                ],
            ) from None
    return unicodedata.normalize("NFC", text)


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=first.count)


def parse_csv(data: bytes, name: str, origin: str) -> tuple[list[str], list[Row]]:
    text = decode(data, f"{origin}: {name}")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        header = next(reader, [])
        columns = [_CANONICAL.get(_squash(cell), cell.strip()) for cell in header]
        rows = []
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # blank lines that spreadsheets leave at the end
            values = {col: cell.strip() for col, cell in zip(columns, cells, strict=False)}
            rows.append(Row(name, number, values))
    except csv.Error as error:
        raise BatchError(
            origin, [f"{origin}: {name} row {reader.line_num}: broken CSV ({error})"]
        ) from None
    return columns, rows


# --- reading a bundle -----------------------------------------------------------------------


def _missing_columns(name: str, columns: list[str], origin: str) -> list[str]:
    required = REQUIRED.get(name, ())
    return [
        f"{origin}: {name} row 1: column '{column}' is missing; the header must name it "
        "(OneRoster spelling, any case)"
        for column in required
        if column not in columns
    ]


def _add(bundle: Bundle, name: str, data: bytes, problems: list[str]) -> None:
    canonical = FILES.get(name.lower())
    if canonical is None:
        return  # demographics.csv, resources.csv and the like carry nothing we show
    if canonical in bundle.tables:
        problems.append(f"{bundle.origin}: {canonical} appears twice in the bundle; keep one")
        return
    columns, rows = parse_csv(data, canonical, bundle.origin)
    problems.extend(_missing_columns(canonical, columns, bundle.origin))
    bundle.tables[canonical] = rows
    if canonical == "manifest.csv":
        bundle.manifest = {r.get("propertyName").lower(): r.get("value") for r in rows}


def _finish(bundle: Bundle, problems: list[str]) -> Bundle:
    if not any(name != "manifest.csv" for name in bundle.tables):
        problems.append(
            f"{bundle.origin}: no OneRoster files found (orgs.csv, users.csv, classes.csv, "
            "enrollments.csv, …); is this a OneRoster CSV export?"
        )
    if problems:
        raise BatchError(bundle.origin, problems)
    return bundle


def read_folder(path: Path, tz: ZoneInfo) -> Bundle:
    found = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    newest = max((p.stat().st_mtime for p in found), default=0.0)
    bundle = Bundle(path.name, dt.datetime.fromtimestamp(newest, dt.UTC).astimezone(tz))
    problems: list[str] = []
    for file in found:
        _add(bundle, file.name, file.read_bytes(), problems)
    return _finish(bundle, problems)


def read_zip(path: Path, tz: ZoneInfo) -> Bundle:
    with files.open_zip(path) as archive:
        members = files.zip_members(archive)
        newest = max((m.date_time for m in members), default=(1980, 1, 1, 0, 0, 0))
        bundle = Bundle(path.name, dt.datetime(*newest, tzinfo=tz))
        problems: list[str] = []
        for info in members:
            _add(bundle, PurePosixPath(info.filename).name, archive.read(info), problems)
    return _finish(bundle, problems)


def read_bundle(path: Path, tz: ZoneInfo) -> Bundle:
    return read_folder(path, tz) if path.is_dir() else read_zip(path, tz)


def is_bundle_zip(path: Path) -> bool:
    """A zip holding CSV files is a OneRoster bundle; one holding JSON is exchange files."""
    with files.open_zip(path) as archive:
        return any(m.filename.lower().endswith(".csv") for m in files.zip_members(archive))

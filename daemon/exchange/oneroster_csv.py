"""Reading a OneRoster 1.1 / 1.2 CSV bundle (a folder or a .zip) into rows, tolerantly.

Spreadsheets exported on Windows differ in small ways that must not stop a school: the
encoding (UTF-8, UTF-8 with BOM, or Windows-1251), the delimiter (`,` or Excel's `;` in a
Russian locale, or tab), the case and spacing of headers (`Sourced Id`, `SOURCEDID`,
`sourced_id`). Every row keeps its file and spreadsheet row number (the header is row 1)
so a message can say exactly where a problem is.

Files are read as streams through byte caps (`capped`): the unpacked size of one file and of
the bundle, and for a zip the packing ratio, so a bomb stops at its first bytes over a cap.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO
from zoneinfo import ZoneInfo

from otmetka.daemon.exchange import capped, files
from otmetka.daemon.exchange.reader import BatchError

MB = 1024**2
# A year of marks of a school of 2000 is a results.csv of about 80 MB, and every row of a
# bundle is held in memory while it is mapped (about ten times its CSV size): room for a
# school three times that size, and a bound on the memory a bundle may take.
CAPS = capped.Caps(member=256 * MB, total=512 * MB)

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
    "preferredFamilyName preferredMiddleName primaryOrgSourcedId userMasterIdentifier "
    # Read by nobody here, but OneRoster's own (1.1 and 1.2): ignored without a note.
    "schoolYearSourcedId subjectCodes periods resourceSourcedIds pronouns "
    "userProfileSourcedId profileType vendorId applicationId credentialType "
    "scoreScaleSourcedId learningObjectiveSetSourcedId inProgress incomplete late missing "
    "schoolSourcedIds classSourcedIds"
)
COLUMNS = _COLUMN_WORDS.split()

# Other spellings of a column, seen in real exports (1.2 drafts, REST field names, SIS
# exports): the alias is read as the OneRoster column.
ALIASES = {
    "preferredFirstName": "preferredGivenName",
    "preferredLastName": "preferredFamilyName",
    "firstName": "givenName",
    "lastName": "familyName",
    "grade": "grades",
    "gradeLevel": "grades",
    "gradeLevels": "grades",
    "sourceId": "sourcedId",
}

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


_CANONICAL = {_squash(name): name for name in COLUMNS} | {
    _squash(alias): name for alias, name in ALIASES.items()
}
_KNOWN = set(COLUMNS)


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

_CHUNK = 1024 * 1024


def encoding_of(stream: capped.Readable, origin: str) -> str:
    """UTF-8 (with or without BOM), else Windows-1251, as Excel on Russian Windows saves;
    one pass over the stream, a chunk at a time."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8, not_cp1251, offset = True, -1, 0
    while chunk := stream.read(_CHUNK):
        if is_utf8:
            try:
                utf8.decode(chunk)
            except UnicodeDecodeError:
                is_utf8 = False
        if not_cp1251 < 0:
            try:
                chunk.decode("cp1251")
            except UnicodeDecodeError as error:
                not_cp1251 = offset + error.start
        offset += len(chunk)
    if is_utf8:
        try:
            utf8.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            pass
    if not_cp1251 < 0:
        return "cp1251"
    raise BatchError(
        origin,
        [
            f"{origin}: byte {not_cp1251} is neither UTF-8 nor Windows-1251; "
            "save the file as CSV UTF-8"
        ],
    )


def _delimiter(first_line: str) -> str:
    return max((",", ";", "\t"), key=first_line.count)


def _nfc(lines: Iterable[str]) -> Iterator[str]:
    # A line ends in a newline, which never combines: each line normalises on its own.
    for line in lines:
        yield line if unicodedata.is_normalized("NFC", line) else unicodedata.normalize("NFC", line)


def parse_csv(
    stream: io.RawIOBase, encoding: str, name: str, origin: str
) -> tuple[list[str], list[Row]]:
    """The rows of one CSV file, read from `stream` a line at a time."""
    text = io.TextIOWrapper(io.BufferedReader(stream), encoding=encoding, newline="")
    lines = _nfc(text)
    first = next(lines, "")
    reader = csv.reader(itertools.chain([first], lines), delimiter=_delimiter(first))
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


def unread_columns(rows: list[Row]) -> list[str]:
    """Columns of a file that are no OneRoster column (`metadata.*`, a vendor's own):
    ignored, and named in a note of the import summary."""
    seen: dict[str, None] = {}
    for row in rows[:50]:  # every row has the header's columns; a short row lacks some
        seen.update(dict.fromkeys(row.values))
    return [column for column in seen if column and column not in _KNOWN]


def unread_files(path: Path) -> list[str]:
    """Files of a bundle that are no OneRoster file this adapter reads (demographics.csv,
    resources.csv, a read-me): ignored, and named in a note of the import summary."""
    if path.is_dir():
        names = [
            p.relative_to(path).as_posix()
            for p in sorted(path.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        ]
    else:
        with files.open_zip(path) as archive:
            names = [m.filename for m in files.zip_members(archive)]
    return [name for name in names if _canonical(name) is None]


@dataclass
class _Source:
    """One file of a bundle to read: a file of the folder or a member of the zip."""

    name: str  # canonical OneRoster name
    label: str  # as the folder or archive names it
    packed: int  # bytes on disk or in the archive
    open: Callable[[], IO[bytes]]


def _read(source: _Source, budget: capped.Budget) -> tuple[list[str], list[Row]]:
    """Two passes over the file, each through the caps: its encoding, then its rows."""
    origin = f"{budget.origin}: {source.name}"
    try:
        with source.open() as raw:
            encoding = encoding_of(budget.counted(raw, source.label, source.packed), origin)
        once = capped.Budget(budget.origin, CAPS, budget.packed_size)
        with source.open() as raw:
            counted = once.counted(raw, source.label, source.packed)
            return parse_csv(counted, encoding, source.name, budget.origin)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        detail = str(error) or "the archive ends inside it"
        raise BatchError(
            budget.origin, [f"{origin}: damaged or unreadable ({detail}); copy it again"]
        ) from None


def _add(bundle: Bundle, source: _Source, budget: capped.Budget, problems: list[str]) -> None:
    if source.name in bundle.tables:
        problems.append(f"{bundle.origin}: {source.name} appears twice in the bundle; keep one")
        return
    columns, rows = _read(source, budget)
    problems.extend(_missing_columns(source.name, columns, bundle.origin))
    bundle.tables[source.name] = rows
    if source.name == "manifest.csv":
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


def _canonical(path: str) -> str | None:
    # demographics.csv, resources.csv and the like carry nothing we show: never read
    return FILES.get(PurePosixPath(path).name.lower())


def _fill(bundle: Bundle, sources: list[_Source], budget: capped.Budget) -> Bundle:
    problems: list[str] = []
    try:
        for source in sources:
            _add(bundle, source, budget, problems)
    except capped.TooLarge as error:
        raise BatchError(error.origin, [str(error)]) from None
    return _finish(bundle, problems)


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    def opened() -> IO[bytes]:
        return path.open("rb")

    return opened


def read_folder(path: Path, tz: ZoneInfo) -> Bundle:
    found = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    newest = max((p.stat().st_mtime for p in found), default=0.0)
    bundle = Bundle(path.name, dt.datetime.fromtimestamp(newest, dt.UTC).astimezone(tz))
    sources = [
        _Source(name, p.relative_to(path).as_posix(), p.stat().st_size, _opener(p))
        for p in found
        if (name := _canonical(p.name))
    ]
    budget = capped.Budget(path.name, CAPS, sum(s.packed for s in sources))
    return _fill(bundle, sources, budget)


def read_zip(path: Path, tz: ZoneInfo) -> Bundle:
    with files.open_zip(path) as archive:
        members = files.zip_members(archive)
        newest = max((m.date_time for m in members), default=(1980, 1, 1, 0, 0, 0))
        bundle = Bundle(path.name, dt.datetime(*newest, tzinfo=tz))
        ours = [m for m in members if _canonical(m.filename)]
        budget = capped.Budget(path.name, CAPS, path.stat().st_size)
        try:
            budget.check_declared(ours)
        except capped.TooLarge as error:
            raise BatchError(error.origin, [str(error)]) from None
        sources = [
            _Source(
                FILES[PurePosixPath(m.filename).name.lower()],
                m.filename,
                m.compress_size,
                partial(archive.open, m),
            )
            for m in ours
        ]
        return _fill(bundle, sources, budget)


def read_bundle(path: Path, tz: ZoneInfo) -> Bundle:
    return read_folder(path, tz) if path.is_dir() else read_zip(path, tz)


def is_bundle_zip(path: Path) -> bool:
    """A zip holding CSV files is a OneRoster bundle; one holding JSON is exchange files."""
    with files.open_zip(path) as archive:
        return any(m.filename.lower().endswith(".csv") for m in files.zip_members(archive))

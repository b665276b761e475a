"""OneRoster 1.1 and 1.2 CSV bundles: the mapping to the journal, header and encoding quirks,
bulk and delta, and errors that name the CSV file, row and column with nothing applied."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import oneroster, oneroster_document
from otmetka.daemon.exchange.inbox import Inbox
from otmetka.daemon.exchange.reader import BatchError
from otmetka.db import close_database, models
from tests.support.sync_support import journal_dump

T = "2026-08-25T10:00:00.000Z"
Rows = list[dict[str, str]]


def _rows(header: str, *lines: str) -> Rows:
    names = header.split(",")
    return [dict(zip(names, next(csv.reader([line])), strict=True)) for line in lines]


def bundle_11() -> dict[str, Rows]:
    """A small school as OneRoster 1.1: two homerooms, a section, a stream, families, marks."""
    s = f",,{T}"  # empty status (active) and dateLastModified
    return {
        "manifest.csv": _rows("propertyName,value", "manifest.version,1.0",
                              "oneroster.version,1.1", "file.users,bulk", "file.results,bulk"),
        "orgs.csv": _rows("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
                          f"dist-1{s},Управление образования,district,,",
                          f"sch-7{s},МБОУ СОШ № 7,school,,dist-1"),
        "academicSessions.csv": _rows(
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear",
            f"y2027{s},2026/2027,schoolYear,2026-09-01,2027-05-31,,2027",
            f"t1{s},1 четверть,gradingPeriod,2026-09-01,2026-10-24,y2027,2027",
            f"t2{s},1 полугодие,semester,2026-09-01,2026-12-28,y2027,2027"),
        "courses.csv": _rows(
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,"
            "orgSourcedId,subjects",
            f"c-alg{s},y2027,Алгебра,ALG,07,sch-7,mathematics"),
        "classes.csv": _rows(
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds",
            f"k-7b{s},7Б,07,,7B,homeroom,,sch-7,t1",
            f"k-7a{s},7А,07,,7A,homeroom,,sch-7,t1",
            f'sec-7b{s},Алгебра 7Б,07,c-alg,A7B,scheduled,214,sch-7,"t1,t2"',
            f"sec-str{s},Алгебра (поток),07,c-alg,AST,scheduled,215,sch-7,t1"),
        "users.csv": _rows(
            "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password",
            f"u-t1{s},true,sch-7,teacher,akor,,Анна,Королёва,Петровна,,a@school.ru,,,,,",
            f"u-s1{s},true,sch-7,student,alena,,Алёна,Иванова-Крылова,,,,,,u-g1,07,",
            f"u-s2{s},true,sch-7,student,artem,,Артём,Иванов,,,,,,,07,",
            f"u-s3{s},true,sch-7,student,ivan,,Иван,Петров,,,,,,,07,",
            f"u-g1{s},true,sch-7,parent,maria,,Мария,Иванова,,,maria@example.ru,,"
            '+7 900 000-00-01,"u-s1,u-s2",,',
            f"u-g2{s},true,sch-7,relative,olga,,Ольга,Петрова,,,,,,u-s3,,"),
        "enrollments.csv": _rows(
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate",
            f"e1{s},k-7b,sch-7,u-s1,student,false,2026-09-01,",
            f"e2{s},k-7b,sch-7,u-s2,student,false,2026-09-01,",
            f"e3{s},k-7a,sch-7,u-s3,student,false,2026-09-01,",
            f"e4{s},k-7b,sch-7,u-t1,teacher,true,,",
            f"e5{s},sec-7b,sch-7,u-s1,student,false,2026-09-02,2026-12-28",
            f"e6{s},sec-7b,sch-7,u-s2,student,false,,",
            f"e7{s},sec-str,sch-7,u-s1,student,false,2026-09-01,",
            f"e8{s},sec-str,sch-7,u-s3,student,false,2026-09-01,",
            f"e9{s},sec-7b,sch-7,u-t1,teacher,true,,"),
        "categories.csv": _rows("sourcedId,status,dateLastModified,title",
                                f"cat-kr{s},Контрольная работа"),
        "lineItems.csv": _rows(
            "sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,gradingPeriodSourcedId,resultValueMin,resultValueMax",
            f"li-1{s},Контрольная работа № 1,,2026-09-10,2026-09-14,sec-7b,cat-kr,t1,1,5",
            f"li-2{s},Самостоятельная работа,,2026-09-20,,sec-7b,,t1,1,5"),
        "results.csv": _rows(
            "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment",
            f"r1{s},li-1,u-s1,fully graded,5.0,2026-09-15,Молодец",
            f"r2{s},li-1,u-s2,fully graded,4-,,",
            f"r3{s},li-2,u-s1,fully graded,зачёт,,",
            f"r4{s},li-2,u-s2,fully graded,85,,",
            f"r5{s},li-1,u-s3,exempt,,,"),
    }  # fmt: skip


def as_12(bundle: dict[str, Rows]) -> dict[str, Rows]:
    """The same school in the shape of OneRoster 1.2: roles.csv, textScore."""
    converted = {name: [dict(row) for row in rows] for name, rows in bundle.items()}
    for row in converted["manifest.csv"]:
        if row["propertyName"] == "oneroster.version":
            row["value"] = "1.2"
    converted["roles.csv"] = [
        {"sourcedId": f"role-{row['sourcedId']}", "status": "", "dateLastModified": T,
         "userSourcedId": row["sourcedId"], "roleType": "primary", "role": row.pop("role"),
         "orgSourcedId": "sch-7", "userProfileSourcedId": "", "beginDate": "", "endDate": ""}
        for row in converted["users.csv"]
    ]  # fmt: skip
    for row in converted["results.csv"]:
        row["textScore"], row["score"] = row["score"], ""
    return converted


def _csv(rows: Rows, *, delimiter: str = ",", quirky: bool = False) -> str:
    if not rows:
        return ""
    names = list(rows[0])
    shown = [_quirk(n) if quirky else n for n in names]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(shown)
    writer.writerows([row[n] for n in names] for row in rows)
    return out.getvalue() + ("\r\n" if quirky else "")  # a blank last line, as Excel leaves


def _quirk(name: str) -> str:
    """Header spellings seen in hand-edited exports: spaces, case, snake_case."""
    spaced = "".join(f" {c}" if c.isupper() else c for c in name)
    return {0: spaced.title(), 1: name.upper(), 2: spaced.replace(" ", "_").lower()}[len(name) % 3]


def write_folder(folder: Path, bundle: dict[str, Rows]) -> Path:
    folder.mkdir(parents=True)
    for name, rows in bundle.items():
        (folder / name).write_text(_csv(rows), encoding="utf-8")
    return folder


def write_quirky_zip(path: Path, bundle: dict[str, Rows]) -> Path:
    """cp1251 or UTF-8 with BOM, `;` delimiters, odd headers, files in a subfolder."""
    with zipfile.ZipFile(path, "w") as archive:
        for i, (name, rows) in enumerate(sorted(bundle.items())):
            text = _csv(rows, delimiter=";", quirky=True)
            data = text.encode("cp1251") if i % 2 else "\ufeff".encode() + text.encode()
            archive.writestr(f"export/{name}", data)
    return path


def _import(config: Config, path: Path) -> Any:
    return oneroster.import_bundle(
        path, MarkRules(), tz=config.school.tz, school_id=config.school.school_id
    )


def _data(model: Any, ident: str) -> dict[str, Any]:
    row = model.get_by_id(ident)
    return {k: v for k, v in row.__data__.items() if k not in ("updated_at",)}


# --- mapping --------------------------------------------------------------------------------


def test_a_11_bundle_maps_to_the_journal(config: Config, file_db: Path, tmp_path: Path) -> None:
    result = _import(config, write_folder(tmp_path / "roster", bundle_11()))
    assert result.records > 30
    assert models.School.get_by_id("sch-7").name == "МБОУ СОШ № 7"
    assert not models.School.get_or_none(models.School.id == "dist-1")
    assert _data(models.Period, "t1")["kind"] == "quarter"
    assert _data(models.Period, "t2")["kind"] == "half"
    klass = _data(models.ClassUnit, "k-7b")
    assert (klass["grade"], klass["letter"], klass["academic_year_id"]) == (7, "Б", "y2027")
    assert klass["class_teacher_id"] == "u-t1"
    assert json.loads(models.Teacher.get_by_id("u-t1").roles) == ["teacher", "class_teacher"]
    assert models.Student.get_by_id("u-s3").class_unit_id == "k-7a"
    assert models.Student.get_by_id("u-s1").last_name == "Иванова-Крылова"
    groups = {g.id: (g.kind, json.loads(g.class_unit_ids), g.subject_id) for g in models.Group}
    assert groups == {
        "k-7b": ("whole_class", ["k-7b"], None),
        "k-7a": ("whole_class", ["k-7a"], None),
        "sec-7b": ("whole_class", ["k-7b"], "c-alg"),
        "sec-str": ("stream", ["k-7a", "k-7b"], "c-alg"),
    }
    links = {(link.guardian_id, link.student_id, link.relation, link.is_legal_representative)
             for link in models.GuardianLink}  # fmt: skip
    assert links == {("u-g1", "u-s1", "other", True), ("u-g1", "u-s2", "other", True),
                     ("u-g2", "u-s3", "other", False)}  # fmt: skip
    assert models.Guardian.get_by_id("u-g1").email == "maria@example.ru"
    assert str(_data(models.Membership, "e6")["date_from"]) == "2026-09-01"  # the term's start
    assert str(_data(models.Membership, "e5")["date_to"]) == "2026-12-28"
    assert models.Membership.select().count() == 7  # teachers are not members
    assert _data(models.Work, "li-1")["kind"] == "cat-kr"
    assert _data(models.Work, "li-2")["kind"] == oneroster_document.DEFAULT_WORK_KIND
    marks = {m.id: (m.raw_text, m.scale, m.value, m.subject_id, str(m.date)) for m in models.Mark}
    assert marks == {
        "r1": ("5", "five", 5.0, "c-alg", "2026-09-15"),
        "r2": ("4-", "five", 4.0, "c-alg", "2026-09-14"),
        "r3": ("зачёт", "pass_fail", None, "c-alg", "2026-09-20"),
        "r4": ("85", "custom", 85.0, "c-alg", "2026-09-20"),
    }
    assert models.Mark.get_by_id("r1").comment == "Молодец"


def test_a_12_zip_with_quirks_gives_the_same_journal(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    _import(config, write_folder(tmp_path / "roster", bundle_11()))
    plain = journal_dump()
    close_database()
    (config.database_path() or Path()).unlink()
    from otmetka.db import migrate, open_database

    open_database(config.database.url)
    migrate()
    bundle = write_quirky_zip(tmp_path / "roster-1.2.zip", as_12(bundle_11()))
    result = _import(config, bundle)
    assert result.origin == "roster-1.2.zip"
    assert journal_dump() == plain


def test_a_delta_updates_deletes_and_keeps_what_it_does_not_carry(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    _import(config, write_folder(tmp_path / "bulk", bundle_11()))
    later = "2026-09-20T09:00:00Z"
    full = bundle_11()
    users = {row["sourcedId"]: row for row in full["users.csv"]}
    renamed = {**users["u-s2"], "familyName": "Иванов-Петров", "dateLastModified": later}
    parent = {**users["u-g1"], "agentSourcedIds": "u-s1", "dateLastModified": later}
    results = {row["sourcedId"]: row for row in full["results.csv"]}
    delta = {
        "manifest.csv": _rows("propertyName,value", "oneroster.version,1.1",
                              "file.users,delta", "file.results,delta"),
        "users.csv": [renamed, parent],
        "results.csv": [
            {**results["r1"], "score": "4", "dateLastModified": later},
            {**results["r2"], "status": "tobedeleted", "dateLastModified": later},
        ],
    }  # fmt: skip
    _import(config, write_folder(tmp_path / "delta", delta))
    student = models.Student.get_by_id("u-s2")
    assert (student.last_name, student.class_unit_id) == ("Иванов-Петров", "k-7b")
    assert models.Mark.get_by_id("r1").raw_text == "4"
    assert models.Mark.get_by_id("r2").deleted_at is not None
    live = {link.id for link in models.GuardianLink if link.deleted_at is None}
    assert live == {"u-g1~u-s1", "u-g2~u-s3"}
    log = models.ImportLog.select().order_by(models.ImportLog.id.desc()).first()
    assert log.mode == "delta" and log.source == "oneroster"


def test_an_unchanged_bundle_is_not_applied_twice(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "roster", bundle_11())
    _import(config, folder)
    assert _import(config, folder).already_imported


# --- errors ---------------------------------------------------------------------------------


def _broken(edit: Any) -> dict[str, Rows]:
    bundle = bundle_11()
    edit(bundle)
    return bundle


def _set(file: str, ident: str, **values: str) -> Any:
    def edit(bundle: dict[str, Rows]) -> None:
        row = next(r for r in bundle[file] if r.get("sourcedId") == ident)
        row.update(values)

    return edit


def _drop_column(file: str, column: str) -> Any:
    def edit(bundle: dict[str, Rows]) -> None:
        for row in bundle[file]:
            row.pop(column)

    return edit


_ERRORS = [
    (_set("results.csv", "r2", score="abc"),
     "results.csv row 3 (sourcedId 'r2'), column 'score': 'abc' is not a mark"),
    (_set("results.csv", "r1", studentSourcedId="u-zz"),
     "results.csv row 2 (sourcedId 'r1'), column 'studentSourcedId': refers to student 'u-zz'"),
    (_set("enrollments.csv", "e5", endDate="2026-08-01"),
     "enrollments.csv row 6 (sourcedId 'e5'): Value error, 'date_to' (2026-08-01) is before"),
    (_set("users.csv", "u-s1", givenName=""),
     "users.csv row 3 (sourcedId 'u-s1'), column 'givenName': "),
    (_set("enrollments.csv", "e3", classSourcedId="sec-7b"),
     "users.csv row 5 (sourcedId 'u-s3'), column 'sourcedId': the student has no homeroom"),
    (_set("academicSessions.csv", "t1", startDate="2026-13-45"),
     "academicSessions.csv row 3 (sourcedId 't1'), column 'startDate': '2026-13-45' is not a date"),
    (_set("classes.csv", "k-7a", grades="", title="Класс коррекции"),
     "classes.csv row 3 (sourcedId 'k-7a'), column 'grades': cannot tell the grade"),
    (_set("users.csv", "u-g2", agentSourcedIds="u-nobody"),
     "users.csv row 7 (sourcedId 'u-g2'), column 'agentSourcedIds': 'u-nobody' is not a student"),
    (_drop_column("users.csv", "familyName"),
     "users.csv row 1: column 'familyName' is missing"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "words"), _ERRORS)
def test_errors_name_file_row_and_column_and_nothing_is_applied(
    edit: Any, words: str, config: Config, file_db: Path, tmp_path: Path
) -> None:
    before = journal_dump()
    folder = write_folder(tmp_path / "roster", _broken(edit))
    with pytest.raises(BatchError) as error:
        _import(config, folder)
    assert f"roster: {words}" in str(error.value)
    assert "nothing from this file was imported" in str(error.value)
    assert journal_dump() == before and models.ImportLog.select().count() == 0


def test_a_folder_without_oneroster_files_is_refused(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "class.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(BatchError, match="no OneRoster files found"):
        _import(config, folder)


def test_bytes_that_are_no_known_encoding_are_refused(
    config: Config, file_db: Path, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "roster", bundle_11())
    (folder / "courses.csv").write_bytes(b"sourcedId,title\r\nc-1,\x98\r\n")
    with pytest.raises(BatchError, match=r"courses\.csv: byte 21 is neither UTF-8 nor"):
        _import(config, folder)


# --- through the inbox ----------------------------------------------------------------------


def test_bundles_in_the_inbox_go_to_done_or_quarantine(config: Config, file_db: Path) -> None:
    folder = config.paths.inbox_dir
    folder.mkdir()
    write_quirky_zip(folder / "1-roster.zip", as_12(bundle_11()))
    write_folder(folder / "2-fixes", _broken(_set("results.csv", "r1", score="отл")))
    box = Inbox(config, MarkRules())
    box.tick(now=0.0)
    outcomes = box.tick(now=100.0)
    assert [(o.name, o.ok) for o in outcomes] == [("1-roster.zip", True), ("2-fixes", False)]
    assert (folder / "done" / "1-roster.zip").is_file()
    assert (folder / "quarantine" / "2-fixes" / "results.csv").is_file()
    note = (folder / "quarantine" / "2-fixes.error.txt").read_text(encoding="utf-8")
    assert "2-fixes: results.csv row 2 (sourcedId 'r1'), column 'score': 'отл'" in note
    assert models.Mark.select().count() == 4

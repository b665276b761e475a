"""Hostile files benchmark: the peak memory of importing the largest legitimate OneRoster
bundle and class list, next to hostile files of the same kinds.

    .venv/bin/python bench/hostile.py [--students 2000] [--as-of 2027-05-28] [--no-record]

Builds the demo school (bench/common.py), writes it as a OneRoster 1.1 zip (a homeroom per
class, a section per group, a line item per lesson with marks, a result per mark) and
exports the list of its largest class as XLSX. Then builds the hostile files: a OneRoster
zip whose users.csv unpacks to 1 GB of one repeated row, an exchange zip of 1 GB of spaces,
and a class list whose first sheet is 256 MB of repeated cells. Each file is dropped into
the inbox of a project and taken by a child process of its own (a fresh interpreter), which
reports its time, its peak RSS and what the inbox said.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import multiprocessing
import shutil
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import demo_project, record

from otmetka.daemon import runtime
from otmetka.daemon.core.config import config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange import inbox
from otmetka.daemon.lists import export
from otmetka.db import close_database, models, open_database, queries

MB = 1024**2
T = "2026-08-25T10:00:00.000Z"
Table = list[list[str]]

# --- the demo school as OneRoster 1.1 -------------------------------------------------------

HEADERS = {
    "orgs.csv": "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "academicSessions.csv": "sourcedId,status,dateLastModified,title,type,startDate,endDate,"
    "parentSourcedId,schoolYear",
    "courses.csv": "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,"
    "grades,orgSourcedId,subjects",
    "classes.csv": "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,"
    "classType,location,schoolSourcedId,termSourcedIds",
    "users.csv": "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,"
    "userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,"
    "grades,password",
    "enrollments.csv": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,"
    "userSourcedId,role,primary,beginDate,endDate",
    "lineItems.csv": "sourcedId,status,dateLastModified,title,description,assignDate,dueDate,"
    "classSourcedId,categorySourcedId,gradingPeriodSourcedId,resultValueMin,resultValueMax",
    "results.csv": "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,"
    "scoreStatus,score,scoreDate,comment",
}


def _row(ident: str, *cells: Any) -> list[str]:
    return [ident, "", T, *("" if c is None else str(c) for c in cells)]


def _people(by: dict[str, list[dict[str, Any]]], school: str, tables: dict[str, Table]) -> None:
    agents: dict[str, list[str]] = defaultdict(list)
    for link in by["guardian_link"]:
        agents[link["data"]["student_id"]].append(link["data"]["guardian_id"])
        agents[link["data"]["guardian_id"]].append(link["data"]["student_id"])
    grade = {c["id"]: f"{c['data']['grade']:02d}" for c in by["class_unit"]}
    for kind, role in (("teacher", "teacher"), ("student", "student"), ("guardian", "parent")):
        for person in by[kind]:
            d = person["data"]
            tables["users.csv"].append(
                _row(person["id"], "true", school, role, person["id"], "", d["first_name"],
                     d["last_name"], d.get("middle_name"), "", d.get("email"), "",
                     d.get("phone"), ",".join(agents[person["id"]]),
                     grade.get(d.get("class_unit_id", ""), ""), "")
            )  # fmt: skip


def _classes(by: dict[str, list[dict[str, Any]]], school: str, tables: dict[str, Table]) -> None:
    year = by["academic_year"][0]
    grade = {c["id"]: f"{c['data']['grade']:02d}" for c in by["class_unit"]}
    for unit in by["class_unit"]:
        d = unit["data"]
        tables["classes.csv"].append(
            _row(unit["id"], d["name"], grade[unit["id"]], "", "", "homeroom", "", school,
                 year["id"])
        )  # fmt: skip
        tables["enrollments.csv"].append(
            _row(f"ct-{unit['id']}", unit["id"], school, d["class_teacher_id"], "teacher",
                 "true", "", "")
        )  # fmt: skip
    for group in by["group"]:
        d = group["data"]
        if d.get("subject_id"):
            tables["classes.csv"].append(
                _row(group["id"], d["name"], grade[d["class_unit_ids"][0]], d["subject_id"],
                     "", "scheduled", "", school, year["id"])
            )  # fmt: skip
    for student in by["student"]:
        tables["enrollments.csv"].append(
            _row(f"hr-{student['id']}", student["data"]["class_unit_id"], school, student["id"],
                 "student", "false", year["data"]["start"], "")
        )  # fmt: skip
    sections = {g["id"] for g in by["group"] if g["data"].get("subject_id")}
    for member in by["membership"]:
        d = member["data"]
        if d["group_id"] in sections:
            tables["enrollments.csv"].append(
                _row(member["id"], d["group_id"], school, d["student_id"], "student", "false",
                     d.get("from"), d.get("to"))
            )  # fmt: skip


def _period_of(periods: list[dict[str, Any]], day: str) -> str:
    inside = (p["id"] for p in periods if p["data"]["start"] <= day <= p["data"]["end"])
    return next(inside, "")


def _marks(by: dict[str, list[dict[str, Any]]], tables: dict[str, Table]) -> None:
    periods = [p for p in by["period"] if p["data"]["kind"] == "quarter"]
    lessons = {lesson["id"]: lesson["data"] for lesson in by["lesson"]}
    items: set[str] = set()
    for mark in by["mark"]:
        d = mark["data"]
        lesson = lessons.get(d.get("lesson_id", ""))
        if lesson is None or d.get("kind", "regular") != "regular":
            continue
        item = f"li-{d['lesson_id']}"
        if item not in items:
            items.add(item)
            period = _period_of(periods, lesson["date"])
            tables["lineItems.csv"].append(
                _row(item, lesson.get("topic") or "Урок", "", lesson["date"], lesson["date"],
                     lesson["group_id"], "", period, "1", "5")
            )  # fmt: skip
        tables["results.csv"].append(
            _row(mark["id"], item, d["student_id"], "fully graded", d["raw"], d["date"], "")
        )


def roster_tables(document: dict[str, Any]) -> dict[str, Table]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for change in document["changes"]:
        by[change["type"]].append(change)
    school = document["school_id"]
    tables: dict[str, Table] = {name: [] for name in HEADERS}
    tables["orgs.csv"].append(_row(school, by["school"][0]["data"]["name"], "school", "", ""))
    year = by["academic_year"][0]
    tables["academicSessions.csv"].append(
        _row(year["id"], year["data"]["name"], "schoolYear", year["data"]["start"],
             year["data"]["end"], "", year["data"]["end"][:4])
    )  # fmt: skip
    for period in by["period"]:
        d = period["data"]
        tables["academicSessions.csv"].append(
            _row(period["id"], d["name"], "gradingPeriod", d["start"], d["end"], year["id"],
                 year["data"]["end"][:4])
        )  # fmt: skip
    for subject in by["subject"]:
        tables["courses.csv"].append(
            _row(subject["id"], year["id"], subject["data"]["name"], "", "", school, "")
        )
    _people(by, school, tables)
    _classes(by, school, tables)
    _marks(by, tables)
    return tables


def write_roster_zip(path: Path, tables: dict[str, Table]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in tables.items():
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(HEADERS[name].split(","))
            writer.writerows(rows)
            archive.writestr(name, out.getvalue().encode())


# --- hostile files ----------------------------------------------------------------------------


def _fill(out: Any, unit: bytes, total: int) -> None:
    chunk = unit * (MB // len(unit))
    for _ in range(total // len(chunk)):
        out.write(chunk)


def roster_bomb(path: Path) -> None:
    row = b"u-x,,2026-08-25T10:00:00.000Z,true,sch,student,x,,Ivan,Petrov,,,,,,,07,\r\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("orgs.csv", HEADERS["orgs.csv"] + "\r\nsch,,,Школа,school,,\r\n")
        with archive.open("users.csv", "w") as out:
            out.write(HEADERS["users.csv"].encode() + b"\r\n")
            _fill(out, row, 1024 * MB)


def exchange_bomb(path: Path) -> None:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("year.json", "w") as out,
    ):
        _fill(out, b" ", 1024 * MB)


def sheet_bomb(source: Path, target: Path) -> None:
    row = b"<row>" + b'<c t="inlineStr"><is><t>x</t></is></c>' * 10 + b"</row>"
    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as bomb,
    ):
        for info in original.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                bomb.writestr(info, original.read(info))
                continue
            with bomb.open(info.filename, "w") as out:
                out.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/')
                out.write(b'spreadsheetml/2006/main"><sheetData>')
                _fill(out, row, 256 * MB)
                out.write(b"</sheetData></worksheet>")


# --- one import in a child -------------------------------------------------------------------


def _peak_mb() -> float:
    """This process's own high-water mark of resident memory (ru_maxrss would carry over the
    parent's, which holds the demo school, from the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _take_in_child(project: Path, path: Path) -> dict[str, Any]:
    """Runs in a fresh process: the inbox takes `path`; time, peak RSS, outcome."""
    config = config_from_dict({}, base_dir=project, env={})
    open_database(config.database.url)
    runtime.wire()
    started = time.perf_counter()
    outcome = inbox.process(config, path, MarkRules())
    seconds = time.perf_counter() - started
    close_database()
    rss = _peak_mb()
    first = outcome.message.splitlines()[0] if outcome.message else ""
    return {"ok": outcome.ok, "message": first[:100], "seconds": seconds, "rss": rss}


def take(project: Path, path: Path) -> dict[str, Any]:
    dropped = project / "inbox" / path.name
    dropped.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dropped)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_take_in_child, (project, dropped))
    return result


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / MB:.1f} MB" if size >= MB else f"{size / 1024:.0f} KB"


def _line(what: str, path: Path, result: dict[str, Any]) -> str:
    verdict = "imported" if result["ok"] else "refused"
    return (
        f"{what} ({_size(path)}): {verdict} in {result['seconds']:.1f} s, "
        f"peak RSS {result['rss']:.0f} MB — {result['message']}"
    )


def _largest_class(config: Any, folder: Path) -> Path:
    sizes: dict[str, int] = defaultdict(int)
    for student in models.Student.select():
        sizes[student.class_unit_id or ""] += 1
    names = {c.id: c.name for c in queries.class_units()}
    biggest = max((n, names[c]) for c, n in sizes.items() if c in names)[1]
    return export.export_list(config, class_name=biggest, out=folder / "list.xlsx").path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2027, 5, 28))
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        files = folder / "files"
        files.mkdir()
        school = demo_project(folder / "school", args.students, args.as_of)
        xlsx = _largest_class(school, files)
        close_database()
        document = generate_school(students=args.students, seed=1, as_of=args.as_of)
        tables = roster_tables(document)
        del document
        write_roster_zip(files / "roster.zip", tables)
        counts = {name: len(rows) for name, rows in tables.items()}
        del tables
        roster_bomb(files / "roster-bomb.zip")
        exchange_bomb(files / "year-bomb.zip")
        sheet_bomb(xlsx, files / "list-bomb.xlsx")
        empty = folder / "empty"
        runtime.open_project(config_from_dict({}, base_dir=empty, env={}))
        close_database()
        runs = [
            ("OneRoster bundle, the whole demo school", empty, files / "roster.zip"),
            ("OneRoster bomb: users.csv of 1 GB", empty, files / "roster-bomb.zip"),
            ("exchange zip bomb: year.json of 1 GB", empty, files / "year-bomb.zip"),
            ("class list of the largest class", folder / "school", xlsx),
            ("class list bomb: a sheet of 256 MB", folder / "school", files / "list-bomb.xlsx"),
        ]
        lines = [
            f"students: {args.students}, as of {args.as_of}; OneRoster rows: "
            + ", ".join(f"{n} {c:,}" for n, c in counts.items())
        ]
        lines += [_line(what, path, take(project, path)) for what, project, path in runs]
    command = f"python bench/hostile.py --students {args.students} --as-of {args.as_of}"
    record("Hostile files", command, lines, keep=not args.no_record)


if __name__ == "__main__":
    main()

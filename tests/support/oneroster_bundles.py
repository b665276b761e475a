"""OneRoster bundles for the tests, as other systems write them: the small school of 1.1 and
1.2 (`bundle_11`, `as_12`), exports shaped like the public 1.1 and 1.2 sample sets (no
homeroom classes, empty `grades`, 1.2 header names, `metadata.*` columns, extra files), a
minimal bundle and a delta; and writers for folders and zips with spreadsheet quirks."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

T = "2026-08-25T10:00:00.000Z"
Rows = list[dict[str, str]]


def table(header: str, *lines: str) -> Rows:
    names = header.split(",")
    return [dict(zip(names, next(csv.reader([line])), strict=True)) for line in lines]


def bundle_11() -> dict[str, Rows]:
    """A small school as OneRoster 1.1: two homerooms, a section, a stream, families, marks."""
    s = f",,{T}"  # empty status (active) and dateLastModified
    return {
        "manifest.csv": table("propertyName,value", "manifest.version,1.0",
                              "oneroster.version,1.1", "file.users,bulk", "file.results,bulk"),
        "orgs.csv": table("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
                          f"dist-1{s},Управление образования,district,,",
                          f"sch-7{s},МБОУ СОШ № 7,school,,dist-1"),
        "academicSessions.csv": table(
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear",
            f"y2027{s},2026/2027,schoolYear,2026-09-01,2027-05-31,,2027",
            f"t1{s},1 четверть,gradingPeriod,2026-09-01,2026-10-24,y2027,2027",
            f"t2{s},1 полугодие,semester,2026-09-01,2026-12-28,y2027,2027"),
        "courses.csv": table(
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,"
            "orgSourcedId,subjects",
            f"c-alg{s},y2027,Алгебра,ALG,07,sch-7,mathematics"),
        "classes.csv": table(
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds",
            f"k-7b{s},7Б,07,,7B,homeroom,,sch-7,t1",
            f"k-7a{s},7А,07,,7A,homeroom,,sch-7,t1",
            f'sec-7b{s},Алгебра 7Б,07,c-alg,A7B,scheduled,214,sch-7,"t1,t2"',
            f"sec-str{s},Алгебра (поток),07,c-alg,AST,scheduled,215,sch-7,t1"),
        "users.csv": table(
            "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password",
            f"u-t1{s},true,sch-7,teacher,akor,,Анна,Королёва,Петровна,,a@school.ru,,,,,",
            f"u-s1{s},true,sch-7,student,alena,,Алёна,Иванова-Крылова,,,,,,u-g1,07,",
            f"u-s2{s},true,sch-7,student,artem,,Артём,Иванов,,,,,,,07,",
            f"u-s3{s},true,sch-7,student,ivan,,Иван,Петров,,,,,,,07,",
            f"u-g1{s},true,sch-7,parent,maria,,Мария,Иванова,,,maria@example.ru,,"
            '+7 900 000-00-01,"u-s1,u-s2",,',
            f"u-g2{s},true,sch-7,relative,olga,,Ольга,Петрова,,,,,,u-s3,,"),
        "enrollments.csv": table(
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
        "categories.csv": table("sourcedId,status,dateLastModified,title",
                                f"cat-kr{s},Контрольная работа"),
        "lineItems.csv": table(
            "sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,gradingPeriodSourcedId,resultValueMin,resultValueMax",
            f"li-1{s},Контрольная работа № 1,,2026-09-10,2026-09-14,sec-7b,cat-kr,t1,1,5",
            f"li-2{s},Самостоятельная работа,,2026-09-20,,sec-7b,,t1,1,5"),
        "results.csv": table(
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


def to_csv(rows: Rows, *, delimiter: str = ",", quirky: bool = False) -> str:
    if not rows:
        return ""
    names = list(rows[0])
    shown = [quirk(n) if quirky else n for n in names]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(shown)
    writer.writerows([row[n] for n in names] for row in rows)
    return out.getvalue() + ("\r\n" if quirky else "")  # a blank last line, as Excel leaves


def quirk(name: str) -> str:
    """Header spellings seen in hand-edited exports: spaces, case, snake_case."""
    spaced = "".join(f" {c}" if c.isupper() else c for c in name)
    return {0: spaced.title(), 1: name.upper(), 2: spaced.replace(" ", "_").lower()}[len(name) % 3]


def write_folder(folder: Path, bundle: dict[str, Rows]) -> Path:
    folder.mkdir(parents=True)
    for name, rows in bundle.items():
        (folder / name).write_text(to_csv(rows), encoding="utf-8")
    return folder


def write_quirky_zip(path: Path, bundle: dict[str, Rows]) -> Path:
    """cp1251 or UTF-8 with BOM, `;` delimiters, odd headers, files in a subfolder."""
    with zipfile.ZipFile(path, "w") as archive:
        for i, (name, rows) in enumerate(sorted(bundle.items())):
            text = to_csv(rows, delimiter=";", quirky=True)
            data = text.encode("cp1251") if i % 2 else "\ufeff".encode() + text.encode()
            archive.writestr(f"export/{name}", data)
    return path


def write_zip(path: Path, bundle: dict[str, Rows]) -> Path:
    """A plain zip of the bundle's files, as export tools write it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in bundle.items():
            archive.writestr(name, to_csv(rows).encode())
    return path


# --- exports shaped like the public sample sets ---------------------------------------------

NO_MS = "2026-08-25T10:00:00Z"  # dateLastModified without milliseconds
SCHOOL = "org-222"
YEAR = "as-222-2027"


def real_11() -> dict[str, Rows]:
    """A school's own 1.1 export: no homeroom classes at all, `grades` of the classes left
    empty, a district above the school, demographics.csv and a vendor column in users.csv."""
    a, b = f",active,{T}", f",,{NO_MS}"
    files = [
        "academicSessions",
        "classes",
        "courses",
        "demographics",
        "enrollments",
        "orgs",
        "users",
        "categories",
        "lineItems",
        "results",
    ]
    return {
        "manifest.csv": table("propertyName,value", "manifest.version,1.0",
                              "oneroster.version,1.1", *(f"file.{f},bulk" for f in files),
                              "file.classResources,absent", "source.systemName,Сетевой город"),
        "orgs.csv": table("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
                          f"org-1{a},Управление образования,district,1,",
                          f"{SCHOOL}{a},МБОУ Лицей № 222,school,222,org-1"),
        "academicSessions.csv": table(
            "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,"
            "schoolYear",
            f"{YEAR}{a},2026-2027,schoolYear,2026-09-01,2027-05-31,,2027",
            f"as-222-t1{b},1 полугодие,semester,2026-09-01,2026-12-28,{YEAR},2027",
            f"as-222-gp1{b},1 четверть,gradingPeriod,2026-09-01,2026-10-26,as-222-t1,2027"),
        "courses.csv": table(
            "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,"
            "orgSourcedId,subjects,subjectCodes",
            f"crs-222-alg{a},{YEAR},Алгебра,ALG7,07,{SCHOOL},Mathematics,",
            f"crs-222-rus{a},{YEAR},Русский язык,RUS,,{SCHOOL},Language,",
            f"crs-222-art{a},{YEAR},Кружок,ART,,{SCHOOL},,"),
        "classes.csv": table(
            "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,"
            "location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
            # the grade from the course, from the title, from the students, from nothing
            f"cls-222-123478{a},Алгебра (гр. 1),,crs-222-alg,A1,scheduled,201,{SCHOOL},"
            "as-222-t1,,,2",
            f"cls-222-123479{a},Русский язык 8,,crs-222-rus,R8,scheduled,305,{SCHOOL},"
            "as-222-t1,,,3",
            f"cls-222-123480{a},Русский язык (факультатив),,crs-222-rus,RF,scheduled,305,"
            f"{SCHOOL},as-222-t1,,,7",
            f"cls-222-123481{a},Кружок рисования,,crs-222-art,ART,scheduled,101,{SCHOOL},"
            "as-222-t1,,,8"),
        "users.csv": table(
            "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
            "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,"
            "password,metadata.ext.snils",
            f"usr-222-t1{a},true,{SCHOOL},teacher,t.orlova,{{LDAP:1}},Татьяна,Орлова,Ивановна,"
            "T1,orlova@school222.ru,,,,,,",
            f"usr-222-66778900{a},true,{SCHOOL},student,s.belov,,Сергей,Белов,,S1,,,,usr-222-p1,"
            "07,,123-456-789 00",
            f"usr-222-66778901{a},true,{SCHOOL},student,a.zueva,,Анна,Зуева,,S2,,,,,07,,",
            f"usr-222-66778902{a},true,{SCHOOL},student,i.kim,,Игорь,Ким,,S3,,,,,08,,",
            f"usr-222-66778903{a},true,{SCHOOL},student,o.lis,,Ольга,Лис,,S4,,,,,,,",
            f"usr-222-p1{a},true,{SCHOOL},parent,n.belova,,Наталья,Белова,,P1,"
            "belova@example.ru,,+7 900 100-00-01,usr-222-66778900,,,"),
        "enrollments.csv": table(
            "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,"
            "primary,beginDate,endDate",
            f"enr-1{a},cls-222-123478,{SCHOOL},usr-222-66778900,student,false,2026-09-01,",
            f"enr-2{a},cls-222-123478,{SCHOOL},usr-222-66778901,student,false,2026-09-01,",
            f"enr-3{a},cls-222-123478,{SCHOOL},usr-222-66778903,student,false,2026-09-01,",
            f"enr-4{a},cls-222-123479,{SCHOOL},usr-222-66778902,student,false,2026-09-01,",
            f"enr-5{a},cls-222-123480,{SCHOOL},usr-222-66778901,student,false,2026-09-01,",
            f"enr-6{a},cls-222-123480,{SCHOOL},usr-222-66778902,student,false,2026-09-01,",
            f"enr-7{a},cls-222-123478,{SCHOOL},usr-222-t1,teacher,true,,",
            f"enr-8{a},cls-222-123481,{SCHOOL},usr-222-t1,teacher,true,,"),
        "demographics.csv": table(
            "sourcedId,status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative",
            f"usr-222-66778900{a},2013-04-02,male,false"),
        "categories.csv": table("sourcedId,status,dateLastModified,title",
                                f"cat-222-kr{a},Контрольная работа"),
        "lineItems.csv": table(
            "sourcedId,status,dateLastModified,title,description,assignDate,dueDate,"
            "classSourcedId,categorySourcedId,gradingPeriodSourcedId,resultValueMin,resultValueMax",
            f"li-222-1{a},Контрольная № 1,,2026-09-10,2026-09-14,cls-222-123478,cat-222-kr,"
            "as-222-gp1,1,5"),
        "results.csv": table(
            "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,"
            "score,scoreDate,comment",
            f"res-222-1{a},li-222-1,usr-222-66778900,fully graded,5,2026-09-15,",
            f"res-222-2{a},li-222-1,usr-222-66778901,fully graded,4.0,,"),
    }  # fmt: skip


def _rename(rows: Rows, names: dict[str, str]) -> Rows:
    return [{names.get(k, k): v for k, v in row.items()} for row in rows]


def real_12() -> dict[str, Rows]:
    """The same school exported as OneRoster 1.2: roles in roles.csv, userProfiles.csv,
    1.2 column names and their variants (`preferredFirstName`, `userMasterIdentifier`,
    `academicSessionSourcedId`, `textScore`), `metadata.*` columns, headers in other case."""
    bundle = real_11()
    bundle["manifest.csv"] = [
        {**row, "value": "1.2"} if row["propertyName"] == "oneroster.version" else row
        for row in bundle["manifest.csv"]
    ]
    users = []
    for row in bundle["users.csv"]:
        row = {k: v for k, v in row.items() if k not in ("role", "orgSourcedIds")}
        row.update(
            userMasterIdentifier=f"M-{row['identifier']}",
            preferredFirstName="",
            primaryOrgSourcedId=SCHOOL,
            pronouns="",
            **{"metadata.ru.inn": ""},
        )
        users.append(row)
    bundle["users.csv"] = _rename(users, {"sourcedId": "SourcedID", "givenName": "Given Name"})
    bundle["roles.csv"] = [
        {"sourcedId": f"rol-{row['sourcedId']}", "status": "active", "dateLastModified": NO_MS,
         "userSourcedId": row["sourcedId"], "roleType": "primary", "role": row["role"],
         "orgSourcedId": SCHOOL, "userProfileSourcedId": "", "beginDate": "", "endDate": ""}
        for row in real_11()["users.csv"]
    ]  # fmt: skip
    bundle["userProfiles.csv"] = table(
        "sourcedId,status,dateLastModified,userSourcedId,profileType,vendorId,applicationId,"
        "description,credentialType,username,password",
        f"up-1,active,{NO_MS},usr-222-t1,lms,v1,app1,,password,t.orlova,",
    )
    bundle["lineItems.csv"] = _rename(
        bundle["lineItems.csv"], {"gradingPeriodSourcedId": "academicSessionSourcedId"}
    )
    for row in bundle["results.csv"]:
        row.update(textScore=row.pop("score"), scoreScaleSourcedId="", inProgress="false")
    return bundle


def minimal_11() -> dict[str, Rows]:
    """Only what the 1.1 binding requires: the required files with their required columns."""
    return {
        "manifest.csv": table("propertyName,value", "manifest.version,1.0",
                              "oneroster.version,1.1"),
        "orgs.csv": table("sourcedId,name,type", f"{SCHOOL},Лицей,school"),
        "academicSessions.csv": table("sourcedId,title,type,startDate,endDate,schoolYear",
                                      f"{YEAR},2026/2027,schoolYear,2026-09-01,2027-05-31,2027"),
        "classes.csv": table("sourcedId,title,classType,termSourcedIds",
                             f"cls-5a,5А,homeroom,{YEAR}", f"cls-art,Рисование 5,scheduled,{YEAR}"),
        "users.csv": table("sourcedId,givenName,familyName,role",
                           "u-1,Вера,Соколова,student", "u-2,Глеб,Соколов,student"),
        "enrollments.csv": table("sourcedId,classSourcedId,userSourcedId,role",
                                 "e-1,cls-5a,u-1,student", "e-2,cls-art,u-2,student"),
    }  # fmt: skip


def delta_12() -> dict[str, Rows]:
    """A 1.2 delta after `real_12`: a new student with no homeroom and no grades, a class
    sent again with a new title and still no grades, a dropped enrollment."""
    later = "2026-09-20T09:00:00.000Z"
    full = real_12()
    classes = {row["sourcedId"]: row for row in full["classes.csv"]}
    enrollments = {row["sourcedId"]: row for row in full["enrollments.csv"]}
    return {
        "manifest.csv": table("propertyName,value", "oneroster.version,1.2",
                              "file.users,delta", "file.roles,delta", "file.classes,delta",
                              "file.enrollments,delta"),
        "classes.csv": [{**classes["cls-222-123481"], "title": "Кружок «Палитра»",
                         "dateLastModified": later}],
        "users.csv": _rename(table(
            "sourcedId,status,dateLastModified,enabledUser,givenName,familyName,grades",
            f"usr-222-66778904,active,{later},true,Пётр,Новиков,"), {"sourcedId": "SourcedID"}),
        "roles.csv": table(
            "sourcedId,status,dateLastModified,userSourcedId,roleType,role,orgSourcedId",
            f"rol-new,active,{later},usr-222-66778904,primary,student,{SCHOOL}"),
        "enrollments.csv": [
            {**enrollments["enr-3"], "status": "tobedeleted", "dateLastModified": later},
            {**enrollments["enr-4"], "sourcedId": "enr-9", "userSourcedId": "usr-222-66778904",
             "dateLastModified": later},
        ],
    }  # fmt: skip

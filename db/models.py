"""Table layouts. Only this package knows them.

Journal tables mirror the exchange format (docs/exchange-format.md): the primary key is the
upstream id, nested values are flattened with an underscore (`substitution_reason`), lists
are stored as JSON text, and a delete sets `deleted_at` (a tombstone) instead of removing
the row, so later references and the audit trail keep working. Local tables hold what only
this school has: credentials, legally significant events, the audit chain, the outbox.
"""

from __future__ import annotations

import peewee as pw

from otmetka.db.connection import database


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class JournalModel(BaseModel):
    """A row that came from upstream, keyed by its upstream id."""

    id = pw.CharField(primary_key=True, max_length=128)
    updated_at = pw.CharField(help_text="upstream ISO timestamp; later-or-equal wins")
    deleted_at = pw.CharField(null=True, help_text="tombstone: when upstream deleted it")


class School(JournalModel):
    name = pw.TextField()
    short_name = pw.TextField(default="")
    address = pw.TextField(default="")
    head_name = pw.TextField(default="")


class AcademicYear(JournalModel):
    name = pw.TextField()
    start = pw.DateField()
    end = pw.DateField()


class Period(JournalModel):
    academic_year_id = pw.CharField(index=True)
    kind = pw.CharField()
    name = pw.TextField()
    start = pw.DateField()
    end = pw.DateField()


class Holiday(JournalModel):
    name = pw.TextField()
    kind = pw.CharField()
    start = pw.DateField()
    end = pw.DateField()
    class_unit_ids = pw.TextField(default="[]")


class Subject(JournalModel):
    name = pw.TextField()
    short_name = pw.TextField(default="")


class PersonModel(JournalModel):
    last_name = pw.TextField()
    first_name = pw.TextField()
    middle_name = pw.TextField(default="")


class ContactModel(PersonModel):
    """A person the school can write to or call."""

    email = pw.TextField(default="")
    phone = pw.TextField(default="")


class Teacher(ContactModel):
    position = pw.TextField(default="")
    roles = pw.TextField(default="[]")


class Student(PersonModel):
    class_unit_id = pw.CharField(index=True)
    birth_date = pw.DateField(null=True)
    left_at = pw.DateField(null=True)


class Guardian(ContactModel):
    delivery = pw.CharField(default="electronic")


class GuardianLink(JournalModel):
    guardian_id = pw.CharField(index=True)
    student_id = pw.CharField(index=True)
    relation = pw.CharField()
    is_legal_representative = pw.BooleanField(default=True)


class ClassUnit(JournalModel):
    name = pw.CharField()
    grade = pw.IntegerField()
    letter = pw.CharField(default="")
    academic_year_id = pw.CharField()
    class_teacher_id = pw.CharField(null=True, index=True)


class Group(JournalModel):
    name = pw.TextField()
    kind = pw.CharField()
    subject_id = pw.CharField(null=True)
    class_unit_ids = pw.TextField()


class Membership(JournalModel):
    group_id = pw.CharField(index=True)
    student_id = pw.CharField(index=True)
    date_from = pw.DateField()
    date_to = pw.DateField(null=True)


class BellSlot(JournalModel):
    number = pw.IntegerField()
    start = pw.CharField()
    end = pw.CharField()
    shift = pw.IntegerField(default=1)


class TimetableEntry(JournalModel):
    group_id = pw.CharField(index=True)
    subject_id = pw.CharField()
    teacher_id = pw.CharField()
    weekday = pw.IntegerField()
    slot = pw.IntegerField()
    room = pw.CharField(default="")
    valid_from = pw.DateField()
    valid_to = pw.DateField(null=True)


class Lesson(JournalModel):
    date = pw.DateField(index=True)
    slot = pw.IntegerField()
    group_id = pw.CharField(index=True)
    subject_id = pw.CharField()
    teacher_id = pw.CharField()
    room = pw.CharField(default="")
    topic = pw.TextField(default="")
    status = pw.CharField(default="scheduled")
    substitution_original_teacher_id = pw.CharField(null=True)
    substitution_reason = pw.TextField(null=True)
    moved_from_date = pw.DateField(null=True)
    moved_from_slot = pw.IntegerField(null=True)
    moved_to_date = pw.DateField(null=True)
    moved_to_slot = pw.IntegerField(null=True)


class WorkKind(JournalModel):
    name = pw.TextField()
    default_weight = pw.FloatField(default=1.0)


class Work(JournalModel):
    date = pw.DateField(index=True)
    group_id = pw.CharField(index=True)
    subject_id = pw.CharField()
    lesson_id = pw.CharField(null=True)
    kind = pw.CharField()
    title = pw.TextField(default="")
    weight = pw.FloatField(default=1.0)
    is_control = pw.BooleanField(default=False)


class Mark(JournalModel):
    student_id = pw.CharField(index=True)
    subject_id = pw.CharField()
    date = pw.DateField()
    lesson_id = pw.CharField(null=True)
    work_id = pw.CharField(null=True)
    period_id = pw.CharField(null=True)
    # `raw` would shadow peewee's Model.raw(); the column keeps the exchange name.
    raw_text = pw.CharField(column_name="raw")
    scale = pw.CharField(default="five")
    value = pw.FloatField(null=True, help_text="first (or only) numeric value of the cell")
    value2 = pw.FloatField(null=True, help_text="second value of a double mark such as 3/5")
    passed = pw.BooleanField(null=True, help_text="pass_fail scale: зачёт / незачёт")
    weight = pw.FloatField(default=1.0)
    kind = pw.CharField(default="regular")
    teacher_id = pw.CharField(null=True)
    comment = pw.TextField(default="")


class AttendanceCode(JournalModel):
    title = pw.TextField()
    category = pw.CharField()


class Attendance(JournalModel):
    student_id = pw.CharField(index=True)
    lesson_id = pw.CharField(index=True)
    code = pw.CharField()
    category = pw.CharField()
    minutes_late = pw.IntegerField(default=0)


class Homework(JournalModel):
    subject_id = pw.CharField()
    group_id = pw.CharField(index=True)
    lesson_id = pw.CharField(null=True)
    assigned_on = pw.DateField()
    due_date = pw.DateField(index=True)
    text = pw.TextField()
    student_ids = pw.TextField(default="[]")


class Recommendation(JournalModel):
    student_id = pw.CharField(index=True)
    teacher_id = pw.CharField()
    subject_id = pw.CharField(null=True)
    date = pw.DateField()
    text = pw.TextField()


# Exchange entity type -> table: the one list of entity types. The importer writes through
# this map only, and the exchange schema takes its payload models from it.
JOURNAL_TABLES: dict[str, type[JournalModel]] = {
    "school": School,
    "academic_year": AcademicYear,
    "period": Period,
    "holiday": Holiday,
    "subject": Subject,
    "teacher": Teacher,
    "student": Student,
    "guardian": Guardian,
    "guardian_link": GuardianLink,
    "class_unit": ClassUnit,
    "group": Group,
    "membership": Membership,
    "bell_slot": BellSlot,
    "timetable_entry": TimetableEntry,
    "lesson": Lesson,
    "work_kind": WorkKind,
    "work": Work,
    "mark": Mark,
    "attendance_code": AttendanceCode,
    "attendance": Attendance,
    "homework": Homework,
    "recommendation": Recommendation,
}


# --- local tables -------------------------------------------------------------------------


class Credential(BaseModel):
    """A login to one page. The password is never stored, only what opens the page."""

    login = pw.CharField(unique=True)
    person_kind = pw.CharField(help_text="guardian / student / teacher")
    person_id = pw.CharField()
    page_id = pw.CharField(unique=True)
    salt = pw.BlobField()
    derived_key = pw.BlobField(help_text="cached PBKDF2 output, so a rebuild skips the KDF")
    kdf_iterations = pw.IntegerField()
    token_hash = pw.CharField(unique=True, help_text="sha256 of the endpoint token")
    state = pw.CharField(default="active", help_text="active / revoked")
    issued_at = pw.DateTimeField()
    revoked_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("person_kind", "person_id"), False),)


class Event(BaseModel):
    """A legally significant act: acknowledgement, consent, breach report."""

    event_id = pw.CharField(unique=True)
    kind = pw.CharField()
    credential = pw.ForeignKeyField(Credential, null=True, backref="events")
    guardian_id = pw.CharField(null=True, index=True)
    channel = pw.CharField(help_text="electronic / paper")
    payload = pw.TextField(help_text="the request body as received (JSON)")
    response = pw.TextField(help_text="the first answer, returned again on replay (JSON)")
    occurred_at = pw.DateTimeField()
    received_at = pw.DateTimeField()
    invalid = pw.BooleanField(default=False)
    invalid_reason = pw.TextField(default="")


class AuditEntry(BaseModel):
    """Append-only hash chain over every act; `otmetka audit verify` walks it."""

    seq = pw.IntegerField(unique=True)
    at = pw.DateTimeField()
    actor = pw.CharField()
    action = pw.CharField()
    subject = pw.TextField()
    details = pw.TextField()
    prev_hash = pw.CharField()
    entry_hash = pw.CharField()


class OutboxItem(BaseModel):
    kind = pw.CharField(help_text="push_event / mail / local_change")
    key = pw.CharField(unique=True, help_text="idempotency key (event id, Message-ID)")
    payload = pw.TextField()
    attempts = pw.IntegerField(default=0)
    next_try = pw.DateTimeField(index=True)
    last_error = pw.TextField(default="")
    created_at = pw.DateTimeField()
    done_at = pw.DateTimeField(null=True, index=True)


class BuildManifest(BaseModel):
    page_id = pw.CharField(primary_key=True)
    person_kind = pw.CharField()
    person_id = pw.CharField()
    content_hash = pw.CharField()
    built_at = pw.DateTimeField()


class PageVersion(BaseModel):
    """A version of a page built for a login: an acknowledgement must name one of them."""

    credential = pw.ForeignKeyField(Credential, backref="page_versions")
    version = pw.CharField(help_text="sha256 of the page content the parent saw")
    first_built_at = pw.DateTimeField()
    last_built_at = pw.DateTimeField(help_text="last build that rendered this version")

    class Meta:
        indexes = ((("credential", "version"), True),)


class LocalChange(BaseModel):
    """A teacher's correction awaiting upstream; applied on top of upstream data."""

    entity = pw.CharField()
    entity_id = pw.CharField()
    field = pw.CharField()
    old_value = pw.TextField(null=True)
    new_value = pw.TextField(null=True)
    created_at = pw.DateTimeField()
    author = pw.CharField(default="")
    state = pw.CharField(
        default="pending",
        help_text="pending / confirmed / conflict / superseded (otmetka.db.lists)",
    )
    base_updated_at = pw.CharField(
        null=True, help_text="upstream updated_at of what the change was made on (otmetka.db.lists)"
    )

    class Meta:
        indexes = ((("entity", "entity_id", "field"), False),)


class SyncState(BaseModel):
    """Where each source stands: the cursor is stored in the same transaction as the data."""

    source = pw.CharField(primary_key=True)
    cursor = pw.TextField()
    school_id = pw.CharField()
    updated_at = pw.DateTimeField()


class ImportLog(BaseModel):
    id = pw.AutoField()
    source = pw.CharField()
    origin = pw.TextField(help_text="file name or URL of the batch")
    batch_hash = pw.CharField(index=True)
    mode = pw.CharField()
    cursor = pw.TextField()
    counts = pw.TextField(help_text="JSON: entity -> {upserted, deleted}")
    imported_at = pw.DateTimeField()


class DirtyPerson(BaseModel):
    """People whose pages must be rebuilt; the builder clears what it built."""

    person_kind = pw.CharField()
    person_id = pw.CharField()

    class Meta:
        primary_key = pw.CompositeKey("person_kind", "person_id")


class Setting(BaseModel):
    """Small named facts the daemon keeps between runs (e.g. the week the site was built for)."""

    key = pw.CharField(primary_key=True)
    value = pw.TextField()


class GuardianMail(BaseModel):
    """What mail a guardian has had: the introduction letter and the weekly digest."""

    guardian_id = pw.CharField(primary_key=True)
    intro_version = pw.IntegerField(default=0, help_text="last introduction letter queued")
    intro_at = pw.DateTimeField(null=True)
    digest_at = pw.DateTimeField(null=True, help_text="when the last digest was queued")
    digest_seen = pw.TextField(
        default="[]", help_text="JSON: journal items already reported, within the look-back"
    )


class ExtractIssue(BaseModel):
    """A printed extract: whose, for whom, which content, and the code on its tear-off slip."""

    id = pw.AutoField()
    code = pw.CharField(unique=True, help_text="short code staff type into `otmetka ack register`")
    student_id = pw.CharField(index=True)
    class_unit_id = pw.CharField()
    guardian_ids = pw.TextField(default="[]", help_text="JSON: the guardians it is addressed to")
    period_id = pw.CharField(null=True)
    week_start = pw.DateField(help_text="Monday of the week the extract shows")
    as_of = pw.DateField(help_text="the date the data is given for")
    content_hash = pw.CharField(index=True)
    issued_at = pw.DateTimeField(help_text="first printed")
    printed_at = pw.DateTimeField(help_text="last printed")
    prints = pw.IntegerField(default=1)


class ExtractBatch(BaseModel):
    """One class PDF of extracts; the latest one is linked from the class teacher's page."""

    id = pw.AutoField()
    class_unit_id = pw.CharField(index=True)
    path = pw.TextField()
    pdf_sha256 = pw.CharField()
    extracts = pw.IntegerField()
    pages = pw.IntegerField()
    paper_only = pw.BooleanField(default=False)
    period_id = pw.CharField(null=True)
    created_at = pw.DateTimeField()


class CredentialSlip(BaseModel):
    """A printed credential slip: which login, for whom, when, and whether with a password."""

    id = pw.AutoField()
    login = pw.CharField(index=True)
    person_kind = pw.CharField()
    person_id = pw.CharField()
    with_password = pw.BooleanField()
    printed_at = pw.DateTimeField()

    class Meta:
        indexes = ((("person_kind", "person_id"), False),)


class BreachReport(BaseModel):
    """A report that a login leaked: what was done at once, and the deadline it started."""

    id = pw.AutoField()
    event = pw.ForeignKeyField(Event, unique=True, backref="breach_reports")
    credential = pw.ForeignKeyField(Credential, backref="breach_reports")
    received_at = pw.DateTimeField(help_text="the moment the report was received (UTC)")
    deadline = pw.DateTimeField(index=True, help_text="end of the next working day (UTC)")
    state = pw.CharField(default="open", help_text="open / closed")
    new_login = pw.CharField(default="", help_text="the login issued in place of the leaked one")
    notified = pw.TextField(default="[]", help_text="JSON: addresses the notice was queued for")
    closed_at = pw.DateTimeField(null=True)
    closed_note = pw.TextField(default="")


class AnalyticsReport(BaseModel):
    """An analytics PDF (`otmetka report`): the latest one of a class is linked from the class
    teacher's page, the latest school one from the deputy head's."""

    id = pw.AutoField()
    scope = pw.CharField(index=True, help_text="class id, or 'school'")
    path = pw.TextField()
    pdf_sha256 = pw.CharField()
    pages = pw.IntegerField()
    created_at = pw.DateTimeField()


LOCAL_TABLES: list[type[BaseModel]] = [
    AnalyticsReport,
    ExtractIssue,
    ExtractBatch,
    CredentialSlip,
    Credential,
    Event,
    AuditEntry,
    OutboxItem,
    BuildManifest,
    PageVersion,
    LocalChange,
    SyncState,
    ImportLog,
    DirtyPerson,
    Setting,
    GuardianMail,
    BreachReport,
]

ALL_TABLES: list[type[BaseModel]] = [*JOURNAL_TABLES.values(), *LOCAL_TABLES]

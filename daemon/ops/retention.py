"""Retention of personal data, and the extract of the event log a withdrawal needs.

- A student who leaves loses their page at once: the builder gives pages only to students
  on roll (`left_at` empty or in the future), and removes the others' pages at the next
  build. Their data stays for `retention.purge_after_days` (a school must still answer
  for the marks it gave), then `purge()` deletes it, with their guardians' data when those
  were their only children (`otmetka.db.retention` says exactly what goes). The daemon runs it
  with its deadline checks; `otmetka retention purge [--dry-run]` runs it by hand. Each
  purge is one transaction with the audit entry that records it (`retention.purge`:
  the cut-off, the ids purged, the rows deleted per table).
- When a family withdraws consent, the act of destruction of its data needs the log of
  what happened: `extract()` writes every event and audit entry of the login's person,
  with the chain hashes, as JSON or CSV plus a text for people (`otmetka audit extract`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otmetka.daemon.access.credentials import ROLE_NAMES
from otmetka.daemon.acts.paper import staff_actor
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.private import PRIVATE_FILE, private_dir
from otmetka.db import audit, write_transaction
from otmetka.db import retention as retention_db
from otmetka.site_builder import crypto, formatting
from otmetka.site_builder.atomic import write_atomic

# --- purge ---------------------------------------------------------------------------------------


@dataclass
class PurgeResult:
    cutoff: dt.date
    students: list[str]
    guardians: list[str]
    counts: dict[str, int]
    dry_run: bool
    audit_seq: int | None = None

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        who = f"{len(self.students)} students who left by {self.cutoff:%Y-%m-%d}"
        who += f" and {len(self.guardians)} of their guardians"
        tables = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "none"
        if self.dry_run:
            return f"would purge {who}: {self.rows} rows ({tables}); nothing was deleted"
        if not self.rows:
            return f"nothing to purge (no data older than {self.cutoff:%Y-%m-%d})"
        return f"purged {who}: {self.rows} rows ({tables}); audit entry #{self.audit_seq}"


def cutoff_of(config: Config, now: dt.datetime) -> dt.date:
    """Students who left on or before this day are due (school time)."""
    today = now.astimezone(config.school.zone()).date()
    return today - dt.timedelta(days=config.retention.purge_after_days)


def purge(
    config: Config, *, dry_run: bool = False, now: dt.datetime | None = None, actor: str = ""
) -> PurgeResult:
    """Delete the data of students who left more than `retention.purge_after_days` ago."""
    moment = now or dt.datetime.now(dt.UTC)
    cutoff = cutoff_of(config, moment)
    before = moment - dt.timedelta(days=config.retention.purge_after_days)
    with write_transaction():  # chosen and deleted under one lock: nothing slips between
        students = retention_db.students_due(cutoff)
        guardians = retention_db.guardians_only_of(students)
        result = PurgeResult(cutoff, students, guardians, {}, dry_run)
        if dry_run:
            result.counts = retention_db.count_due(students, guardians)
            _add(result.counts, "outbox_item", retention_db.count_sent_outbox(before))
            return result
        result.counts = retention_db.purge(students, guardians)
        _add(result.counts, "outbox_item", retention_db.purge_sent_outbox(before))
        if result.rows:
            result.audit_seq = _audit(result, actor or staff_actor(), moment)
    return result


def _add(counts: dict[str, int], label: str, n: int) -> None:
    if n:
        counts[label] = counts.get(label, 0) + n


def _audit(result: PurgeResult, actor: str, now: dt.datetime) -> int:
    details = {
        "cutoff": result.cutoff.isoformat(),
        "students": result.students,
        "guardians": result.guardians,
        "rows": result.counts,
    }
    audit.append(actor, retention_db.PURGE_ACTION, "retention", details, now)
    return retention_db.head_seq()


def scheduled_purge(config: Config) -> str | None:
    """The daemon's check: purge what is due; None when there was nothing."""
    result = purge(config, actor="daemon:retention")
    return result.summary() if result.rows else None


# --- the extract of the event log ---------------------------------------------------------------

FORMATS = ("json", "csv")


@dataclass
class Extract:
    """Everything the log holds about one person, ready to be written."""

    login: str
    person_kind: str
    person_id: str
    name: str
    logins: list[str]
    events: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    chain: dict[str, Any]
    generated_at: str
    files: list[Path] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": "otmetka-audit-extract",
            "version": 1,
            "generated_at": self.generated_at,
            "login": self.login,
            "person": {"kind": self.person_kind, "id": self.person_id, "name": self.name},
            "logins": self.logins,
            "chain": self.chain,
            "events": self.events,
            "audit_entries": self.entries,
        }

    def summary(self) -> str:
        written = " and ".join(str(p) for p in self.files)
        state = "intact" if self.chain["intact"] else "BROKEN (see the text)"
        return (
            f"extract for login {self.login}: {len(self.events)} events, "
            f"{len(self.entries)} audit entries (chain {state}) written to {written} "
            "(owner-only)"
        )


def _subjects(credentials: list[Any], events: list[Any], breaches: list[int]) -> set[str]:
    subjects = {f"credential:{c.login}" for c in credentials}
    subjects |= {audit.event_subject(e.event_id) for e in events}
    return subjects | {f"breach:{n}" for n in breaches}


def _entry_with_check(entry: Any) -> dict[str, Any]:
    """The entry as stored, and whether its own hash still matches its fields."""
    row = retention_db.entry_row(entry)
    digest = audit.entry_hash(
        row["seq"],
        row["at"],
        row["actor"],
        row["action"],
        row["subject"],
        row["details"],
        row["prev_hash"],
    )
    row["hash_ok"] = digest == row["entry_hash"]
    return row


def collect_extract(config: Config, login: str, now: dt.datetime | None = None) -> Extract:
    """Every event and audit entry of the person behind `login` (all their logins)."""
    credential = retention_db.credential_by_login(crypto.normalise_login(login))
    if credential is None:
        raise OtmetkaError(f"no login «{login}»; check the spelling on the slip")
    kind, person = str(credential.person_kind), str(credential.person_id)
    credentials = retention_db.logins_of_person(kind, person)
    ids = [c.get_id() for c in credentials]
    events = retention_db.events_of(ids, person if kind == "guardian" else None)
    subjects = _subjects(credentials, events, retention_db.breach_ids_of(ids))
    entries = retention_db.audit_entries_about(subjects, person)
    verification = audit.verify()
    chain = {
        "entries": verification.entries,
        "head": verification.head,
        "intact": verification.ok,
        "verdict": verification.summary(),
    }
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return Extract(
        str(credential.login),
        kind,
        person,
        retention_db.person_name(kind, person),
        [str(c.login) for c in credentials],
        [retention_db.event_row(e) for e in events],
        [_entry_with_check(e) for e in entries],
        chain,
        moment.isoformat(timespec="seconds"),
    )


def extract(
    config: Config,
    *,
    login: str,
    output_format: str | None = None,
    out: Path | None = None,
    now: dt.datetime | None = None,
) -> Extract:
    """Write the extract (JSON or CSV) and its text for people beside it, owner-only."""
    chosen = output_format or "json"
    if chosen not in FORMATS:
        raise OtmetkaError(f"--format {chosen!r}: choose json or csv")
    found = collect_extract(config, login, now)
    stamp = found.generated_at.replace(":", "").replace("-", "")[:15]
    folder = private_dir(config.paths.var_dir / "audit")
    target = out or folder / f"extract-{found.login}-{stamp}.{chosen}"
    text_path = target.with_suffix(".txt")
    if chosen == "json":
        data = json.dumps(found.as_json(), ensure_ascii=False, indent=2) + "\n"
    else:
        data = _csv_text(found)
    _write_private(target, data)
    _write_private(text_path, extract_text(found, config))
    found.files = [target, text_path]
    return found


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"), mode=PRIVATE_FILE)


CSV_COLUMNS = [
    "record",
    "seq",
    "at",
    "actor",
    "action",
    "subject",
    "details",
    "prev_hash",
    "entry_hash",
    "hash_ok",
    "event_id",
    "kind",
    "channel",
    "guardian_id",
    "occurred_at",
    "received_at",
    "invalid",
    "invalid_reason",
    "payload",
    "response",
]


def _csv_text(found: Extract) -> str:
    """One row per audit entry, then one per event; columns that do not apply are empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for entry in found.entries:
        writer.writerow({"record": "audit_entry", **entry})
    for event in found.events:
        writer.writerow({"record": "event", "at": event["received_at"], **event})
    return buffer.getvalue()


# --- the text for people ---------------------------------------------------------------------

KIND_NAMES = {
    "acknowledgement": "ознакомление",
    "consent": "согласие на обработку персональных данных",
    "breach_report": "сообщение об утечке логина",
}
CHANNELS = {"electronic": "электронно, со страницы", "paper": "на бумаге, зарегистрировано"}


def _local(text: str, config: Config) -> str:
    moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    local = moment.astimezone(config.school.zone())
    return f"{formatting.date_long(local.date())}, {local:%H:%M:%S}"


def _event_lines(number: int, event: dict[str, Any], config: Config) -> list[str]:
    payload = json.loads(event["payload"])
    decision = f" ({payload['decision']})" if "decision" in payload else ""
    lines = [
        f"{number}. {KIND_NAMES.get(event['kind'], event['kind'])}{decision}",
        f"   совершено: {_local(event['occurred_at'], config)}; "
        f"получено: {_local(event['received_at'], config)}",
        f"   способ: {CHANNELS.get(event['channel'], event['channel'])}; "
        f"event_id: {event['event_id']}",
    ]
    if event["invalid"]:
        lines.append(f"   НЕДЕЙСТВИТЕЛЬНО: {event['invalid_reason']}")
    return lines


def _entry_lines(entry: dict[str, Any]) -> list[str]:
    check = "хеш верен" if entry["hash_ok"] else "ХЕШ НЕ СОВПАДАЕТ"
    return [
        f"№ {entry['seq']}  {entry['at']} UTC  {entry['actor']}  {entry['action']}  "
        f"{entry['subject']}",
        f"   данные: {entry['details']}",
        f"   хеш предыдущей записи: {entry['prev_hash']}",
        f"   хеш записи: {entry['entry_hash']} ({check})",
    ]


def extract_text(found: Extract, config: Config) -> str:
    role = ROLE_NAMES.get(found.person_kind, found.person_kind)
    chain = found.chain
    lines = [
        "ВЫПИСКА ИЗ ЖУРНАЛА СОБЫТИЙ И ЦЕПОЧКИ АУДИТА",
        f"{config.school.name}",
        "",
        f"Логин: {found.login} ({role}: {found.name or 'данные удалены'}, "
        f"идентификатор {found.person_id})",
        f"Все логины этого лица: {', '.join(found.logins)}",
        f"Сформирована: {_local(found.generated_at[:19], config)} ({config.school.tz})",
        f"Цепочка аудита: {chain['entries']} записей, "
        + ("целостность подтверждена" if chain["intact"] else "ЦЕЛОСТНОСТЬ НАРУШЕНА")
        + f"; хеш последней записи: {chain['head']}",
        "",
        f"События ({len(found.events)}):",
    ]
    for number, event in enumerate(found.events, start=1):
        lines += _event_lines(number, event, config)
    lines += ["", f"Записи цепочки аудита ({len(found.entries)}):"]
    for entry in found.entries:
        lines += _entry_lines(entry)
    lines += [
        "",
        "Хеш записи = SHA-256 канонического JSON [seq, at, actor, action, subject, details,",
        "prev_hash] (docs/api.md, «The audit chain»); его можно пересчитать по этой выписке.",
    ]
    return "\n".join(lines) + "\n"

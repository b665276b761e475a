"""The letters sent to every family: the introduction letter and the weekly digest, on demand
and on the schedule (`digest_slot`, `run_scheduled_digest`, the scheduler's `digest_check`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.mail import letters
from otmetka.daemon.mail.letters import Attachment, ChildLine
from otmetka.daemon.mail.smtp import MailError, QueueResult, now_utc, parse_address, queue_letter
from otmetka.db import acts as events
from otmetka.db import build_state, queries, write_transaction
from otmetka.db import credentials as credentials_db
from otmetka.db import mail as mail_db
from otmetka.site_builder.pages import audience, lookups

log = logging.getLogger("otmetka.mail")

Advance = Callable[[int], None]
ProgressBar = Callable[[str, int], AbstractContextManager[Advance]]
_LAST_DIGEST_RUN = "mail.digest.last_run"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_CATCH_UP = dt.timedelta(days=3)  # a digest missed longer ago is not sent late


def _noop(_n: int) -> None:
    return None


def _no_bar(_label: str, _total: int) -> AbstractContextManager[Advance]:
    return nullcontext(_noop)


# --- the introduction letter ------------------------------------------------------------------


def _reachable(guardian_ids: set[str], result: QueueResult) -> dict[str, mail_db.GuardianContact]:
    """Guardians' contacts with a usable address; the others are counted in `result`."""
    contacts = mail_db.guardian_contacts(guardian_ids)
    result.no_address += len(guardian_ids - set(contacts))
    for gid, contact in sorted(contacts.items()):
        try:
            parse_address(contact.email)
        except MailError:
            result.skipped.append(f"guardian {gid}: address «{contact.email}» is not valid")
            del contacts[gid]
    return contacts


def _class_filter(class_name: str | None) -> str | None:
    if class_name is None:
        return None
    class_id = credentials_db.class_id_by_name(class_name)
    if class_id is None:
        raise MailError(f"no class named «{class_name}»; `otmetka status` lists the classes")
    return class_id


def _families(
    today: dt.date, lookup: lookups.Lookup, class_id: str | None
) -> dict[str, list[ChildLine]]:
    """Guardian -> their children on roll (of the class, if given), as the intro names them."""
    students = {s.id: s for s in queries.active_students(today)}
    families: dict[str, list[ChildLine]] = {}
    for guardian, student_id in queries.guardians_with_children(today):
        student = students.get(student_id)
        if student is None or (class_id and student.class_unit_id != class_id):
            continue
        row = lookup.classes.get(student.class_unit_id)
        line = ChildLine(
            lookups.full_name(student.last_name, student.first_name),
            row.name if row else "",
            lookup.teacher_full(row.class_teacher_id) if row else "",
        )
        kids = families.setdefault(guardian.id, [])
        if line not in kids:
            kids.append(line)
    return families


def queue_intro(config: Config, now: dt.datetime, class_name: str | None = None) -> QueueResult:
    """Queue the introduction letter to every guardian with an address (of the class).

    Idempotent: a guardian who has had this version of the letter is not written to again.
    Families who refused consent are left alone: their data is no longer processed
    electronically.
    """
    today = now.astimezone(config.school.zone()).date()
    lookup = lookups.Lookup.build(queries.reference(), today)
    families = _families(today, lookup, _class_filter(class_name))
    refused = {g for g, s in events.consent_states().items() if s in ("refused", "withdrawn")}
    result = QueueResult("introduction letters", mail_enabled=config.mail.enabled)
    result.refused = len(set(families) & refused)
    contacts = _reachable(set(families) - refused, result)
    states = mail_db.mail_states(contacts)
    with write_transaction():
        for gid in sorted(contacts):
            state = states.get(gid)
            if state and state.intro_version >= letters.INTRO_VERSION:
                result.already += 1
                continue
            letter = letters.intro_letter(config, contacts[gid], families[gid])
            key = f"intro:{gid}:{letters.INTRO_VERSION}"
            result.queued += queue_letter(config, key, letter, now)
            mail_db.record_intro(gid, letters.INTRO_VERSION, now)
    return result


def mail_intro(config: Config, class_name: str | None = None) -> QueueResult:
    """`otmetka mail intro [--class 7Б]`."""
    return queue_intro(config, now_utc(), class_name)


# --- the digest -------------------------------------------------------------------------------


@dataclass
class DigestResult(QueueResult):
    nothing_new: int = 0

    def summary(self) -> str:
        line = super().summary()
        return f"{line}; {self.nothing_new} with nothing new" if self.nothing_new else line


def _digest_news(
    roster: audience.Roster,
    lookup: lookups.Lookup,
    states: Mapping[str, mail_db.MailState],
    guardian_ids: Sequence[str],
    advance: Advance,
) -> dict[str, list[letters.ChildNews]]:
    """Guardian -> what is new for each child, loading each class's journal once."""
    wanted: dict[str, list[tuple[str, str]]] = {}
    for gid in guardian_ids:
        for sid in roster.children.get(gid, []):
            wanted.setdefault(roster.students[sid].class_unit_id, []).append((gid, sid))
    found: dict[tuple[str, str], letters.ChildNews] = {}
    first_day = lookup.today - letters.FIRST_DIGEST_DAYS * letters.DAY
    for class_id, pairs in wanted.items():
        index = letters.load_index(lookup.classes[class_id], lookup)
        for gid, sid in pairs:
            state = states.get(gid)
            seen = state.digest_seen if state and state.digest_at else None
            window = letters.Window(lookup.today, seen, first_day)
            found[(gid, sid)] = letters.child_news(roster.students[sid], index, window)
        advance(len(pairs))
    return {
        gid: [found[(gid, sid)] for sid in roster.children.get(gid, [])] for gid in guardian_ids
    }


def _digest_address(
    config: Config, credential: Any | None, output_dir: Path
) -> letters.DigestAddress:
    """Links to the guardian's page, and the page itself when `mail.attach_page` allows."""
    if credential is None:
        return letters.DigestAddress()
    school, page = config.school, f"p/{credential.page_id}.html"
    attachment = None
    if config.mail.attach_page and (output_dir / page).is_file():
        attachment = Attachment(page, "dnevnik.html")
    return letters.DigestAddress(
        letters.page_url(school.lan_url, credential.page_id),
        letters.page_url(school.mirror_url, credential.page_id),
        attachment,
    )


def queue_digest(config: Config, now: dt.datetime, bar: ProgressBar = _no_bar) -> DigestResult:
    """Queue the digest to every consenting guardian with an address and something new.

    All letters and the memory of what each guardian was told go in one transaction; a
    second run the same day finds nothing new and queues nothing.
    """
    today = now.astimezone(config.school.zone()).date()
    ref = queries.reference()
    lookup = lookups.Lookup.build(ref, today)
    roster = audience.load_roster(today, ref.classes, ref.teachers)
    granted = {g for g, s in events.consent_states().items() if s == "granted"}
    result = DigestResult("digests", mail_enabled=config.mail.enabled)
    contacts = _reachable(set(roster.guardians) & granted, result)
    states = mail_db.mail_states(contacts)
    pairs = sum(len(roster.children.get(gid, [])) for gid in contacts)
    with bar("digest", pairs) as advance:
        news = _digest_news(roster, lookup, states, sorted(contacts), advance)
    credentials = credentials_db.active_by_person()
    with write_transaction():
        for gid in sorted(contacts):
            _queue_one_digest(
                config, now, today, contacts[gid], news[gid], states, credentials, result
            )
    return result


def _queue_one_digest(
    config: Config,
    now: dt.datetime,
    today: dt.date,
    guardian: mail_db.GuardianContact,
    children: list[letters.ChildNews],
    states: Mapping[str, mail_db.MailState],
    credentials: Mapping[tuple[str, str], Any],
    result: DigestResult,
) -> None:
    if not any(child.has_news for child in children):
        result.nothing_new += 1
        return
    state = states.get(guardian.id)
    since = _local_date(config, state.digest_at) if state and state.digest_at else None
    address = _digest_address(
        config, credentials.get(("guardian", guardian.id)), config.site.output_dir
    )
    letter = letters.digest_letter(config, guardian, children, address, since, today)
    if queue_letter(config, f"digest:{guardian.id}:{today.isoformat()}", letter, now):
        result.queued += 1
        mail_db.record_digest(guardian.id, now, {k for c in children for k in c.seen})
    else:
        result.already += 1


def _local_date(config: Config, value: Any) -> dt.date:
    return mail_db.as_utc(value).astimezone(config.school.zone()).date()


def mail_digest(config: Config, bar: ProgressBar = _no_bar) -> DigestResult:
    """`otmetka mail digest`: queue the digest now, whatever the schedule says."""
    return queue_digest(config, now_utc(), bar)


def digest_slot(config: Config, now: dt.datetime) -> dt.datetime:
    """The latest scheduled digest moment (`mail.digest_day` at `mail.digest_time`) <= now."""
    zone = config.school.zone()
    local = now.astimezone(zone)
    hours, minutes = (int(part) for part in config.mail.digest_time.split(":"))
    back = (local.weekday() - WEEKDAYS.index(config.mail.digest_day)) % 7
    day = local.date() - dt.timedelta(days=back)
    slot = dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=zone)
    return slot if slot <= local else slot - dt.timedelta(days=7)


def run_scheduled_digest(config: Config, now: dt.datetime) -> DigestResult | None:
    """Scheduler hook: queue the week's digest once its moment has come; safe to call often.

    A digest missed while the server was off goes out at the next call, up to
    MAX_CATCH_UP late (a fresh install does not send last week's at once). With mail
    disabled the moment passes without a digest: letters queued then would be stale by
    the time mail is switched on.
    """
    slot = digest_slot(config, now)
    done = build_state.get_setting(_LAST_DIGEST_RUN)
    if done and mail_db.as_utc(done) >= slot:
        return None
    late = now - slot > MAX_CATCH_UP
    result = queue_digest(config, now) if config.mail.enabled and not late else None
    with write_transaction():
        build_state.put_setting(_LAST_DIGEST_RUN, slot.astimezone(dt.UTC).isoformat())
    if result is None:
        why = "too late to send" if late else "mail.enabled is false"
        log.info("digest of %s skipped: %s", slot, why)
    else:
        log.info("%s", result.summary())
    return result


def digest_check(config: Config) -> str | None:
    """Queue the week's digest when its moment has come; None at every other call."""
    result = run_scheduled_digest(config, now_utc())
    return result.summary() if result is not None else None

"""Mail through the offline outbox: queue letters, send them over SMTP, report the queue.

Letters are outbox rows of kind "mail" (payload: docs/mail.md). They are queued in the
same transaction as whatever caused them and sent later, by `otmetka.daemon.mail.outbox.flush` (the
sender is registered at import) or by `otmetka mail flush`.

Delivery is at least once to the SMTP server, with one Message-ID per letter: the
Message-ID is chosen when the letter is queued and stored in the row, and the row is
marked done right after the server's 250 reply to DATA. A crash between that reply and
the mark sends the same message again with the same Message-ID, so a duplicate is
recognisable; SMTP has no way to ask a server whether it already took a message, so no
client can do better (docs/mail.md explains).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import holidays

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.mail import letters, outbox
from otmetka.daemon.mail.letters import Attachment, BreachDeadline, ChildLine, Letter
from otmetka.db import acts as stored_events
from otmetka.db import build_state as settings
from otmetka.db import credentials as stored_credentials
from otmetka.db import mail as stored
from otmetka.db import outbox as outbox_db
from otmetka.db import queries as q
from otmetka.db import write_transaction
from otmetka.db.outbox import OutboxEntry
from otmetka.site_builder.pages import render
from otmetka.site_builder.pages import views as v

log = logging.getLogger("otmetka.mail")

Advance = Callable[[int], None]
ProgressBar = Callable[[str, int], AbstractContextManager[Advance]]
_LAST_DIGEST_RUN = "mail.digest.last_run"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WORK_START, WORK_END = dt.time(9, 0), dt.time(18, 0)
REMIND_BEFORE = dt.timedelta(hours=4)  # of working time left before a breach deadline
ROLES = {"guardian": "родитель", "student": "ученик", "teacher": "учитель"}
NOT_CLAIMED = "not sent now: already sent, or being sent by another process"
NOT_TRIED = "not tried: the batch stopped before it"
BATCH = 50  # letters per SMTP session
MAX_CATCH_UP = dt.timedelta(days=3)  # a digest missed longer ago is not sent late


def _noop(_n: int) -> None:
    return None


def _open_project(config: Config) -> None:
    """Connect and migrate, for the CLI's entry points (imported late: it pulls in the
    whole builder, which the scheduler's hooks never need)."""
    from otmetka.daemon.runtime import open_project

    open_project(config)


def _no_bar(_label: str, _total: int) -> AbstractContextManager[Advance]:
    return nullcontext(_noop)


class MailError(OtmetkaError):
    """Mail could not be sent or queued; the message says what to fix."""


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- queueing ---------------------------------------------------------------------------------


def new_message_id(config: Config) -> str:
    """A fresh Message-ID in the sender's domain, e.g. <...@school.ru>."""
    domain = config.mail.from_addr.rpartition("@")[2] or "otmetka.local"
    return make_msgid(domain=domain)


def queue_letter(config: Config, key: str, letter: Letter, at: dt.datetime) -> bool:
    """Put a letter in the outbox under `key`; False if that key is queued already.

    Call inside a write transaction, with whatever caused the letter.
    """
    payload = letter.payload(new_message_id(config))
    return stored.queue(key, json.dumps(payload, ensure_ascii=False, sort_keys=True), at)


# --- building the message ---------------------------------------------------------------------


_ADDR = r"([^\s@<>,;:\"()\[\]]+)@([^\s@<>,;:\"()\[\]]+)"
_MAILBOX = re.compile(rf"(?:([^<>\r\n]*?)\s*<{_ADDR}>|{_ADDR})")


def _address(text: str) -> Address:
    """«Иванова Мария <maria@example.ru>» or a bare address; anything else (two addresses,
    a line break that would inject a header, a missing part) is refused, not guessed at."""
    match = _MAILBOX.fullmatch(text.strip())
    if match is None:
        raise MailError(f"{text!r} is not one e-mail address like name@school.ru")
    name, user, domain = match.group(1), match.group(2), match.group(3)
    if user is None:
        name, user, domain = "", match.group(4), match.group(5)
    return Address(display_name=(name or "").strip().strip('"'), username=user, domain=domain)


def _payload(item: OutboxEntry) -> dict[str, Any]:
    try:
        payload = json.loads(item.payload)
    except json.JSONDecodeError as error:
        raise MailError(f"outbox item {item.key}: payload is not JSON ({error})") from None
    to = payload.get("to") if isinstance(payload, dict) else None
    if not to or not isinstance(to, list) or not all(isinstance(a, str) for a in to):
        raise MailError(f"outbox item {item.key}: 'to' must be a non-empty list of addresses")
    for name in ("subject", "text"):
        if not isinstance(payload.get(name), str):
            raise MailError(f"outbox item {item.key}: '{name}' must be text")
    return payload


def message_id_of(item: OutboxEntry, payload: Mapping[str, Any]) -> str:
    """The Message-ID stored with the letter: the payload's, else the outbox key itself."""
    value = str(payload.get("message_id") or item.key).strip()
    return value if value.startswith("<") else f"<{value}>"


def build_message(config: Config, item: OutboxEntry) -> EmailMessage:
    """The letter as it goes on the wire; the same bytes (bar attachments) on every try."""
    payload = _payload(item)
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(config.school.name, addr_spec=config.mail.from_addr)
    message["To"] = [_address(a) for a in payload["to"]]
    message["Subject"] = payload["subject"]
    message["Date"] = format_datetime(stored.as_utc(item.created_at or now_utc()))
    message["Message-ID"] = message_id_of(item, payload)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message["Content-Language"] = "ru"
    # base64 keeps Cyrillic 7-bit safe for servers without 8BITMIME, and shorter than QP.
    message.set_content(payload["text"], cte="base64")
    html = payload.get("html") or letters.html_from_text(payload["text"])
    message.add_alternative(html, subtype="html", cte="base64")
    for spec in payload.get("attachments", []):
        _attach(config, message, Attachment(**spec))
    return message


def _attach(config: Config, message: EmailMessage, spec: Attachment) -> None:
    """A file of the built site; a page gone since (login revoked) is left out."""
    root = config.site.output_dir.resolve()
    path = (root / spec.path).resolve()
    if not path.is_relative_to(root):
        raise MailError(f"attachment {spec.path!r} is outside site.output_dir")
    if not path.is_file():
        log.warning("attachment %s is gone (page removed since); sending without it", spec.path)
        return
    maintype, _, subtype = spec.content_type.partition("/")
    message.add_attachment(
        path.read_bytes(), maintype=maintype, subtype=subtype, filename=spec.filename
    )


# --- SMTP -------------------------------------------------------------------------------------


def _tls_context(config: Config) -> ssl.SSLContext:
    """System CAs, or `mail.ca_file` for a school server with its own certificate."""
    ca_file = config.mail.ca_file or None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise MailError(
            f"mail.ca_file {ca_file}: cannot load it ({error}); give a PEM file of CA "
            "certificates, or leave it empty to trust the system's"
        ) from None


def _credentials(config: Config, env: Mapping[str, str]) -> tuple[str, str] | None:
    mail = config.mail
    user = env.get(mail.username_env, "")
    if not user:
        return None
    password = env.get(mail.password_env, "")
    if not password:
        raise MailError(
            f"{mail.username_env} is set but {mail.password_env} is empty: "
            "export the SMTP password, or unset the user to send without login"
        )
    return user, password


def _open(config: Config) -> smtplib.SMTP:
    mail = config.mail
    if mail.security == "ssl":
        return smtplib.SMTP_SSL(
            mail.smtp_host, mail.smtp_port, timeout=mail.timeout_s, context=_tls_context(config)
        )
    smtp = smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=mail.timeout_s)
    try:
        if mail.security == "starttls":
            smtp.starttls(context=_tls_context(config))
    except BaseException:
        smtp.close()
        raise
    return smtp


@contextmanager
def smtp_session(config: Config, env: Mapping[str, str] | None = None) -> Iterator[smtplib.SMTP]:
    """A connected, logged-in SMTP client; MailError when the server cannot be used."""
    mail = config.mail
    where = f"SMTP server {mail.smtp_host}:{mail.smtp_port} ({mail.security})"
    login = _credentials(config, os.environ if env is None else env)
    try:
        smtp = _open(config)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"cannot reach the {where}: {_why(error)}") from None
    try:
        if login is not None:
            _login(smtp, config, login)
        yield smtp
    finally:
        _quit(smtp)


def _login(smtp: smtplib.SMTP, config: Config, login: tuple[str, str]) -> None:
    # The user name and password never go into a message or a log line.
    mail = config.mail
    if mail.security == "plain":
        log.warning("logging in to %s without TLS: the password crosses in clear", mail.smtp_host)
    try:
        smtp.login(*login)
    except smtplib.SMTPAuthenticationError as error:
        raise MailError(
            f"the SMTP server refused the login from {mail.username_env}/{mail.password_env} "
            f"(code {error.smtp_code}); check both variables"
        ) from None
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"SMTP login failed: {_why(error)}") from None


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _why(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error
        reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return f"{error.smtp_code} {reply}".strip()
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "every recipient refused: " + ", ".join(
            f"{addr} ({code})" for addr, (code, _) in sorted(error.recipients.items())
        )
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# --- sending ----------------------------------------------------------------------------------

# Errors after which the connection cannot be trusted for the next letter.
_CONNECTION_LOST = (smtplib.SMTPServerDisconnected, OSError)


def _send_one(
    config: Config, smtp: smtplib.SMTP, item: OutboxEntry, now: dt.datetime | None
) -> outbox.Delivery:
    """Send one letter and mark it done at once; a refusal is returned, not raised."""
    try:
        message = build_message(config, item)
    except (MailError, ValueError, TypeError) as error:
        return outbox.Delivery(False, f"letter cannot be built: {error}")
    started = now or now_utc()
    busy_since = started - 2 * dt.timedelta(seconds=config.mail.timeout_s)
    with write_transaction():
        claimed = stored.start_sending(item.id, started, busy_since)
    if not claimed:
        return outbox.Delivery(False, NOT_CLAIMED)
    try:
        refused = smtp.send_message(message)
    except smtplib.SMTPServerDisconnected:
        raise
    except smtplib.SMTPException as error:  # this letter refused; the session goes on
        return outbox.Delivery(False, _why(error))
    # Right after the 250: the only window in which a crash makes a duplicate.
    note = "; ".join(f"refused {a}: {c}" for a, (c, _) in sorted(refused.items()))
    with write_transaction():
        stored.mark_sent(item.id, now or now_utc(), note)
    return outbox.Delivery(True)


def send_mail(
    config: Config,
    items: list[OutboxEntry],
    stop: threading.Event,
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, outbox.Delivery]:
    """The outbox sender for kind "mail": one SMTP session for the batch.

    No connection means the letters wait untouched (SenderUnavailable: the line is down,
    not the letters' fault, so they are tried again at the next flush without backoff).
    """
    if not config.mail.enabled:
        raise outbox.SenderUnavailable("mail.enabled is false in the configuration")
    try:
        with smtp_session(config, env) as smtp:
            return _send_all(config, smtp, items, stop, now)
    except MailError as error:
        with write_transaction():
            stored.note_unreachable([item.id for item in items], str(error))
        raise outbox.SenderUnavailable(str(error)) from None


def _send_all(
    config: Config,
    smtp: smtplib.SMTP,
    items: list[OutboxEntry],
    stop: threading.Event,
    now: dt.datetime | None,
) -> dict[str, outbox.Delivery]:
    outcome: dict[str, outbox.Delivery] = {}
    for index, item in enumerate(items):
        if stop.is_set():
            break
        try:
            outcome[item.key] = _send_one(config, smtp, item, now)
        except _CONNECTION_LOST as error:
            outcome[item.key] = outbox.Delivery(False, f"connection lost: {_why(error)}")
            log.warning("SMTP connection lost after %d of %d letters", index, len(items))
            break
    # Letters not tried: `flush_mail` leaves them as they are; the outbox's own flush
    # counts them as a failed attempt (its senders must answer for every item).
    for item in items:
        outcome.setdefault(item.key, outbox.Delivery(False, NOT_TRIED))
    return outcome


outbox.register_sender("mail", send_mail, lambda _config: BATCH)


@dataclass
class FlushResult:
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    reason: str = ""
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.reason:
            return f"mail: nothing sent, {self.waiting} letters wait: {self.reason}"
        failed = f", {self.failed} failed and will be retried" if self.failed else ""
        return f"mail: sent {self.sent}{failed}; {self.waiting} letters wait in the outbox"


def flush_mail(
    config: Config,
    *,
    now: dt.datetime | None = None,
    retry_all: bool = False,
    env: Mapping[str, str] | None = None,
) -> FlushResult:
    """Send queued mail now, BATCH letters per SMTP session (servers cap messages per
    connection); `retry_all` also sends letters still waiting out a backoff."""
    moment = now or now_utc()
    items = stored.pending(moment, due_only=not retry_all)
    result = FlushResult()
    for start in range(0, len(items), BATCH):
        if not _flush_batch(config, items[start : start + BATCH], moment, env, result):
            break
    result.waiting = stored.counts(moment)["pending"]
    return result


def _flush_batch(
    config: Config,
    items: list[OutboxEntry],
    moment: dt.datetime,
    env: Mapping[str, str] | None,
    result: FlushResult,
) -> bool:
    """One session's worth; False when the rest should wait (no line, connection lost)."""
    longest = dt.timedelta(minutes=config.schedule.outbox_retry_max_minutes)
    try:
        outcome = send_mail(config, items, threading.Event(), env, moment)
    except outbox.SenderUnavailable as error:
        result.reason = str(error)
        return False
    failures = {
        item.id: (outcome[item.key].error, outbox.next_try(item.attempts, moment, longest))
        for item in items
        if outcome[item.key].error not in ("", NOT_CLAIMED, NOT_TRIED)
    }
    outbox_db.mark_failed(failures)
    result.sent += sum(1 for d in outcome.values() if d.ok)
    result.failed += len(failures)
    result.errors += [d.error for d in outcome.values() if d.error]
    return not any(d.error == NOT_TRIED for d in outcome.values())


def mail_flush(config: Config, *, env: Mapping[str, str] | None = None) -> FlushResult:
    """`otmetka mail flush`: send everything queued now, backoff or not.

    Raises MailError when letters wait and none could be tried (mail off, no line).
    """
    _open_project(config)
    result = flush_mail(config, retry_all=True, env=env)
    if result.reason and result.waiting:
        raise MailError(result.summary())
    return result


# --- status -----------------------------------------------------------------------------------


def _local(config: Config, value: Any) -> str:
    return f"{stored.as_utc(value).astimezone(config.school.zone()):%Y-%m-%d %H:%M}"


def _kind_of(key: str) -> str:
    prefix = key.partition(":")[0]
    return {"intro": "intro", "digest": "digest", "breach-reminder": "reminder"}.get(
        prefix, "notice"
    )


def _row_line(config: Config, row: stored.QueuedMail) -> str:
    try:
        payload = json.loads(row.payload)
        to, subject = list(payload.get("to", [])), str(payload.get("subject", ""))
    except (json.JSONDecodeError, AttributeError):
        to, subject = [], "(unreadable payload)"
    first = parseaddr(to[0])[1] if to else "?"
    more = f" +{len(to) - 1}" if len(to) > 1 else ""
    error = f"; last error: {row.last_error}" if row.last_error else ""
    return (
        f"  #{row.id} {_kind_of(row.key)} to {first}{more} «{subject}»: "
        f"attempts {row.attempts}, next try {_local(config, row.next_try)}{error}"
    )


def status_lines(config: Config, now: dt.datetime, limit: int = 20) -> list[str]:
    """What `otmetka mail status` prints: the switch, counts, each waiting letter."""
    mail = config.mail
    counts = stored.counts(now)
    state = (
        f"enabled, {mail.smtp_host}:{mail.smtp_port} ({mail.security})"
        if mail.enabled
        else "disabled (mail.enabled: false): letters are queued, not sent"
    )
    last = stored.last_sent()
    lines = [
        f"mail: {state}",
        f"pending: {counts['pending']} (due now {counts['due']}, "
        f"tried and failed {counts['failing']}); sent: {counts['sent']}"
        + (f", last at {_local(config, last.done_at)}" if last and last.done_at else ""),
    ]
    rows = stored.unsent_rows(limit)
    lines += [_row_line(config, row) for row in rows]
    if counts["pending"] > len(rows):
        lines.append(f"  … and {counts['pending'] - len(rows)} more")
    return lines


def mail_status(config: Config) -> list[str]:
    """`otmetka mail status`."""
    _open_project(config)
    return status_lines(config, now_utc())


# --- the introduction letter ------------------------------------------------------------------


@dataclass
class QueueResult:
    what: str
    queued: int = 0
    already: int = 0
    no_address: int = 0
    refused: int = 0
    skipped: list[str] = field(default_factory=list)
    mail_enabled: bool = True

    def summary(self) -> str:
        parts = [f"{self.what}: queued {self.queued}"]
        if self.already:
            parts.append(f"{self.already} had it already")
        if self.no_address:
            parts.append(f"{self.no_address} without an e-mail address")
        if self.refused:
            parts.append(f"{self.refused} refused consent (not written to)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped ({'; '.join(self.skipped[:3])})")
        if not self.mail_enabled:
            parts.append("mail.enabled is false, so they wait in the outbox")
        return "; ".join(parts)


def _reachable(guardian_ids: set[str], result: QueueResult) -> dict[str, stored.GuardianContact]:
    """Guardians' contacts with a usable address; the others are counted in `result`."""
    contacts = stored.guardian_contacts(guardian_ids)
    result.no_address += len(guardian_ids - set(contacts))
    for gid, contact in sorted(contacts.items()):
        try:
            _address(contact.email)
        except MailError:
            result.skipped.append(f"guardian {gid}: address «{contact.email}» is not valid")
            del contacts[gid]
    return contacts


def _class_filter(class_name: str | None) -> str | None:
    if class_name is None:
        return None
    class_id = stored_credentials.class_id_by_name(class_name)
    if class_id is None:
        raise MailError(f"no class named «{class_name}»; `otmetka status` lists the classes")
    return class_id


def _families(today: dt.date, lookup: v.Lookup, class_id: str | None) -> dict[str, list[ChildLine]]:
    """Guardian -> their children on roll (of the class, if given), as the intro names them."""
    students = {s.id: s for s in q.active_students(today)}
    families: dict[str, list[ChildLine]] = {}
    for guardian, student_id in q.guardians_with_children(today):
        student = students.get(student_id)
        if student is None or (class_id and student.class_unit_id != class_id):
            continue
        row = lookup.classes.get(student.class_unit_id)
        line = ChildLine(
            v.full_name(student.last_name, student.first_name),
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
    lookup = v.Lookup.build(q.reference(), today)
    families = _families(today, lookup, _class_filter(class_name))
    refused = {
        g for g, s in stored_events.consent_states().items() if s in ("refused", "withdrawn")
    }
    result = QueueResult("introduction letters", mail_enabled=config.mail.enabled)
    result.refused = len(set(families) & refused)
    contacts = _reachable(set(families) - refused, result)
    states = stored.mail_states(contacts)
    with write_transaction():
        for gid in sorted(contacts):
            state = states.get(gid)
            if state and state.intro_version >= letters.INTRO_VERSION:
                result.already += 1
                continue
            letter = letters.intro_letter(config, contacts[gid], families[gid])
            key = f"intro:{gid}:{letters.INTRO_VERSION}"
            result.queued += queue_letter(config, key, letter, now)
            stored.record_intro(gid, letters.INTRO_VERSION, now)
    return result


def mail_intro(config: Config, class_name: str | None = None) -> QueueResult:
    """`otmetka mail intro [--class 7Б]`."""
    _open_project(config)
    return queue_intro(config, now_utc(), class_name)


# --- the digest -------------------------------------------------------------------------------


@dataclass
class DigestResult(QueueResult):
    nothing_new: int = 0

    def summary(self) -> str:
        line = super().summary()
        return f"{line}; {self.nothing_new} with nothing new" if self.nothing_new else line


def _digest_news(
    roster: render.Roster,
    lookup: v.Lookup,
    states: Mapping[str, stored.MailState],
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
    ref = q.reference()
    lookup = v.Lookup.build(ref, today)
    roster = render.load_roster(today, ref.classes, ref.teachers)
    granted = {g for g, s in stored_events.consent_states().items() if s == "granted"}
    result = DigestResult("digests", mail_enabled=config.mail.enabled)
    contacts = _reachable(set(roster.guardians) & granted, result)
    states = stored.mail_states(contacts)
    pairs = sum(len(roster.children.get(gid, [])) for gid in contacts)
    with bar("digest", pairs) as advance:
        news = _digest_news(roster, lookup, states, sorted(contacts), advance)
    credentials = stored_credentials.active_by_person()
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
    guardian: stored.GuardianContact,
    children: list[letters.ChildNews],
    states: Mapping[str, stored.MailState],
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
        stored.record_digest(guardian.id, now, {k for c in children for k in c.seen})
    else:
        result.already += 1


def _local_date(config: Config, value: Any) -> dt.date:
    return stored.as_utc(value).astimezone(config.school.zone()).date()


def mail_digest(config: Config, bar: ProgressBar = _no_bar) -> DigestResult:
    """`otmetka mail digest`: queue the digest now, whatever the schedule says."""
    _open_project(config)
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
    done = settings.get_setting(_LAST_DIGEST_RUN)
    if done and stored.as_utc(done) >= slot:
        return None
    late = now - slot > MAX_CATCH_UP
    result = queue_digest(config, now) if config.mail.enabled and not late else None
    with write_transaction():
        settings.put_setting(_LAST_DIGEST_RUN, slot.astimezone(dt.UTC).isoformat())
    if result is None:
        why = "too late to send" if late else "mail.enabled is false"
        log.info("digest of %s skipped: %s", slot, why)
    else:
        log.info("%s", result.summary())
    return result


# --- breach reminders -------------------------------------------------------------------------


def _working_days(first: dt.date, last: dt.date) -> set[dt.date]:
    """Monday to Friday except Russian public holidays and the days off moved next to them."""
    off = _public_holidays(tuple(range(first.year, last.year + 1)))
    days = {first + dt.timedelta(days=n) for n in range((last - first).days + 1)}
    return {d for d in days if d.weekday() < 5 and d not in off}


@functools.cache
def _public_holidays(years: tuple[int, ...]) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("RU", years=list(years)))


def working_time_between(start: dt.datetime, end: dt.datetime, config: Config) -> dt.timedelta:
    """Working hours (09:00–18:00 of working days, school time) from `start` to `end`."""
    if end <= start:
        return dt.timedelta(0)
    zone = config.school.zone()
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    if (last - first).days > 60:  # a deadline this far away is not near
        return dt.timedelta(days=60)
    total = dt.timedelta(0)
    for day in sorted(_working_days(first, last)):
        opens = dt.datetime.combine(day, WORK_START, tzinfo=zone)
        closes = dt.datetime.combine(day, WORK_END, tzinfo=zone)
        total += max(dt.timedelta(0), min(closes, end) - max(opens, start))
    return total


def breach_stage(breach: BreachDeadline, now: dt.datetime, config: Config) -> str | None:
    """ "overdue" past the deadline, "nearing" within REMIND_BEFORE working hours of it."""
    if now >= breach.deadline:
        return "overdue"
    if working_time_between(now, breach.deadline, config) <= REMIND_BEFORE:
        return "nearing"
    return None


def open_breach_deadlines() -> list[BreachDeadline]:
    """Open reports of the breach register, as the reminders need them."""
    reports = stored_events.breaches()
    people = [(r.credential.person_kind, r.credential.person_id) for r in reports]
    labels = stored_credentials.labels_of(people)
    found = []
    for report, key in zip(reports, people, strict=True):
        name, class_name = labels.get(key, ("", ""))
        who = ", ".join(part for part in (name, class_name) if part)
        role = ROLES.get(key[0], key[0])
        found.append(
            BreachDeadline(
                report_id=str(report.get_id()),
                received_at=stored.as_utc(report.received_at),
                deadline=stored.as_utc(report.deadline),
                about=f"логин {report.credential.login}, {role}" + (f": {who}" if who else ""),
            )
        )
    return found


def check_breach_deadlines(config: Config, now: dt.datetime) -> QueueResult:
    """Scheduler hook: remind the head of school and support of reports near or past their
    deadline; once per report and stage, however often it is called."""
    school = config.school
    recipients = [a for a in (school.head_email, school.support_email) if a]
    result = QueueResult("breach reminders", mail_enabled=config.mail.enabled)
    due = [(b, breach_stage(b, now, config)) for b in open_breach_deadlines()]
    due = [(b, stage) for b, stage in due if stage is not None]
    if due and not recipients:
        result.skipped.append("school.head_email and school.support_email are both empty")
        log.error("breach reminders not queued: %s", result.skipped[0])
        return result
    with write_transaction():
        for breach, stage in due:
            assert stage is not None
            left = working_time_between(now, breach.deadline, config)
            letter = letters.breach_reminder_letter(config, breach, stage, left, recipients)
            key = f"breach-reminder:{breach.report_id}:{stage}"
            if queue_letter(config, key, letter, now):
                result.queued += 1
            else:
                result.already += 1
    return result


# --- adapters for the scheduler's register_deadline_check ---------------------------------------


def breach_reminder_check(config: Config) -> str | None:
    """Queue the reminders due now; a line for the log, None when there were none.

    Raises when reminders are due and nobody can receive them, so the daemon's status
    shows the failing job instead of a silent log line.
    """
    result = check_breach_deadlines(config, now_utc())
    if result.skipped:
        raise MailError(result.summary())
    return result.summary() if result.queued else None


def digest_check(config: Config) -> str | None:
    """Queue the week's digest when its moment has come; None at every other call."""
    result = run_scheduled_digest(config, now_utc())
    return result.summary() if result is not None else None


def _register_scheduled_checks() -> None:
    from otmetka.daemon.runner import scheduler

    scheduler.register_deadline_check("breach reminders", breach_reminder_check)
    scheduler.register_deadline_check("weekly digest", digest_check)


_register_scheduled_checks()

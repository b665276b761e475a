"""Mail through the offline outbox: queue letters, build them, send them over SMTP, report the
queue.

Letters are outbox rows of kind "mail" (payload: docs/mail.md). They are queued in the
same transaction as whatever caused them and sent later, by `otmetka.daemon.mail.outbox.flush`
(with `send_mail` registered as the sender of kind "mail") or by `otmetka mail flush`.

Delivery is at least once to the SMTP server, with one Message-ID per letter: the
Message-ID is chosen when the letter is queued and stored in the row, and the row is
marked done right after the server's 250 reply to DATA. A crash between that reply and
the mark sends the same message again with the same Message-ID, so a duplicate is
recognisable; SMTP has no way to ask a server whether it already took a message, so no
client can do better (docs/mail.md explains).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import smtplib
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from otmetka.daemon.core.config import Config
from otmetka.daemon.core.delivery import Delivery, SenderUnavailable
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.mail import letters, outbox
from otmetka.daemon.mail.letters import Attachment, Letter
from otmetka.db import mail as mail_db
from otmetka.db import outbox as sync_db
from otmetka.db import write_transaction
from otmetka.db.outbox import OutboxEntry

log = logging.getLogger("otmetka.mail")

NOT_CLAIMED = "not sent now: already sent, or being sent by another process"
NOT_TRIED = "not tried: the batch stopped before it"
BATCH = 50  # letters per SMTP session


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
    return mail_db.queue(key, json.dumps(payload, ensure_ascii=False, sort_keys=True), at)


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


# --- building the message ---------------------------------------------------------------------


_ADDR = r"([^\s@<>,;:\"()\[\]]+)@([^\s@<>,;:\"()\[\]]+)"
_MAILBOX = re.compile(rf"(?:([^<>\r\n]*?)\s*<{_ADDR}>|{_ADDR})")


def parse_address(text: str) -> Address:
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
    message["To"] = [parse_address(a) for a in payload["to"]]
    message["Subject"] = payload["subject"]
    message["Date"] = format_datetime(mail_db.as_utc(item.created_at or now_utc()))
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
) -> Delivery:
    """Send one letter and mark it done at once; a refusal is returned, not raised."""
    try:
        message = build_message(config, item)
    except (MailError, ValueError, TypeError) as error:
        return Delivery(False, f"letter cannot be built: {error}")
    started = now or now_utc()
    busy_since = started - 2 * dt.timedelta(seconds=config.mail.timeout_s)
    with write_transaction():
        claimed = mail_db.start_sending(item.id, started, busy_since)
    if not claimed:
        return Delivery(False, NOT_CLAIMED)
    try:
        refused = smtp.send_message(message)
    except smtplib.SMTPServerDisconnected:
        raise
    except smtplib.SMTPException as error:  # this letter refused; the session goes on
        return Delivery(False, _why(error))
    # Right after the 250: the only window in which a crash makes a duplicate.
    note = "; ".join(f"refused {a}: {c}" for a, (c, _) in sorted(refused.items()))
    with write_transaction():
        mail_db.mark_sent(item.id, now or now_utc(), note)
    return Delivery(True)


def send_mail(
    config: Config,
    items: list[OutboxEntry],
    stop: threading.Event,
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Delivery]:
    """The outbox sender for kind "mail": one SMTP session for the batch.

    No connection means the letters wait untouched (SenderUnavailable: the line is down,
    not the letters' fault, so they are tried again at the next flush without backoff).
    """
    if not config.mail.enabled:
        raise SenderUnavailable("mail.enabled is false in the configuration")
    try:
        with smtp_session(config, env) as smtp:
            return _send_all(config, smtp, items, stop, now)
    except MailError as error:
        with write_transaction():
            mail_db.note_unreachable([item.id for item in items], str(error))
        raise SenderUnavailable(str(error)) from None


def _send_all(
    config: Config,
    smtp: smtplib.SMTP,
    items: list[OutboxEntry],
    stop: threading.Event,
    now: dt.datetime | None,
) -> dict[str, Delivery]:
    outcome: dict[str, Delivery] = {}
    for index, item in enumerate(items):
        if stop.is_set():
            break
        try:
            outcome[item.key] = _send_one(config, smtp, item, now)
        except _CONNECTION_LOST as error:
            outcome[item.key] = Delivery(False, f"connection lost: {_why(error)}")
            log.warning("SMTP connection lost after %d of %d letters", index, len(items))
            break
    # Letters not tried: `flush_mail` leaves them as they are; the outbox's own flush
    # counts them as a failed attempt (its senders must answer for every item).
    for item in items:
        outcome.setdefault(item.key, Delivery(False, NOT_TRIED))
    return outcome


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
    items = mail_db.pending(moment, due_only=not retry_all)
    result = FlushResult()
    for start in range(0, len(items), BATCH):
        if not _flush_batch(config, items[start : start + BATCH], moment, env, result):
            break
    result.waiting = mail_db.counts(moment)["pending"]
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
    except SenderUnavailable as error:
        result.reason = str(error)
        return False
    failures = {
        item.id: (outcome[item.key].error, outbox.next_try(item.attempts, moment, longest))
        for item in items
        if outcome[item.key].error not in ("", NOT_CLAIMED, NOT_TRIED)
    }
    sync_db.mark_failed(failures)
    result.sent += sum(1 for d in outcome.values() if d.ok)
    result.failed += len(failures)
    result.errors += [d.error for d in outcome.values() if d.error]
    return not any(d.error == NOT_TRIED for d in outcome.values())


def mail_flush(config: Config, *, env: Mapping[str, str] | None = None) -> FlushResult:
    """`otmetka mail flush`: send everything queued now, backoff or not.

    Raises MailError when letters wait and none could be tried (mail off, no line).
    """
    result = flush_mail(config, retry_all=True, env=env)
    if result.reason and result.waiting:
        raise MailError(result.summary())
    return result


# --- status -----------------------------------------------------------------------------------


def _local(config: Config, value: Any) -> str:
    return f"{mail_db.as_utc(value).astimezone(config.school.zone()):%Y-%m-%d %H:%M}"


def _kind_of(key: str) -> str:
    prefix = key.partition(":")[0]
    return {"intro": "intro", "digest": "digest", "breach-reminder": "reminder"}.get(
        prefix, "notice"
    )


def _row_line(config: Config, row: mail_db.QueuedMail) -> str:
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
    counts = mail_db.counts(now)
    state = (
        f"enabled, {mail.smtp_host}:{mail.smtp_port} ({mail.security})"
        if mail.enabled
        else "disabled (mail.enabled: false): letters are queued, not sent"
    )
    last = mail_db.last_sent()
    lines = [
        f"mail: {state}",
        f"pending: {counts['pending']} (due now {counts['due']}, "
        f"tried and failed {counts['failing']}); sent: {counts['sent']}"
        + (f", last at {_local(config, last.done_at)}" if last and last.done_at else ""),
    ]
    rows = mail_db.unsent_rows(limit)
    lines += [_row_line(config, row) for row in rows]
    if counts["pending"] > len(rows):
        lines.append(f"  … and {counts['pending'] - len(rows)} more")
    return lines


def mail_status(config: Config) -> list[str]:
    """`otmetka mail status`."""
    return status_lines(config, now_utc())

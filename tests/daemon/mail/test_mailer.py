"""The mailer against a real SMTP server (aiosmtpd on loopback): encoding, the outbox
across a dead line, a crash after the server's 250, TLS and login, the status command,
breach reminders and the digest schedule."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.header import decode_header, make_header
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otmetka.daemon.cli.main import main
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.mail import letters, mailer, outbox
from otmetka.db import close_database, migrate, models, open_database
from otmetka.db import mail as stored
from otmetka.db import outbox as outbox_db
from tests.support.page_factories import page_school
from tests.support.servers import free_port, parse, smtp_server

MOSCOW = dt.timezone(dt.timedelta(hours=3))
NOW = dt.datetime(2026, 9, 18, 12, 0, tzinfo=dt.UTC)


# --- a real SMTP server -----------------------------------------------------------------------


def decoded(raw: bytes, header: str) -> str:
    """A header decoded as RFC 2047 says: white space between encoded words is dropped.

    (Python's own address parser keeps it, and would read a long Cyrillic name folded
    into two encoded words as «Пе тровна»; mail clients do not.)
    """
    legacy = email.message_from_bytes(raw, policy=compat32)
    return str(make_header(decode_header(str(legacy[header]))))


def make_config(project_dir: Path, port: int, **mail: Any) -> Config:
    data = {
        "site": {"kdf_iterations": 100_000},
        "school": {
            "head_email": "head@school.ru",
            "support_email": "it@school.ru",
            "mirror_url": "https://mirror.example.ru/",
            "lan_url": "http://school.lan/",
        },
        "mail": {"enabled": True, "smtp_port": port, **mail},
    }
    return config_from_dict(data, base_dir=project_dir, env={})


def write_config_file(project_dir: Path, port: int, **mail: Any) -> Path:
    lines = [
        "site:",
        "  kdf_iterations: 100000",
        "mail:",
        "  enabled: true",
        f"  smtp_port: {port}",
    ]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in mail.items()]
    path = project_dir / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def school_db(project_dir: Path) -> Iterator[Path]:
    """The page school in a real SQLite file under the project folder."""
    config = make_config(project_dir, 25)
    open_database(config.database.url)
    migrate()
    import_document(page_school(), "school.json", MarkRules())
    yield project_dir
    close_database()


def queue_plain(config: Config, key: str, **fields: Any) -> None:
    letter = letters.Letter(
        to=fields.get("to", ("Иванова-Крылова Мария Петровна <maria@example.ru>",)),
        subject=fields.get("subject", "Проверка: «кириллица» в теме письма №1"),
        text=fields.get("text", "Здравствуйте!\n\nЭто проверка.\n"),
    )
    with open_write():
        mailer.queue_letter(config, key, letter, NOW)


@contextmanager
def open_write() -> Iterator[None]:
    from otmetka.db import write_transaction

    with write_transaction():
        yield


def row(key: str) -> models.OutboxItem:
    item = stored.by_key(key)
    assert item is not None
    return item


# --- encoding ---------------------------------------------------------------------------------


def test_cyrillic_letter_arrives_intact(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        queue_plain(config, "t:1")
        result = mailer.flush_mail(config, now=NOW)
    assert (result.sent, result.failed) == (1, 0)
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "noreply@school.local"
    assert envelope.rcpt_tos == ["maria@example.ru"]
    raw = envelope.content
    raw.decode("ascii")  # every header encoded, every body base64: 7-bit clean
    message = parse(raw)
    assert message["Subject"] == "Проверка: «кириллица» в теме письма №1"
    assert decoded(raw, "To") == "Иванова-Крылова Мария Петровна <maria@example.ru>"
    assert message["From"].addresses[0].display_name == "Демонстрационная школа №1"
    assert message["Auto-Submitted"] == "auto-generated"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == "Здравствуйте!\n\nЭто проверка.\n"
    assert "<p>Здравствуйте!</p>" in html.get_content()
    # The Message-ID on the wire is the one stored when the letter was queued.
    stored_id = json.loads(row("t:1").payload)["message_id"]
    assert message["Message-ID"] == stored_id
    assert row("t:1").done_at is not None


def test_endpoint_style_notice_gets_its_key_as_message_id(school_db: Path) -> None:
    """The endpoint queues breach notices as {to, subject, text} keyed by the Message-ID."""
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        with open_write():
            outbox_db.enqueue(
                "mail",
                "<breach-17@school.local>",
                {
                    "to": ["head@school.ru", "it@school.ru"],
                    "subject": "Сообщение об утечке логина",
                    "text": "Получено сообщение <b>№ 17</b>.",
                },
            )
        # Sent through the outbox's own flush, by the sender the mailer registered.
        result = outbox.flush(config)
    assert "mail" in outbox.registered_kinds()
    assert result.sent == 1
    [message] = inbox.messages
    assert message["Message-ID"] == "<breach-17@school.local>"
    assert sorted(inbox.envelopes[0].rcpt_tos) == ["head@school.ru", "it@school.ru"]
    html = message.get_body(("html",))
    assert html is not None and "&lt;b&gt;№ 17&lt;/b&gt;" in html.get_content()


def test_header_injection_is_refused_and_named(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        queue_plain(config, "t:bad", to=("x@example.ru\r\nBcc: all@example.ru",))
        queue_plain(config, "t:good")
        result = mailer.flush_mail(config, now=NOW)
    assert (result.sent, result.failed) == (1, 1)
    assert len(inbox.envelopes) == 1
    bad = row("t:bad")
    assert bad.done_at is None and bad.attempts == 1
    assert "letter cannot be built" in bad.last_error
    assert "is not one e-mail address" in bad.last_error


# --- the dead line ----------------------------------------------------------------------------


def test_server_down_letter_waits_then_goes_exactly_once(
    school_db: Path, runner: CliRunner
) -> None:
    port = free_port()  # nothing listens here yet
    config = make_config(school_db, port)
    queue_plain(config, "t:1")
    down = mailer.flush_mail(config, now=NOW)
    assert down.sent == 0 and "cannot reach the SMTP server" in down.reason
    waiting = row("t:1")
    assert waiting.done_at is None
    assert waiting.attempts == 0  # a dead line is not the letter's fault: no backoff
    assert "Connection refused" in waiting.last_error or "Errno" in waiting.last_error

    config_path = write_config_file(school_db, port)
    status = runner.invoke(main, ["--config", str(config_path), "mail", "status"])
    assert status.exit_code == 0, status.output
    assert "pending: 1 (due now 1" in status.output
    assert "attempts 0" in status.output and "cannot reach the SMTP server" in status.output
    assert "next try 2026-09-18 15:00" in status.output  # school time, Moscow

    flush = runner.invoke(main, ["--config", str(config_path), "mail", "flush"])
    assert flush.exit_code == 1 and "cannot reach the SMTP server" in flush.output

    with smtp_server(port) as (_, inbox):
        up = mailer.flush_mail(config, now=NOW + dt.timedelta(minutes=5))
        again = mailer.flush_mail(config, now=NOW + dt.timedelta(minutes=10))
        cli_again = runner.invoke(main, ["--config", str(config_path), "mail", "flush"])
    assert (up.sent, again.sent) == (1, 0)
    assert cli_again.exit_code == 0 and "sent 0" in cli_again.output
    assert len(inbox.envelopes) == 1
    status = runner.invoke(main, ["--config", str(config_path), "mail", "status"])
    assert "pending: 0" in status.output and "sent: 1" in status.output


def test_crash_after_the_250_resends_with_the_same_message_id(
    school_db: Path, tmp_path: Path
) -> None:
    """A real `otmetka mail flush` is killed the moment the server has the message: the
    retry sends it again, and the duplicate carries the same Message-ID (docs/mail.md)."""
    with smtp_server() as (port, inbox):
        config_path = write_config_file(school_db, port)
        config = make_config(school_db, port)
        queue_plain(config, "t:crash")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTMETKA_")}
        command = [sys.executable, "-c", "from otmetka.daemon.cli.main import main; main()"]
        ready = threading.Event()
        victim: list[subprocess.Popen[bytes]] = []

        def kill_the_sender() -> None:
            ready.wait(10)
            victim[0].send_signal(signal.SIGKILL)
            victim[0].wait(10)  # dead before the 250 leaves the server

        inbox.on_data = kill_the_sender
        proc = subprocess.Popen(
            [*command, "--config", str(config_path), "mail", "flush"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        victim.append(proc)
        ready.set()
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        crashed = row("t:crash")
        assert crashed.done_at is None and crashed.last_error.startswith(stored.SENDING)

        inbox.on_data = None
        # Right after the crash the row counts as in flight; later it is retried.
        soon = mailer.flush_mail(config, now=dt.datetime.now(dt.UTC), retry_all=True)
        later = mailer.flush_mail(config, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    assert soon.sent == 0 and later.sent == 1
    first, second = inbox.messages
    assert first["Message-ID"] == second["Message-ID"]
    assert row("t:crash").done_at is not None


def test_refused_recipient_backs_off_and_the_rest_go(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        inbox.refuse.add("gone@example.ru")
        config = make_config(school_db, port)
        queue_plain(config, "t:gone", to=("gone@example.ru",))
        queue_plain(config, "t:ok")
        first = mailer.flush_mail(config, now=NOW)
        soon = mailer.flush_mail(config, now=NOW + dt.timedelta(seconds=30))
    assert (first.sent, first.failed, soon.sent, soon.failed) == (1, 1, 0, 0)
    gone = row("t:gone")
    assert gone.attempts == 1 and "550" in gone.last_error
    assert stored.as_utc(gone.next_try) == NOW + dt.timedelta(minutes=1)
    assert [e.rcpt_tos for e in inbox.envelopes] == [["maria@example.ru"]]


def test_disabled_mail_is_queued_not_sent(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port, enabled=False)
        queue_plain(config, "t:1")
        result = mailer.flush_mail(config, now=NOW)
    assert result.sent == 0 and "mail.enabled is false" in result.summary()
    assert inbox.envelopes == [] and row("t:1").attempts == 0


# --- TLS and login ----------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "otmetka test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


LOGIN = {"OTMETKA_SMTP_USER": "school-robot", "OTMETKA_SMTP_PASSWORD": "s3cret-pass"}


def test_starttls_with_login(school_db: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = server_context(cert, key)
    with smtp_server(tls_context=tls, require_starttls=True, authenticator=True) as (port, inbox):
        config = make_config(school_db, port, security="starttls", ca_file=str(cert))
        queue_plain(config, "t:1")
        result = mailer.flush_mail(config, now=NOW, env=LOGIN)
    assert result.sent == 1 and len(inbox.envelopes) == 1
    assert inbox.logins == [(b"school-robot", b"s3cret-pass")]


def test_implicit_ssl_with_login(school_db: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with smtp_server(
        ssl_context=server_context(cert, key), authenticator=True, auth_require_tls=False
    ) as (port, inbox):
        config = make_config(school_db, port, security="ssl", ca_file=str(cert))
        queue_plain(config, "t:1")
        result = mailer.flush_mail(config, now=NOW, env=LOGIN)
    assert result.sent == 1 and inbox.logins == [(b"school-robot", b"s3cret-pass")]


def test_untrusted_certificate_is_refused(school_db: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with smtp_server(tls_context=server_context(cert, key), require_starttls=True) as (port, inbox):
        config = make_config(school_db, port, security="starttls")  # system CAs only
        queue_plain(config, "t:1")
        result = mailer.flush_mail(config, now=NOW)
    assert result.sent == 0 and "CERTIFICATE_VERIFY_FAILED" in result.reason
    assert inbox.envelopes == [] and "CERTIFICATE_VERIFY_FAILED" in row("t:1").last_error


def test_wrong_password_says_which_variables_and_never_the_secret(
    school_db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = self_signed(tmp_path)
    tls = server_context(cert, key)
    wrong = {"OTMETKA_SMTP_USER": "school-robot", "OTMETKA_SMTP_PASSWORD": "wrong-guess-42"}
    with smtp_server(tls_context=tls, require_starttls=True, authenticator=True) as (port, inbox):
        config = make_config(school_db, port, security="starttls", ca_file=str(cert))
        queue_plain(config, "t:1")
        result = mailer.flush_mail(config, now=NOW, env=wrong)
    assert inbox.envelopes == []
    assert "OTMETKA_SMTP_USER/OTMETKA_SMTP_PASSWORD" in result.reason
    everything = result.reason + row("t:1").last_error + caplog.text
    assert "wrong-guess-42" not in everything and "school-robot" not in everything


def test_user_without_password_is_a_clear_error(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        queue_plain(config, "t:1")
        result = mailer.flush_mail(config, now=NOW, env={"OTMETKA_SMTP_USER": "robot"})
    assert "OTMETKA_SMTP_PASSWORD is empty" in result.reason and inbox.envelopes == []


# --- breach reminders -------------------------------------------------------------------------


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """As the endpoint stores times in the breach register."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def add_breach(report_at: dt.datetime, deadline: dt.datetime, *, state: str = "open") -> str:
    """A breach report as the endpoint leaves it: event, revoked credential, register row."""
    report_at, deadline = utc_naive(report_at), utc_naive(deadline)
    credential = models.Credential.create(
        login=f"leak{models.Credential.select().count()}",
        person_kind="guardian",
        person_id="g-1",
        page_id=f"page{models.Credential.select().count()}",
        salt=b"0123456789abcdef",
        derived_key=b"k" * 32,
        kdf_iterations=100_000,
        token_hash=f"hash{models.Credential.select().count()}",
        state="revoked",
        issued_at=report_at,
    )
    event = models.Event.create(
        event_id=f"ev-{credential.login}",
        kind="breach_report",
        credential=credential,
        guardian_id="g-1",
        channel="electronic",
        payload="{}",
        response="{}",
        occurred_at=report_at,
        received_at=report_at,
    )
    report = models.BreachReport.create(
        event=event,
        credential=credential,
        received_at=report_at,
        deadline=deadline,
        state=state,
    )
    return str(report.get_id())


def msk(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=MOSCOW)


def test_working_time_skips_nights_weekends_and_holidays(school_db: Path) -> None:
    config = make_config(school_db, 25)
    between = mailer.working_time_between
    # Friday 15:00 to Monday 10:00: three hours on Friday, one on Monday.
    assert between(msk(6, 15), msk(9, 10), config) == dt.timedelta(hours=4)
    # Tuesday 17:00 to Thursday 10:00 across 4 November (Unity Day, a public holiday).
    assert between(msk(3, 17), msk(5, 10), config) == dt.timedelta(hours=2)
    assert between(msk(9, 10), msk(6, 15), config) == dt.timedelta(0)


def test_breach_reminders_once_per_stage(school_db: Path) -> None:
    config = make_config(school_db, 25)
    report = add_breach(msk(5, 16), msk(6, 18))  # Thursday 16:00, deadline Friday 18:00
    add_breach(msk(5, 16), msk(6, 18), state="closed")
    check = mailer.check_breach_deadlines
    assert check(config, msk(6, 13, 59)).queued == 0  # 4 h 1 min of work left
    assert check(config, msk(6, 14)).queued == 1  # nearing
    assert check(config, msk(6, 15)).queued == 0  # already reminded
    assert check(config, msk(6, 18)).queued == 1  # overdue
    assert check(config, msk(9, 9)).queued == 0
    keys = [r.key for r in models.OutboxItem.select().order_by(models.OutboxItem.created_at)]
    assert keys == [f"breach-reminder:{report}:nearing", f"breach-reminder:{report}:overdue"]
    with smtp_server() as (port, inbox):
        mailer.flush_mail(make_config(school_db, port), now=msk(9, 10))
    subjects = {str(m["Subject"]).split(":")[1].split("(")[0].strip(): m for m in inbox.messages}
    nearing, overdue = subjects["срок рассмотрения истекает"], subjects["срок рассмотрения истёк"]
    assert str(nearing["Subject"]).startswith("Утечка логина: срок рассмотрения истекает")
    assert "6 ноября 2026, 18:00" in str(nearing["Subject"])
    text = nearing.get_body(("plain",))
    assert text is not None and "осталось рабочих часов: 4" in text.get_content()
    assert "получено: 5 ноября 2026, 16:00" in text.get_content()
    assert "логин leak0, родитель: Иванова Мария, 7Б" in text.get_content()
    assert f"otmetka breach close --id {report}" in text.get_content()
    overdue_text = overdue.get_body(("plain",))
    assert overdue_text is not None and "не закрыто" in overdue_text.get_content()
    assert sorted(inbox.envelopes[0].rcpt_tos) == ["head@school.ru", "it@school.ru"]


def test_breach_reminders_need_an_address(school_db: Path) -> None:
    config = config_from_dict({"mail": {"enabled": True}}, base_dir=school_db, env={})
    add_breach(msk(5, 16), msk(6, 18))
    result = mailer.check_breach_deadlines(config, msk(6, 18))
    assert result.queued == 0 and "head_email and school.support_email" in result.summary()


# --- the digest schedule ----------------------------------------------------------------------


def test_digest_runs_once_per_scheduled_moment(school_db: Path) -> None:
    config = make_config(school_db, 25)  # friday 18:00 Moscow by default
    models.Event.create(
        event_id="c-1",
        kind="consent",
        guardian_id="g-1",
        channel="electronic",
        payload=json.dumps({"decision": "granted"}),
        response="{}",
        occurred_at=NOW,
        received_at=NOW,
    )
    september = dt.timezone(dt.timedelta(hours=3))

    def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime(2026, 9, day, hour, minute, tzinfo=september)

    assert mailer.digest_slot(config, at(18, 18)) == at(18, 18)
    assert mailer.digest_slot(config, at(18, 17, 59)) == at(11, 18)
    run = mailer.run_scheduled_digest
    assert run(config, at(16, 12)) is None  # installed on Wednesday: last Friday is past
    assert models.OutboxItem.select().count() == 0
    first = run(config, at(18, 18))
    assert first is not None and first.queued == 1
    assert run(config, at(18, 18, 5)) is None
    assert run(config, at(24, 12)) is None
    later = run(config, at(26, 9))  # the server was off on Friday evening: caught up
    assert later is not None
    assert later.queued == 0 and later.nothing_new == 1


def test_schedule_passes_without_mail(school_db: Path) -> None:
    config = make_config(school_db, 25, enabled=False)
    friday = dt.datetime(2026, 9, 18, 18, 0, tzinfo=MOSCOW)
    assert mailer.run_scheduled_digest(config, friday) is None
    enabled = make_config(school_db, 25)
    assert mailer.run_scheduled_digest(enabled, friday + dt.timedelta(hours=1)) is None
    assert models.OutboxItem.select().count() == 0


def test_ca_file_is_relative_to_the_config_file(project_dir: Path) -> None:
    config = config_from_dict({"mail": {"ca_file": "certs/ca.pem"}}, base_dir=project_dir, env={})
    assert config.mail.ca_file == str(project_dir.resolve() / "certs" / "ca.pem")
    assert config_from_dict({}, base_dir=project_dir, env={}).mail.ca_file == ""


def test_a_long_queue_goes_in_several_sessions(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        for n in range(mailer.BATCH + 5):
            queue_plain(config, f"t:{n}", subject=f"Письмо {n}")
        result = mailer.flush_mail(config, now=NOW)
    assert (result.sent, result.waiting) == (mailer.BATCH + 5, 0)
    subjects = sorted(str(m["Subject"]) for m in inbox.messages)
    assert subjects == sorted(f"Письмо {n}" for n in range(mailer.BATCH + 5))


def test_scheduler_adapters(school_db: Path) -> None:
    """The checks the scheduler's register_deadline_check takes: (config) -> line."""
    real_now = dt.datetime.now(dt.UTC)
    add_breach(real_now - dt.timedelta(days=2), real_now - dt.timedelta(hours=1))
    nobody = config_from_dict({"mail": {"enabled": True}}, base_dir=school_db, env={})
    with pytest.raises(mailer.MailError, match=r"head_email and school\.support_email"):
        mailer.breach_reminder_check(nobody)
    config = make_config(school_db, 25)
    assert mailer.breach_reminder_check(config) == "breach reminders: queued 1"
    assert mailer.breach_reminder_check(config) is None
    mailer.digest_check(config)
    assert mailer.digest_check(config) is None  # once per scheduled moment

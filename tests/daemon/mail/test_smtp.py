"""The mailer against a real SMTP server (aiosmtpd on loopback): encoding, the outbox
across a dead line, a crash after the server's 250, TLS and login, the status command,
sessions of BATCH letters."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import config_from_dict
from otmetka.daemon.mail import outbox, smtp
from otmetka.db import mail as mail_db
from otmetka.db import outbox as sync_db
from tests.daemon.mail.mail_support import (
    NOW,
    decoded,
    make_config,
    open_write,
    queue_plain,
    row,
    write_config_file,
)
from tests.support.servers import free_port, parse, smtp_server

# --- encoding ---------------------------------------------------------------------------------


def test_cyrillic_letter_arrives_intact(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        queue_plain(config, "t:1")
        result = smtp.flush_mail(config, now=NOW)
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
            sync_db.enqueue(
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
        result = smtp.flush_mail(config, now=NOW)
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
    down = smtp.flush_mail(config, now=NOW)
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
        up = smtp.flush_mail(config, now=NOW + dt.timedelta(minutes=5))
        again = smtp.flush_mail(config, now=NOW + dt.timedelta(minutes=10))
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
        command = [sys.executable, "-c", "from otmetka.daemon.cli import main; main()"]
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
        assert crashed.done_at is None and crashed.last_error.startswith(mail_db.SENDING)

        inbox.on_data = None
        # Right after the crash the row counts as in flight; later it is retried.
        soon = smtp.flush_mail(config, now=dt.datetime.now(dt.UTC), retry_all=True)
        later = smtp.flush_mail(config, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
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
        first = smtp.flush_mail(config, now=NOW)
        soon = smtp.flush_mail(config, now=NOW + dt.timedelta(seconds=30))
    assert (first.sent, first.failed, soon.sent, soon.failed) == (1, 1, 0, 0)
    gone = row("t:gone")
    assert gone.attempts == 1 and "550" in gone.last_error
    assert mail_db.as_utc(gone.next_try) == NOW + dt.timedelta(minutes=1)
    assert [e.rcpt_tos for e in inbox.envelopes] == [["maria@example.ru"]]


def test_disabled_mail_is_queued_not_sent(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port, enabled=False)
        queue_plain(config, "t:1")
        result = smtp.flush_mail(config, now=NOW)
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
        result = smtp.flush_mail(config, now=NOW, env=LOGIN)
    assert result.sent == 1 and len(inbox.envelopes) == 1
    assert inbox.logins == [(b"school-robot", b"s3cret-pass")]


def test_implicit_ssl_with_login(school_db: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with smtp_server(
        ssl_context=server_context(cert, key), authenticator=True, auth_require_tls=False
    ) as (port, inbox):
        config = make_config(school_db, port, security="ssl", ca_file=str(cert))
        queue_plain(config, "t:1")
        result = smtp.flush_mail(config, now=NOW, env=LOGIN)
    assert result.sent == 1 and inbox.logins == [(b"school-robot", b"s3cret-pass")]


def test_untrusted_certificate_is_refused(school_db: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with smtp_server(tls_context=server_context(cert, key), require_starttls=True) as (port, inbox):
        config = make_config(school_db, port, security="starttls")  # system CAs only
        queue_plain(config, "t:1")
        result = smtp.flush_mail(config, now=NOW)
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
        result = smtp.flush_mail(config, now=NOW, env=wrong)
    assert inbox.envelopes == []
    assert "OTMETKA_SMTP_USER/OTMETKA_SMTP_PASSWORD" in result.reason
    everything = result.reason + row("t:1").last_error + caplog.text
    assert "wrong-guess-42" not in everything and "school-robot" not in everything


def test_user_without_password_is_a_clear_error(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        queue_plain(config, "t:1")
        result = smtp.flush_mail(config, now=NOW, env={"OTMETKA_SMTP_USER": "robot"})
    assert "OTMETKA_SMTP_PASSWORD is empty" in result.reason and inbox.envelopes == []


def test_ca_file_is_relative_to_the_config_file(project_dir: Path) -> None:
    config = config_from_dict({"mail": {"ca_file": "certs/ca.pem"}}, base_dir=project_dir, env={})
    assert config.mail.ca_file == str(project_dir.resolve() / "certs" / "ca.pem")
    assert config_from_dict({}, base_dir=project_dir, env={}).mail.ca_file == ""


def test_a_long_queue_goes_in_several_sessions(school_db: Path) -> None:
    with smtp_server() as (port, inbox):
        config = make_config(school_db, port)
        for n in range(smtp.BATCH + 5):
            queue_plain(config, f"t:{n}", subject=f"Письмо {n}")
        result = smtp.flush_mail(config, now=NOW)
    assert (result.sent, result.waiting) == (smtp.BATCH + 5, 0)
    subjects = sorted(str(m["Subject"]) for m in inbox.messages)
    assert subjects == sorted(f"Письмо {n}" for n in range(smtp.BATCH + 5))

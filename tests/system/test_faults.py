"""Faults, each with real processes on real files; afterwards the database always passes
`integrity_check`.

- `otmetka serve` killed while parents post acts: no act that got a 2xx answer is lost or
  recorded twice.
- `otmetka sync --file` killed half-way through a big import: nothing of the file is in the
  database (one transaction), cursor and import log as before, and the import run again
  gives exactly a clean import.
- `otmetka mail flush` killed in a long queue the moment the server has a letter: every
  letter arrives, only the one in flight twice and with the same Message-ID.
- The disk under the database full (a small tmpfs), a file-size limit on it, its lock held
  by another process: one clear line that names the database file, exit 1, no traceback
  (one with --debug), the database as it was; with room again the import completes.

(A build's faults are in test_build_faults.py; killing a pull and an outbox push is in
test_crash.py; a mail sender killed after the 250 of a single letter in
tests/daemon/mail/test_smtp.py.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import re
import resource
import secrets
import select
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otmetka.daemon import runtime
from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config, load_config
from otmetka.daemon.demo.school import generate_school, write_exchange_file
from otmetka.daemon.mail import letters, smtp
from otmetka.db import close_database, write_transaction
from tests.support import fault_support as faults
from tests.support.acts_support import ack_body, build_school, call, make_config, write_config_file
from tests.support.servers import Inbox, free_port, smtp_server, wait_until_listening
from tests.support.sync_support import (
    OTMETKA,
    clean_import,
    integrity,
    journal_of,
    query,
    stored_cursor,
    wait_for,
    write_project,
)

# --- SIGKILL while acts are posted ---------------------------------------------------------------


@dataclass
class Poster:
    """A parent's page posting acknowledgements one after another, as fast as answered."""

    port: int
    token: str
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            body = ack_body(self.token, ["s-1", "s-2"], event_id=secrets.token_hex(16))
            self.sent[body["event_id"]] = body
            try:
                status, _headers, _answer = call(self.port, "acknowledgements", body)
            except (OSError, http.client.HTTPException):  # the server is gone: retry later
                time.sleep(0.01)
                continue
            self.answered[body["event_id"]] = status


@contextlib.contextmanager
def _serving(config_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with open(config_path.parent / "serve.log", "ab") as log:
        process = subprocess.Popen(
            [OTMETKA, "--config", str(config_path), "serve", "--port", str(port)],
            stdout=log,
            stderr=log,
        )
    try:
        wait_until_listening(port, timeout=30)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _event_counts(database: Path) -> dict[str, int]:
    rows = query(database, "SELECT event_id, count(*) FROM event GROUP BY event_id")
    return {str(event_id): int(n) for event_id, n in rows}


def _recorded_in_audit(database: Path) -> dict[str, int]:
    rows = query(database, "SELECT subject FROM audit_entry WHERE action = 'event.record'")
    found: dict[str, int] = {}
    for (subject,) in rows:
        found[subject.removeprefix("event:")] = found.get(subject.removeprefix("event:"), 0) + 1
    return found


def test_serve_killed_while_acts_arrive_loses_and_doubles_nothing(project_dir: Path) -> None:
    extra = "endpoint:\n  rate_per_credential_per_minute: 1000000\n"
    config_path = write_config_file(project_dir, extra)
    config = make_config(project_dir, endpoint={"rate_per_credential_per_minute": 1_000_000})
    school = build_school(config)
    paper.register_consent(
        config, login=school.login("Иванова Мария"), decision="granted", paper=True
    )
    token = school.token("Иванова Мария")
    close_database()
    database = faults.database_file(config)
    earlier = set(_event_counts(database))  # the paper consent
    port = free_port()
    posters = [Poster(port, token) for _ in range(4)]
    threads = [threading.Thread(target=p.run) for p in posters]
    with _serving(config_path, port) as server:
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: sum(len(p.answered) for p in posters) >= 60, 60, "60 answers")
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            time.sleep(0.2)  # the posters see the server gone
        finally:
            for poster in posters:
                poster.stop.set()
            for thread in threads:
                thread.join(timeout=60)

    sent = {k: v for p in posters for k, v in p.sent.items()}
    confirmed = {k for p in posters for k, status in p.answered.items() if 200 <= status < 300}
    assert confirmed and all(s == 201 for p in posters for s in p.answered.values())
    assert len(sent) > len(confirmed), "some acts were in flight when the server died"
    assert faults.config_integrity(config) == "ok"
    counts = {k: n for k, n in _event_counts(database).items() if k not in earlier}
    assert confirmed <= set(counts), "an act answered 201 was lost"
    assert set(counts.values()) == {1}
    assert _recorded_in_audit(database) == {**counts, **dict.fromkeys(earlier, 1)}

    # The pages send again what got no answer (and, for the test, everything): replays.
    with _serving(config_path, port):
        for body in sent.values():
            status, _headers, answer = call(port, "acknowledgements", body)
            assert status == 201 and answer["event_id"] == body["event_id"]
    counts = {k: n for k, n in _event_counts(database).items() if k not in earlier}
    assert set(counts) == set(sent) and set(counts.values()) == {1}
    assert _recorded_in_audit(database) == {**counts, **dict.fromkeys(earlier, 1)}
    pushed = query(database, "SELECT key FROM outbox_item WHERE kind = 'push_event'")
    assert sorted(key for (key,) in pushed) == sorted([*sent, *earlier])
    verified = faults.run_otmetka(config_path, "audit", "verify")
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout
    assert faults.config_integrity(config) == "ok"


# --- SIGKILL during a file import ----------------------------------------------------------------

IMPORT_STUDENTS = 800  # about 137,000 changes: the import runs for a few seconds
AS_OF = dt.date(2026, 11, 27)


@dataclass(frozen=True)
class ExchangeFiles:
    big: Path  # the whole demo school: one file, one transaction
    prefix: Path  # its first changes (staff, people, groups, timetable), imported before it
    clean: Path  # a fresh database holding a clean import of `big`
    cursor: str  # the cursor `big` carries


@pytest.fixture(scope="module")
def exchange_files(tmp_path_factory: pytest.TempPathFactory) -> ExchangeFiles:
    folder = tmp_path_factory.mktemp("exchange")
    document = generate_school(students=IMPORT_STUDENTS, seed=5, as_of=AS_OF)
    changes = document["changes"]
    first_lesson = next(i for i, change in enumerate(changes) if change["type"] == "lesson")
    prefix = {**document, "cursor": "prefix", "changes": changes[:first_lesson]}
    write_exchange_file(prefix, folder / "prefix.json")
    write_exchange_file(document, folder / "big.json")
    clean_import(document, folder / "clean.sqlite3")
    return ExchangeFiles(
        folder / "big.json", folder / "prefix.json", folder / "clean.sqlite3", document["cursor"]
    )


def _project_with_prefix(
    folder: Path, files: ExchangeFiles, **sections: dict[str, Any]
) -> tuple[Path, Path]:
    """A project whose database holds the prefix file; its config file and database."""
    config_path = write_project(folder, **sections)
    done = faults.run_otmetka(config_path, "sync", "--file", str(files.prefix))
    assert done.returncode == 0, done.stderr
    return config_path, faults.database_file(load_config(config_path))


def _progress_past(terminal: int, percent: int, timeout: float) -> int:
    """Read the progress bar `otmetka` draws on `terminal` until it shows `percent` or more;
    the figure shown."""
    shown, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([terminal], [], [], 0.5)[0]:
            continue
        try:
            shown += os.read(terminal, 4096)
        except OSError:  # the other end is closed: the import is over
            break
        figures = re.findall(rb"(\d+)%", shown)
        if figures and int(figures[-1]) >= percent:
            return int(figures[-1])
    raise AssertionError(f"the import never showed {percent}%: {shown[-300:]!r}")


def _import_killed_at(config_path: Path, file: Path, percent: int) -> int:
    """`otmetka sync --file` on a terminal of its own, so that it draws its progress bar,
    killed with SIGKILL once the bar passes `percent`; the figure it showed last."""
    terminal, its_end = os.openpty()
    with open(config_path.parent / "import.log", "wb") as log:
        process = subprocess.Popen(
            [OTMETKA, "--config", str(config_path), "sync", "--file", str(file)],
            stdout=log,
            stderr=its_end,
        )
    os.close(its_end)
    try:
        shown = _progress_past(terminal, percent, timeout=120)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        os.close(terminal)
    assert process.returncode == -signal.SIGKILL
    return shown


@pytest.mark.slow
def test_an_import_killed_half_way_leaves_nothing_of_the_file(
    tmp_path: Path, exchange_files: ExchangeFiles
) -> None:
    config_path, database = _project_with_prefix(tmp_path, exchange_files)
    before = journal_of(database, every_table=True)
    assert stored_cursor(database, "file") == "prefix"

    shown = _import_killed_at(config_path, exchange_files.big, percent=40)
    assert 40 <= shown < 100, "the kill must land while the records are being applied"
    assert integrity(database) == "ok"
    # Journal, import log, cursor, pages to rebuild: every table exactly as before.
    assert journal_of(database, every_table=True) == before
    assert stored_cursor(database, "file") == "prefix"

    again = faults.run_otmetka(config_path, "sync", "--file", str(exchange_files.big))
    assert again.returncode == 0, again.stderr
    assert integrity(database) == "ok"
    assert stored_cursor(database, "file") == exchange_files.cursor
    assert journal_of(database) == journal_of(exchange_files.clean)


# --- SIGKILL during the mail send of a long queue -------------------------------------------------

LETTERS = 40
KILL_AT = 15  # the letter the server has when the sender is killed


def _queue_letters(config: Config, count: int) -> dict[str, str]:
    """Queue `count` letters as one job would; their Message-IDs and subjects."""
    runtime.open_project(config)
    try:
        with write_transaction():
            for n in range(count):
                letter = letters.Letter(
                    to=(f"Родитель №{n} <parent{n}@example.ru>",),
                    subject=f"Письмо №{n}",
                    text="Здравствуйте!\n\nЭто проверка.\n",
                )
                assert smtp.queue_letter(config, f"fault:{n}", letter, smtp.now_utc())
    finally:
        close_database()
    payloads = query(
        faults.database_file(config), "SELECT payload FROM outbox_item WHERE kind = 'mail'"
    )
    return {p["message_id"]: p["subject"] for p in (json.loads(row[0]) for row in payloads)}


def _flush_killed_at(config_path: Path, inbox: Inbox, count: int) -> None:
    """`otmetka mail flush` killed the moment the server has letter number `count`, before
    the server's 250 leaves: the one window in which a crash makes a duplicate."""
    sender: list[subprocess.Popen[bytes]] = []
    started = threading.Event()

    def kill_at_count() -> None:
        if len(inbox.envelopes) == count:
            started.wait(10)
            sender[0].send_signal(signal.SIGKILL)
            sender[0].wait(10)

    inbox.on_data = kill_at_count
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTMETKA_")}
    with open(config_path.parent / "mail.log", "wb") as log:
        command = [OTMETKA, "--config", str(config_path), "mail", "flush"]
        sender.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
    started.set()
    try:
        sender[0].wait(timeout=120)
    finally:
        inbox.on_data = None
        if sender[0].poll() is None:
            sender[0].kill()
            sender[0].wait(timeout=30)
    assert sender[0].returncode == -signal.SIGKILL


def _unsent(database: Path) -> list[tuple[str, str]]:
    return query(database, "SELECT payload, last_error FROM outbox_item WHERE done_at IS NULL")


def test_mail_flush_killed_in_a_long_queue_sends_every_letter(tmp_path: Path) -> None:
    with smtp_server() as (port, inbox):
        config_path = write_project(tmp_path, mail={"enabled": True, "smtp_port": port})
        config = load_config(config_path)
        database = faults.database_file(config)
        queued = _queue_letters(config, LETTERS)
        assert len(queued) == LETTERS

        _flush_killed_at(config_path, inbox, KILL_AT)
        assert integrity(database) == "ok"
        assert len(inbox.envelopes) == KILL_AT
        unsent = _unsent(database)
        assert len(unsent) == LETTERS - KILL_AT + 1
        [in_flight] = [json.loads(p) for p, error in unsent if error.startswith("sending: ")]

        # Run again at once: the rest go, the letter in flight counts as being sent.
        again = faults.run_otmetka(config_path, "mail", "flush")
        assert again.returncode == 0, again.stderr
        assert f"mail: sent {LETTERS - KILL_AT}; 1 letters wait" in again.stdout
        # Later it is someone's unfinished attempt no more, and goes again.
        runtime.open_project(config)
        try:
            later = smtp.flush_mail(config, now=smtp.now_utc() + dt.timedelta(minutes=5))
        finally:
            close_database()
        assert (later.sent, later.failed, later.waiting) == (1, 0, 0)

    received = Counter(message["Message-ID"] for message in inbox.messages)
    assert set(received) == set(queued)
    assert {k: n for k, n in received.items() if n != 1} == {in_flight["message_id"]: 2}
    assert {m["Message-ID"]: m["Subject"] for m in inbox.messages} == queued
    assert _unsent(database) == []
    assert integrity(database) == "ok"


# --- the database cannot be written: a full disk, a file-size limit, a lock held ------------------


def _failed_cleanly(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 1 with one line on stderr that says every one of `phrases`; no traceback."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: ")
    for phrase in phrases:
        assert phrase in line, line


ROLLED_BACK = "nothing was half-applied"


@pytest.mark.slow
def test_a_full_disk_under_the_database_stops_the_import_cleanly(
    tmp_path: Path, exchange_files: ExchangeFiles
) -> None:
    # The import needs the database (about 35 MB) and its write-ahead log beside it.
    with faults.small_file_system(tmp_path / "small-disk", 128) as disk:
        url = f"sqlite:///{disk / 'db' / 'otmetka.sqlite3'}"
        config_path, database = _project_with_prefix(
            tmp_path, exchange_files, database={"url": url}
        )
        before = journal_of(database, every_table=True)
        filler = faults.fill_file_system(disk, leave=2 * 1024 * 1024)

        done = faults.run_otmetka(config_path, "sync", "--file", str(exchange_files.big))
        _failed_cleanly(
            done,
            f"the disk holding the database {database} is full",
            ROLLED_BACK,
            "Free disk space there and run the command again.",
        )
        filler.unlink()  # room to look, and room for the next run
        assert integrity(database) == "ok"
        assert journal_of(database, every_table=True) == before

        again = faults.run_otmetka(config_path, "sync", "--file", str(exchange_files.big))
        assert again.returncode == 0, again.stderr
        assert stored_cursor(database, "file") == exchange_files.cursor
        assert integrity(database) == "ok"


@pytest.mark.slow
def test_a_file_size_limit_on_the_database_stops_the_import_cleanly(
    tmp_path: Path, exchange_files: ExchangeFiles
) -> None:
    config_path, database = _project_with_prefix(tmp_path, exchange_files)
    before = journal_of(database, every_table=True)
    # The database as it is fits; its write-ahead log cannot grow past a megabyte more.
    # SQLite reports the write refused with EFBIG as a plain "disk I/O error".
    limit = database.stat().st_size + 1024 * 1024
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    command = ["sync", "--file", str(exchange_files.big)]
    done = faults.run_otmetka(config_path, *command, preexec_fn=limited)
    _failed_cleanly(
        done,
        f"the database {database} cannot grow",
        "file-size limit (ulimit -f)",
        ROLLED_BACK,
        "run the command again",
    )
    debug = faults.run_otmetka(config_path, "--debug", *command, preexec_fn=limited)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "disk I/O error" in debug.stderr
    assert integrity(database) == "ok"
    assert journal_of(database, every_table=True) == before


def test_a_database_held_by_another_process_is_a_clear_message(tmp_path: Path) -> None:
    small = tmp_path / "small.json"
    write_exchange_file(generate_school(students=20, seed=5, as_of=AS_OF), small)
    config_path = write_project(tmp_path, database={"busy_timeout_ms": 200})
    assert faults.run_otmetka(config_path, "init").returncode == 0
    database = faults.database_file(load_config(config_path))
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # as a daemon in the middle of its own import
        done = faults.run_otmetka(config_path, "sync", "--file", str(small))
        holder.execute("ROLLBACK")
    _failed_cleanly(
        done,
        f"the database {database} is locked",
        "is `otmetka run` running?",
        "Wait for it to finish or stop it, then run the command again.",
    )
    assert stored_cursor(database, "file") is None
    assert faults.run_otmetka(config_path, "sync", "--file", str(small)).returncode == 0
    assert stored_cursor(database, "file") is not None

"""Faults, each with real processes on real files; afterwards the database always passes
`integrity_check`.

- `otmetka build` killed with SIGKILL half-way: every page in output/ is a complete one that
  opens with its key, no temp file is served and the next build clears them.
- A build that runs out of disk (a file-size limit, and a real full file system on a small
  tmpfs): one clear line, exit 1, the site as it was.
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

(Killing a pull and an outbox push is in test_crash.py; a mail sender killed after the 250
of a single letter in tests/daemon/mail/test_smtp.py.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
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
import yaml

from otmetka.daemon import runtime
from otmetka.daemon.acts import paper
from otmetka.daemon.core.config import Config, load_config
from otmetka.daemon.demo.school import generate_school, write_exchange_file
from otmetka.daemon.endpoint.app import create_app
from otmetka.daemon.mail import letters, smtp
from otmetka.db import close_database, write_transaction
from otmetka.site_builder import crypto
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

STUDENTS = 250  # about 580 pages: a full build takes several seconds, time to kill it
STALE = 3600  # seconds: older than any write in progress (build.STALE_TEMP_S is 15 min)


# --- a school large enough, built once ----------------------------------------------------------


def _otmetka(config: Path, *args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OTMETKA, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        **options,
    )


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo school with logins for everyone and its site built; its config file."""
    folder = tmp_path_factory.mktemp("faults")
    config_path = write_project(folder)
    done = _otmetka(config_path, "demo", "--students", str(STUDENTS), "--no-serve")
    assert done.returncode == 0, done.stderr
    return config_path


def _database(config: Config) -> Path:
    path = config.database_path()
    assert path is not None
    return path


def _keys(config: Config) -> dict[str, bytes]:
    rows = query(_database(config), "SELECT page_id, derived_key FROM credential")
    return {str(page_id): bytes(key) for page_id, key in rows}


def _open_all(output: Path, keys: dict[str, bytes]) -> dict[str, str]:
    """Every page in output/p decrypted with its key; fails on any that does not open."""
    pages = {}
    for path in _pages(output):
        html = path.read_text(encoding="utf-8")
        sealed = json.loads(html.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0])
        pages[path.stem] = crypto.decrypt_page(sealed, keys[path.stem], path.stem).decode()
    return pages


def _rewrite_everything_next(config: Config) -> None:
    """Forget the manifest, so the next `build --full` writes every page again."""
    with contextlib.closing(sqlite3.connect(_database(config))) as conn:
        conn.execute("DELETE FROM build_manifest")
        conn.commit()


def _integrity(config: Config) -> str:
    return integrity(_database(config))


def _temp_files(output: Path) -> list[Path]:
    return sorted(output.rglob(".tmp-*"))


def _pages(output: Path) -> list[Path]:
    """The pages (pathlib's glob would match the builder's .tmp-*.html files too)."""
    return sorted(p for p in (output / "p").glob("*.html") if not p.name.startswith("."))


def _page_inodes(output: Path) -> dict[str, int]:
    """Every page file's inode: a page renamed into place is a new file (all share one mtime)."""
    return {p.stem: p.stat().st_ino for p in _pages(output)}


def _rewritten(output: Path, inodes: dict[str, int]) -> int:
    now = _page_inodes(output)
    return sum(now[k] != t for k, t in inodes.items())


def _under_way(output: Path, inodes: dict[str, int]) -> bool:
    """New pages are written to hidden names first, then renamed into place."""
    return bool(_temp_files(output)) or _rewritten(output, inodes) > 0


# --- SIGKILL during a build -----------------------------------------------------------------------


def test_a_build_killed_half_way_leaves_a_complete_site(school: Path) -> None:
    config = load_config(school)
    output, keys = config.site.output_dir, _keys(config)
    before = _open_all(output, keys)
    inodes = _page_inodes(output)
    _rewrite_everything_next(config)
    with open(school.parent / "build.log", "wb") as log:
        process = subprocess.Popen(
            [OTMETKA, "--config", str(school), "build", "--full"], stdout=log, stderr=log
        )
    try:
        # Stopped at the first new page seen, staged or renamed (a look at the folder can
        # take a second while the build fsyncs), then killed: caught in the middle.
        wait_for(lambda: _under_way(output, inodes), 120, "the first page written")
        process.send_signal(signal.SIGSTOP)
        rewritten = _rewritten(output, inodes)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert rewritten < len(inodes), "the kill must land in the middle of the build"
    assert _temp_files(output) or rewritten > 0

    assert _integrity(config) == "ok"
    assert _open_all(output, keys) == before  # every page whole: the old one or the new one
    _no_temp_file_is_served(config)

    # The next build clears what the killed one left, and finishes the work.
    leftovers = _temp_files(output)
    for path in leftovers:
        os.utime(path, (time.time() - STALE, time.time() - STALE))
    fresh = output / "p" / ".tmp-being-written-now.html"  # a write in progress right now
    fresh.write_text("half a page", encoding="utf-8")
    done = _otmetka(school, "build")
    assert done.returncode == 0, done.stderr
    assert _temp_files(output) == [fresh]
    fresh.unlink()
    assert _open_all(output, keys) == before
    assert _integrity(config) == "ok"


def _status(client: Any, url: str) -> int:
    response = client.get(url)
    response.close()  # a file answer holds the file open until closed
    return int(response.status_code)


def _no_temp_file_is_served(config: Config) -> None:
    """Temp files (left by the kill, and one planted for sure) are never served."""
    output = config.site.output_dir
    planted = output / "p" / ".tmp-planted.html"
    planted.write_text("<p>half a page</p>", encoding="utf-8")
    os.utime(planted, (time.time() - STALE, time.time() - STALE))
    (output / ".hidden").write_text("not for the web", encoding="utf-8")
    client = create_app(config).test_client()
    try:
        for path in [*_temp_files(output), output / ".hidden"]:
            url = "/" + path.relative_to(output).as_posix()
            assert _status(client, url) == 404, url
            assert _status(client, url.replace("/.", "/%2E")) == 404, url
        assert _status(client, f"/p/{_pages(output)[0].name}") == 200
    finally:
        close_database()
        (output / ".hidden").unlink()


# --- a full disk during a build -------------------------------------------------------------------


def test_a_file_size_limit_stops_the_build_with_a_clear_message(school: Path) -> None:
    config = load_config(school)
    output, keys = config.site.output_dir, _keys(config)
    before = _open_all(output, keys)
    _rewrite_everything_next(config)
    # `ulimit -f 48`: no file may grow past 48 KB. SQLite's shared-memory file (32 KB) still
    # fits; a page (70 KB and more) does not. Python ignores SIGXFSZ, so the write fails
    # with EFBIG instead of the signal killing the process.
    command = f"ulimit -f 48 && exec {OTMETKA} --config {school} build --full"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: build stopped: cannot write ")
    assert os.strerror(errno.EFBIG) in message and "run `otmetka build` again" in message
    assert "Traceback" not in done.stderr
    assert _temp_files(output) == []
    assert _open_all(output, keys) == before
    assert _integrity(config) == "ok"


@contextlib.contextmanager
def _small_file_system(folder: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` at `folder` (the test machines run as root)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs (root needed): {mounted.stderr}"
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system to the last byte, then free `leave` bytes."""
    filler = folder / "filler.bin"
    chunk = b"\0" * 65536
    # suppress outermost: closing the file flushes what the last write left and fails too
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()
    with filler.open("r+b") as handle:
        handle.truncate(max(0, filler.stat().st_size - leave))
    return filler


def test_a_full_disk_stops_the_build_and_the_site_stays(school: Path, tmp_path: Path) -> None:
    base = load_config(school)
    # A full build stages every new page before the renames: room for the site twice.
    with _small_file_system(tmp_path / "small-disk", 192) as disk:
        config_path = tmp_path / "config.yaml"
        settings = yaml.safe_load(school.read_text(encoding="utf-8"))
        settings["database"] = {"url": f"sqlite:///{_database(base)}"}
        settings["site"] = {**settings["site"], "secret_file": str(base.site.secret_file)}
        settings["site"]["output_dir"] = str(disk / "output")
        settings["paths"] = {"var_dir": str(tmp_path / "var")}
        config_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        config = load_config(config_path)
        _rewrite_everything_next(config)
        first = _otmetka(config_path, "build", "--full")
        assert first.returncode == 0, first.stderr
        keys = _keys(config)
        before = _open_all(config.site.output_dir, keys)

        # A page is rewritten through a temp file beside it, so a rebuild needs room for the
        # pages being written at once: leave room for one (70-150 KB), not for four.
        filler = _fill(disk, leave=100 * 1024)
        _rewrite_everything_next(config)
        done = _otmetka(config_path, "build", "--full")
        assert done.returncode == 1, done.stdout + done.stderr
        message = done.stderr.strip().splitlines()[-1]
        assert message.startswith("Error: build stopped: cannot write ")
        assert os.strerror(errno.ENOSPC) in message and "free disk space" in message
        assert _temp_files(config.site.output_dir) == []
        assert _open_all(config.site.output_dir, keys) == before
        assert _integrity(config) == "ok"

        filler.unlink()  # room again: the next build completes
        again = _otmetka(config_path, "build")
        assert again.returncode == 0, again.stderr
        assert _open_all(config.site.output_dir, keys) == before


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
    database = _database(config)
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
    assert _integrity(config) == "ok"
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
    verified = _otmetka(config_path, "audit", "verify")
    assert verified.returncode == 0 and "audit chain intact" in verified.stdout
    assert _integrity(config) == "ok"


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
    done = _otmetka(config_path, "sync", "--file", str(files.prefix))
    assert done.returncode == 0, done.stderr
    return config_path, _database(load_config(config_path))


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

    again = _otmetka(config_path, "sync", "--file", str(exchange_files.big))
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
    payloads = query(_database(config), "SELECT payload FROM outbox_item WHERE kind = 'mail'")
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
        database = _database(config)
        queued = _queue_letters(config, LETTERS)
        assert len(queued) == LETTERS

        _flush_killed_at(config_path, inbox, KILL_AT)
        assert integrity(database) == "ok"
        assert len(inbox.envelopes) == KILL_AT
        unsent = _unsent(database)
        assert len(unsent) == LETTERS - KILL_AT + 1
        [in_flight] = [json.loads(p) for p, error in unsent if error.startswith("sending: ")]

        # Run again at once: the rest go, the letter in flight counts as being sent.
        again = _otmetka(config_path, "mail", "flush")
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
    with _small_file_system(tmp_path / "small-disk", 128) as disk:
        url = f"sqlite:///{disk / 'db' / 'otmetka.sqlite3'}"
        config_path, database = _project_with_prefix(
            tmp_path, exchange_files, database={"url": url}
        )
        before = journal_of(database, every_table=True)
        filler = _fill(disk, leave=2 * 1024 * 1024)

        done = _otmetka(config_path, "sync", "--file", str(exchange_files.big))
        _failed_cleanly(
            done,
            f"the disk holding the database {database} is full",
            ROLLED_BACK,
            "Free disk space there and run the command again.",
        )
        filler.unlink()  # room to look, and room for the next run
        assert integrity(database) == "ok"
        assert journal_of(database, every_table=True) == before

        again = _otmetka(config_path, "sync", "--file", str(exchange_files.big))
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
    done = _otmetka(config_path, *command, preexec_fn=limited)
    _failed_cleanly(
        done,
        f"the database {database} cannot grow",
        "file-size limit (ulimit -f)",
        ROLLED_BACK,
        "run the command again",
    )
    debug = _otmetka(config_path, "--debug", *command, preexec_fn=limited)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "disk I/O error" in debug.stderr
    assert integrity(database) == "ok"
    assert journal_of(database, every_table=True) == before


def test_a_database_held_by_another_process_is_a_clear_message(tmp_path: Path) -> None:
    small = tmp_path / "small.json"
    write_exchange_file(generate_school(students=20, seed=5, as_of=AS_OF), small)
    config_path = write_project(tmp_path, database={"busy_timeout_ms": 200})
    assert _otmetka(config_path, "init").returncode == 0
    database = _database(load_config(config_path))
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # as a daemon in the middle of its own import
        done = _otmetka(config_path, "sync", "--file", str(small))
        holder.execute("ROLLBACK")
    _failed_cleanly(
        done,
        f"the database {database} is locked",
        "is `otmetka run` running?",
        "Wait for it to finish or stop it, then run the command again.",
    )
    assert stored_cursor(database, "file") is None
    assert _otmetka(config_path, "sync", "--file", str(small)).returncode == 0
    assert stored_cursor(database, "file") is not None

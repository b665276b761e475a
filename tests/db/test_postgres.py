"""PostgreSQL for real: a throwaway server (tests/support/pg_support.py) runs the core flows that
the SQLite tests run — migrations, imports, credentials and pages, acts through the API,
the audit chain, the outbox — and `otmetka db copy` moves a school from its SQLite file
into PostgreSQL with every row, key and act intact."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from otmetka.daemon.acts import paper
from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.core.settings import build_options
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.endpoint.app import create_app
from otmetka.daemon.exchange.importer import ImportResult, import_document
from otmetka.daemon.exchange.reader import BatchError
from otmetka.daemon.mail import outbox
from otmetka.daemon.runtime import open_project
from otmetka.db import (
    audit,
    close_database,
    database,
    journal,
    migrate,
    models,
    open_database,
    write_transaction,
)
from otmetka.db.connection import WRITE_LOCK, server_database
from otmetka.db.migrations import LATEST_VERSION, schema_version
from otmetka.site_builder import build
from tests.support.acts_support import (
    MOTHER,
    TODAY,
    School,
    ack_body,
    breach_body,
    build_school,
    consent_body,
    make_config,
    write_config_file,
)
from tests.support.factories import change, envelope, small_school, write_json
from tests.support.sync_support import journal_dump

STUDENT = "Петров Иван"  # s-3
LATER = "2026-09-20T10:00:00+03:00"
TOKEN = "pg-upstream-token"
RULES = MarkRules(minus_delta=0.3)  # "4-" is 3.7


@pytest.fixture
def pg_config(project_dir: Path, pg_url: str) -> Config:
    """A project whose database is a fresh PostgreSQL database; config.yaml says so too."""
    write_config_file(project_dir, f"database:\n  url: {pg_url}\n")
    return make_config(project_dir, database={"url": pg_url})


def _cli(runner: CliRunner, config: Config, *args: str) -> tuple[int, str]:
    result = runner.invoke(main, ["--config", str(config.base_dir / "config.yaml"), *args])
    close_database()
    return result.exit_code, result.output


def _plain(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """A dump with dates as SQLite returns them (ISO text): PostgreSQL gives date objects."""

    def plain(value: Any) -> Any:
        return value.isoformat() if type(value) is dt.date else value

    return {table: [tuple(map(plain, row)) for row in rows] for table, rows in dump.items()}


def _everything() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table as the models read it (times, booleans, bytes alike on
    both databases), in key order."""
    dump = {}
    for model in models.ALL_TABLES:
        # A rebuild marks the versions it rendered again: that stamp is the build's, not data.
        fields = [f for f in model._meta.sorted_fields if f is not models.PageVersion.last_built_at]
        query = model.select(*fields).order_by(*model._meta.get_primary_keys()).tuples()
        dump[model._meta.table_name] = [tuple(map(_same, row)) for row in query]
    return dump


def _same(value: Any) -> Any:
    """PostgreSQL hands bytes out as a memoryview, and its TIMESTAMP keeps no zone: an
    aware time written there comes back as naive UTC, the same moment."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


# --- schema -------------------------------------------------------------------------------


def test_open_project_builds_the_schema_the_models_describe(pg_config: Config) -> None:
    open_project(pg_config)
    opened = database.obj
    open_project(pg_config)  # the same database: the connection stays (threads write on it)
    assert database.obj is opened
    assert schema_version() == LATEST_VERSION and migrate() == []
    for model in models.ALL_TABLES:
        table = model._meta.table_name
        columns = {column.name: column.data_type for column in database.get_columns(table)}
        expected = {field.column_name for field in model._meta.sorted_fields}
        assert set(columns) == expected, f"{table}: add a migration for {expected ^ set(columns)}"
    types = {c.name: c.data_type for c in database.get_columns("mark")}
    assert types["value"] == types["weight"] == "double precision"
    database.execute_sql("INSERT INTO schema_version (version) VALUES (%s)", (LATEST_VERSION + 1,))
    close_database()
    with pytest.raises(OtmetkaError, match="upgrade otmetka or restore a matching backup"):
        open_project(pg_config)


def test_writers_take_turns_as_on_sqlite(pg_config: Config) -> None:
    """Writers appending to the audit chain at once: each reads the head and writes after
    it, so without one writer at a time two would take the same place."""
    open_project(pg_config)
    failures: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for n in range(25):
                with write_transaction():
                    audit.append(name, "test.write", f"{name}:{n}", {}, dt.datetime.now(dt.UTC))
        except BaseException as error:
            failures.append(error)
        finally:
            database.close()  # this thread's connection

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    verification = audit.verify()
    assert verification.ok and verification.entries == 100


# --- imports ------------------------------------------------------------------------------


def _mark(mark_id: str, student: str, raw: str, updated_at: str, **extra: Any) -> dict[str, Any]:
    data = {"student_id": student, "subject_id": "math", "date": "2026-09-14", "raw": raw}
    return change("mark", mark_id, {**data, "lesson_id": "l-2", **extra}, updated_at=updated_at)


def _delta() -> dict[str, Any]:
    """A changed mark, a new one, a tombstone, and an older update and an older delete
    that must both lose to what is stored."""
    return envelope(
        [
            _mark("mk-1", "s-1", "4", LATER, date="2026-09-07"),
            _mark("mk-9", "s-2", "4-", LATER),
            change("attendance", "a-1", op="delete", updated_at=LATER),
            _mark("mk-3", "s-2", "2", "2026-08-01T00:00:00+03:00"),
            change("homework", "hw-1", op="delete", updated_at="2026-08-01T00:00:00+03:00"),
        ],
        mode="delta",
        cursor="c2",
    )


def _import_both(url: str) -> tuple[dict[str, Any], list[ImportResult]]:
    open_database(url)
    migrate()
    try:
        results = [
            import_document(small_school(), "full.json", RULES),
            import_document(_delta(), "delta.json", RULES),
        ]
        dirty = journal.dump_tables()["dirty_person"]
        return _plain({**journal_dump(), "dirty_person": dirty}), results
    finally:
        close_database()


def columns(entity: str) -> list[str]:
    return journal.column_names(entity)


def test_a_full_batch_and_a_delta_store_what_sqlite_stores(pg_url: str, tmp_path: Path) -> None:
    on_sqlite, sqlite_results = _import_both(f"sqlite:///{tmp_path / 'same.sqlite3'}")
    on_postgres, postgres_results = _import_both(pg_url)
    assert on_postgres == on_sqlite
    assert [r.counts for r in postgres_results] == [r.counts for r in sqlite_results]
    marks = {row[0]: row for row in on_postgres["mark"]}
    assert marks["mk-9"][columns("mark").index("value")] == 3.7
    assert marks["mk-3"][columns("mark").index("raw")] == "3/5"  # the older update lost
    assert on_postgres["attendance"][0][columns("attendance").index("deleted_at")] is not None
    assert on_postgres["homework"][0][columns("homework").index("deleted_at")] is None


def test_a_bad_batch_leaves_postgresql_as_it_was(pg_config: Config) -> None:
    open_project(pg_config)
    import_document(small_school(), "full.json", RULES)
    before = journal.dump_tables()
    lesson = {"slot": 1, "group_id": "g-math", "subject_id": "math", "teacher_id": "t-2"}
    broken = envelope(
        [
            change("lesson", "l-new", {**lesson, "date": "2026-09-21"}, updated_at=LATER),
            _mark("mk-1", "s-1", "2", LATER),
            _mark("mk-8", "s-1", "5", LATER, lesson_id="l-none"),
        ],
        mode="delta",
        cursor="c2",
    )
    with pytest.raises(BatchError, match="l-none"):
        import_document(broken, "broken.json", RULES)
    assert journal.dump_tables() == before
    # The connection is usable again (no transaction left aborted) and the cursor is c1.
    assert journal.cursor_of("file") == "c1"
    assert import_document(_delta(), "delta.json", RULES).counts["mark"]["upserted"] >= 1


# --- credentials, pages, acts, audit, outbox ------------------------------------------------


def _post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.post(f"/api/v1/{path}", json=body)
    return response.status_code, response.get_json()


def test_pages_and_acts_work_on_postgresql(
    pg_config: Config, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    school = build_school(pg_config)  # credentials issued (kdf 100000), site built
    assert "Даю согласие" in school.open_page(MOTHER)
    assert "Петров Иван" in school.open_page(STUDENT)
    client = create_app(pg_config).test_client()
    status, answer = _post(client, "consents", consent_body(school.token(MOTHER), "granted"))
    assert status == 201 and answer["consent_state"] == "granted", answer
    assert "Иванова-Крылова Алёна" in school.open_page(MOTHER)  # re-rendered at once
    ack = ack_body(school.token(MOTHER), ["s-1", "s-2"])
    first, again = _post(client, "acknowledgements", ack), _post(client, "acknowledgements", ack)
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert models.Event.select().where(models.Event.event_id == ack["event_id"]).count() == 1
    status, answer = _post(client, "breach-reports", breach_body(school.token(STUDENT)))
    assert status == 201 and answer["credential"] == "revoked", answer
    assert (
        school.credential(STUDENT).state == "revoked" and models.BreachReport.select().count() == 1
    )
    close_database()
    assert _cli(runner, pg_config, "audit", "verify")[0] == 0
    _flush_outbox(pg_config, monkeypatch, expected={e.event_id for e in models.Event.select()})


def _flush_outbox(config: Config, monkeypatch: pytest.MonkeyPatch, expected: set[str]) -> None:
    monkeypatch.setenv("OTMETKA_UPSTREAM_TOKEN", TOKEN)
    with FakeUpstream(small_school(), [], token=TOKEN) as upstream:
        pushing = config.model_copy(
            update={"source": config.source.model_copy(update={"url": upstream.url})}
        )
        result = outbox.flush(pushing)
        assert (result.sent, result.failed) == (len(expected), 0)
        assert set(upstream.events) == expected
        assert outbox.flush(pushing).sent == 0  # each event leaves once
    o = models.OutboxItem
    assert not o.select().where(o.kind == "push_event", o.done_at.is_null()).exists()


# --- moving a school: otmetka db copy -------------------------------------------------------


def _sqlite_school(folder: Path) -> School:
    """The small school on SQLite with logins, a built site, and acts of every kind."""
    write_config_file(folder)
    school = build_school(make_config(folder))
    config, mother = school.config, school.login(MOTHER)
    paper.register_consent(config, login=mother, decision="granted", paper=True)
    paper.register_ack(config, login=mother, paper=True, date="2026-09-16")
    paper.register_breach(config, login=school.login(STUDENT), received_at=dt.datetime.now(dt.UTC))
    school.rebuild()
    return school


def _pages(school: School, config: Config) -> dict[str, str]:
    """Every page whose login is still active, fully rebuilt and opened with its password."""
    open_project(config)
    build.build_site(build_options(config, today=TODAY, full=True))
    opened = School(config, school.logins)
    return {
        name: opened.open_page(name)
        for name in school.logins
        if opened.credential(name).state == "active"
    }


def test_db_copy_moves_a_school_from_sqlite_to_postgresql(
    project_dir: Path, pg_url: str, runner: CliRunner
) -> None:
    school = _sqlite_school(project_dir)
    pages = _pages(school, school.config)
    rows, journal_rows = _everything(), _plain(journal_dump())
    close_database()
    (project_dir / "config.yaml").rename(project_dir / "sqlite.yaml")
    on_postgres = write_config_file(project_dir, f"database:\n  url: {pg_url}\n")
    assert _cli(runner, school.config, "init")[0] == 0  # the empty schema on PostgreSQL

    sqlite_cli = ["--config", str(project_dir / "sqlite.yaml")]
    result = runner.invoke(main, [*sqlite_cli, "db", "copy", "--to", pg_url])
    close_database()
    assert result.exit_code == 0, result.output
    assert f"copied {sum(len(r) for r in rows.values())} rows into {pg_url}" in result.output
    assert f"event {len(rows['event'])}" in result.output and "audit chain intact" in result.output

    code, output = _cli(runner, school.config, "audit", "verify")
    assert code == 0 and "audit chain intact" in output
    config = make_config(project_dir, database={"url": pg_url})
    assert on_postgres == project_dir / "config.yaml"
    assert _pages(school, config) == pages  # the same keys open the same pages
    assert _everything() == rows and _plain(journal_dump()) == journal_rows
    paper.register_ack(config, login=school.login(MOTHER), paper=True, date="2026-09-17")
    assert _cli(runner, school.config, "audit", "verify")[0] == 0  # new rows get new ids
    open_project(config)
    rows = _everything()
    close_database()

    back = f"sqlite:///{project_dir / 'back.sqlite3'}"  # and back again, made by init
    write_config_file(project_dir, f"database:\n  url: {back}\n")
    assert _cli(runner, school.config, "init")[0] == 0
    write_config_file(project_dir, f"database:\n  url: {pg_url}\n")
    code, output = _cli(runner, school.config, "db", "copy", "--to", back)
    assert code == 0 and "audit chain intact" in output, output
    open_database(back)
    assert _everything() == rows


def test_db_copy_refuses_a_target_that_is_not_empty(
    project_dir: Path, pg_url: str, runner: CliRunner
) -> None:
    write_config_file(project_dir)
    config = make_config(project_dir)
    open_project(config)
    import_document(small_school(), "full.json", RULES)
    close_database()
    code, output = _cli(runner, config, "db", "copy", "--to", pg_url)
    assert code == 1 and "otmetka --config NEW.yaml init" in output  # no schema there yet
    open_database(pg_url)
    migrate()
    import_document(small_school(cursor="elsewhere"), "other.json", RULES)
    before = _everything()
    close_database()
    code, output = _cli(runner, config, "db", "copy", "--to", pg_url)
    assert code == 1 and "is not empty (" in output and "nothing was copied" in output
    open_database(pg_url)
    assert _everything() == before


def test_db_copy_is_one_transaction(project_dir: Path, pg_url: str, runner: CliRunner) -> None:
    """A row the target refuses half-way (a date SQLite kept as any text) leaves it empty."""
    write_config_file(project_dir)
    config = make_config(project_dir)
    open_project(config)
    import_document(small_school(), "full.json", RULES)
    database.execute_sql("UPDATE mark SET date = '31.09.2026' WHERE id = 'mk-3'")
    close_database()
    open_database(pg_url)
    migrate()
    close_database()
    code, output = _cli(runner, config, "db", "copy", "--to", pg_url)
    assert code == 1 and "the target refused a row of mark: row mk-3, column date" in output
    assert "rolled back, nothing was written" in output
    open_database(pg_url)
    assert not any(_everything().values())


def test_a_writer_waits_at_most_the_busy_timeout_then_says_so(
    project_dir: Path, pg_url: str, runner: CliRunner
) -> None:
    write_config_file(project_dir, f"database:\n  url: {pg_url}\n  busy_timeout_ms: 300\n")
    config = make_config(project_dir, database={"url": pg_url, "busy_timeout_ms": 300})
    open_project(config)
    close_database()
    school = project_dir / "school.json"
    write_json(school, small_school())
    holder = server_database(pg_url)  # another process in the middle of its own write
    with holder.atomic():
        holder.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        code, output = _cli(runner, config, "sync", "--file", str(school))
    holder.close()
    assert code == 1 and "Traceback" not in output
    assert "is locked: another process kept it busy past database.busy_timeout_ms" in output
    assert _cli(runner, config, "sync", "--file", str(school))[0] == 0

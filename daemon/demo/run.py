"""`otmetka demo`: the whole chain on the embedded default, from generated data to pages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from otmetka.daemon import runtime
from otmetka.daemon.access import credentials
from otmetka.daemon.core import settings
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.demo import school
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.exchange import http, importer
from otmetka.daemon.exchange.reader import from_document
from otmetka.daemon.runner import scheduler
from otmetka.db import credentials as credentials_db
from otmetka.db import journal, migrations, models, staff_facts
from otmetka.db.row_types import PageKey

DEMO_SCHOOL_ID = "demo-school"


def _reset_for_demo() -> None:
    foreign = journal.school_ids_seen() - {DEMO_SCHOOL_ID}
    if foreign:
        raise OtmetkaError(
            f"the database holds school '{sorted(foreign)[0]}', not the demo; the demo would "
            "erase it. Run the demo with its own config: otmetka --config demo.yaml demo"
        )
    migrations.reset()


def run_demo(
    config: Config,
    *,
    students: int,
    seed: int,
    export_path: Path | None,
    serve: bool,
    reporter: Reporter,
    upstream: bool = False,
) -> importer.ImportResult | http.PullResult:
    """Generate the demo school, import it through the importer, report what it holds.

    With `upstream`, a fake upstream on loopback serves the school and the HTTP source pulls
    it page by page, as a school's server would."""
    runtime.open_project(config)
    _reset_for_demo()
    started = time.monotonic()
    document = school.generate_school(students=students, seed=seed, as_of=settings.today_in(config))
    if export_path is not None:
        school.write_exchange_file(document, export_path)
        reporter.summary(f"exchange file written to {export_path}")
    result: importer.ImportResult | http.PullResult
    if upstream:
        result = _pull_from_fake_upstream(config, document, reporter)
    else:
        raw = from_document(document, f"demo school (seed {seed}, {students} students)")
        with reporter.bar("import", len(raw.changes)) as advance:
            result = importer.import_batch(raw, settings.mark_rules(config), progress=advance)
    reporter.summary(f"{result.summary()} in {time.monotonic() - started:.1f} s")
    issued = credentials.issue_credentials(
        config, class_name=None, everyone=True, reporter=reporter
    )
    reporter.summary(issued.summary())
    runtime.build(config, reporter, full=True)
    _show_demo_logins(issued, config)
    if serve:
        click.echo(f"serving the demo school on {settings.site_url(config)} (Ctrl-C stops)")
        scheduler.serve(config)
    return result


def _pull_from_fake_upstream(
    config: Config, document: dict[str, Any], reporter: Reporter
) -> http.PullResult:
    with FakeUpstream(document, document["changes"]) as fake:
        reporter.summary(f"fake upstream serving the demo school on {fake.url}")
        params = http.HttpParams(fake.url, fake.token, limit=config.source.page_limit)
        return http.pull(params, rules=settings.mark_rules(config), bar=reporter.bar)


def _demo_people() -> dict[str, PageKey]:
    """The people whose logins the demo prints: a parent of two, a student, a class teacher
    and the deputy head, whose page shows every class."""
    people = credentials_db.demo_people()
    teacher = models.Teacher
    deputy = (
        teacher.select(teacher.id)
        .where(teacher.deleted_at.is_null(), teacher.roles.contains(staff_facts.DEPUTY_ROLE))
        .order_by(teacher.id)
        .first()
    )
    if deputy:
        people["заместитель директора"] = ("teacher", deputy.id)
    return people


def _show_demo_logins(issued: credentials.IssueResult, config: Config) -> None:
    """Print the demo's logins to try; the passwords exist only in this output and the list."""
    people = _demo_people()
    labels = credentials_db.labels_of(people.values())
    click.echo(f"\nopen {settings.site_url(config)} and log in as:")
    for role, key in people.items():
        if key not in issued.secrets:
            continue
        login, password = issued.secrets[key]
        name, class_name = labels[key]
        who = f"{name}, {class_name}" if class_name else name
        click.echo(f"  {role} ({who}): login {login}  password {password}")

"""`otmetka demo`: the whole chain on the embedded default, from generated data to pages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from otmetka.daemon import runtime as project
from otmetka.daemon.access import credentials
from otmetka.daemon.core import settings
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.demo import school
from otmetka.daemon.demo.fake_upstream import FakeUpstream
from otmetka.daemon.endpoint import app as endpoint
from otmetka.daemon.exchange import importer
from otmetka.daemon.exchange.http import HttpParams, PullResult
from otmetka.daemon.exchange.http import pull as http_pull
from otmetka.daemon.exchange.reader import from_document
from otmetka.db import credentials as stored
from otmetka.db import journal, migrations

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
) -> importer.ImportResult | PullResult:
    """Generate the demo school, import it through the importer, report what it holds.

    With `upstream`, a fake upstream on loopback serves the school and the HTTP source pulls
    it page by page, as a school's server would."""
    project.open_project(config)
    _reset_for_demo()
    started = time.monotonic()
    document = school.generate_school(students=students, seed=seed, as_of=settings.today_in(config))
    if export_path is not None:
        school.write_exchange_file(document, export_path)
        reporter.summary(f"exchange file written to {export_path}")
    result: importer.ImportResult | PullResult
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
    project.build(config, reporter, full=True)
    _show_demo_logins(issued, config)
    if serve:
        click.echo(f"serving the demo school on {config.school.lan_url} (Ctrl-C stops)")
        endpoint.serve(config)
    return result


def _pull_from_fake_upstream(
    config: Config, document: dict[str, Any], reporter: Reporter
) -> PullResult:
    with FakeUpstream(document, document["changes"]) as fake:
        reporter.summary(f"fake upstream serving the demo school on {fake.url}")
        params = HttpParams(fake.url, fake.token, limit=config.source.page_limit)
        return http_pull(params, rules=settings.mark_rules(config), bar=reporter.bar)


def _show_demo_logins(issued: credentials.IssueResult, config: Config) -> None:
    """Print three logins to try; the passwords exist only in this output and the list."""
    labels = stored.labels_of(stored.demo_people().values())
    click.echo(f"\nopen {config.school.lan_url} and log in as:")
    for role, key in stored.demo_people().items():
        login, password = issued.secrets[key]
        name, class_name = labels[key]
        click.echo(f"  {role} ({name}, {class_name}): login {login}  password {password}")

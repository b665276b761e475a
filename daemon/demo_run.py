"""`otmetka demo`: the whole chain on the embedded default, from generated data to pages."""

from __future__ import annotations

import time
from pathlib import Path

from daemon import demo, importer, project
from daemon.batch import from_document
from daemon.config import Config
from daemon.errors import OtmetkaError
from daemon.progress import Reporter
from db import journal, migrations

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
) -> importer.ImportResult:
    """Generate the demo school, import it through the importer, report what it holds."""
    project.open_project(config)
    _reset_for_demo()
    started = time.monotonic()
    document = demo.generate_school(students=students, seed=seed, as_of=project.today_in(config))
    if export_path is not None:
        demo.write_exchange_file(document, export_path)
        reporter.summary(f"exchange file written to {export_path}")
    raw = from_document(document, f"demo school (seed {seed}, {students} students)")
    with reporter.bar("import", len(raw.changes)) as advance:
        result = importer.import_batch(raw, project.mark_rules(config), progress=advance)
    reporter.summary(f"{result.summary()} in {time.monotonic() - started:.1f} s")
    return result

"""`otmetka print extracts` and `otmetka print slips`: the library functions the CLI calls.

Extracts are rendered class by class in a process pool (`printing.workers`); a student's
extract whose content did not change comes from the cache under `printing.extracts_dir`.
Workers only read the database and write PDFs into a staging folder; only when every class
is done does this process move the PDFs into place and record what was printed, in one
transaction. A class that fails to render stops the run with no file moved and no row
written. The PDFs are owner-only (0600, in folders made 0700): they name every child.

Slips: the password exists only when it is issued, so `print slips` cannot print a
password again. For a class it prints slips for everyone who has not been given one:
people without a login get one, and a login whose password was never printed on a slip
(issued before slips existed, or its slips file lost) is replaced, because nobody can
have its password. People whose slip was printed are left alone (`otmetka credentials
rotate --login L` replaces a lost password); `--login-only` reprints login-only slips
for everyone in the class instead, and changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import shutil
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from otmetka.daemon.access import credentials
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.private import PRIVATE_FILE, new_private_dirs, private_dir
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import today_in
from otmetka.db import credentials as credentials_db
from otmetka.db import journal, queries, row_types, write_transaction
from otmetka.db import printing as printed
from otmetka.site_builder.atomic import write_atomic
from otmetka.site_builder.pdf import extracts, slips
from otmetka.site_builder.pdf.engine import render_pdf
from otmetka.site_builder.workers import worker_pool

CACHE_KEEP_DAYS = 35  # a cached extract unused this long is deleted


# --- extracts -------------------------------------------------------------------------------


@dataclass
class ExtractsResult:
    classes: int = 0
    extracts: int = 0
    pages: int = 0
    rendered: int = 0  # extracts rendered now; the rest came from the cache
    rendered_pages: int = 0
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    index_path: Path | None = None
    peak_worker_mb: float = 0.0
    empty: list[str] = field(default_factory=list)  # classes with nothing to print

    def summary(self) -> str:
        if not self.extracts:
            return "no extracts to print: " + _nothing_reason(self.empty)
        where = self.index_path or (self.files[0] if len(self.files) == 1 else "")
        return (
            f"printed {self.extracts} extracts of {self.classes} classes, {self.pages} pages "
            f"({self.rendered} rendered, {self.extracts - self.rendered} unchanged from the "
            f"cache) in {self.seconds:.1f} s: {where}"
        )


def _nothing_reason(empty: list[str]) -> str:
    names = ", ".join(empty) or "none"
    return f"no student with a family on paper delivery (or no students) in {names}"


def _classes(class_name: str | None, everyone: bool) -> list[row_types.ClassRow]:
    if bool(class_name) == bool(everyone):
        raise OtmetkaError("say which extracts to print: --class 7Б or --all (not both)")
    classes = queries.class_units()
    if everyone:
        return classes
    chosen = [c for c in classes if c.name == class_name]
    if not chosen:
        known = ", ".join(c.name for c in classes) or "none yet (import the journal first)"
        raise OtmetkaError(f"no class named «{class_name}»; classes: {known}")
    return chosen


def _period_id(period: str | None) -> str | None:
    """`--period` by id (q1) or by name («1 четверть»)."""
    if not period:
        return None
    rows = queries.periods()
    for row in rows:
        if period in (row.id, row.name) or period.casefold() == row.name.casefold():
            return row.id
    known = ", ".join(f"{r.id} «{r.name}»" for r in rows) or "none"
    raise OtmetkaError(f"no period «{period}»; periods: {known}")


def _file_name(class_name: str, paper_only: bool) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in class_name)
    return f"{safe}{'-paper' if paper_only else ''}.pdf"


@dataclass(frozen=True)
class _Plan:
    classes: list[row_types.ClassRow]
    folder: Path  # where the class PDFs go
    single_file: Path | None  # --out for one class
    paper_only: bool
    today: dt.date


def _plan(
    config: Config,
    classes: list[row_types.ClassRow],
    out: Path | None,
    paper_only: bool,
    today: dt.date,
) -> _Plan:
    default = config.printing.extracts_dir / today.isoformat()
    if len(classes) == 1 and out is not None and not out.is_dir():
        if out.suffix.lower() != ".pdf":
            raise OtmetkaError(f"--out {out}: give a file name ending in .pdf, or a folder")
        return _Plan(classes, out.parent, out, paper_only, today)
    return _Plan(classes, out or default, None, paper_only, today)


def _make_folders(config: Config, folder: Path) -> None:
    """The extracts name every child: the folders made for them (the cache's too) are
    owner-only, like their files. An `--out` folder that is there already keeps its mode."""
    new_private_dirs(folder)
    private_dir(config.printing.extracts_dir / "cache")


def _jobs(
    config: Config, plan: _Plan, period_id: str | None, staging: Path, layout: extracts.Layout
) -> list[extracts.ExtractJob]:
    today, run_id = plan.today, uuid.uuid4().hex
    return [
        extracts.ExtractJob(
            db_url=config.database.url,
            busy_timeout_ms=config.database.busy_timeout_ms,
            run_id=run_id,
            class_id=cls.id,
            today=today,
            issued=today,
            period_id=period_id,
            paper_only=plan.paper_only,
            school_name=config.school.name,
            paper_size=config.printing.paper_size,
            cache_dir=config.printing.extracts_dir / "cache",
            staging_dir=staging,
            layout=layout,
        )
        for cls in plan.classes
    ]


def _run(
    jobs: list[extracts.ExtractJob], workers: int, advance: Callable[[int], None]
) -> Iterator[extracts.ClassExtracts]:
    """Classes in a process pool; one class (or one worker) runs here, in this process."""
    if len(jobs) < 2 or workers < 2:
        for job in jobs:
            yield extracts.render_class(job)
            advance(1)
        return
    with worker_pool(workers) as pool:
        for done in pool.map(extracts.render_class, jobs):
            yield done
            advance(1)


def _clashes(done: list[extracts.ClassExtracts]) -> set[str]:
    """Codes that name another extract already recorded, or two extracts of this run."""
    parts = [p for c in done for p in c.parts]
    seen = Counter(p.code for p in parts)
    recorded = printed.codes_in_use(seen)
    clashes = set()
    for part in parts:
        own = (part.student_id, part.content_hash)  # the same extract printed again is fine
        if seen[part.code] > 1 or recorded.get(part.code, own) != own:
            clashes.add(part.code)
    return clashes


def _resolve_clashes(
    done: list[extracts.ClassExtracts], jobs: list[extracts.ExtractJob]
) -> list[extracts.ClassExtracts]:
    """Redo (here, rarely: 30^8 codes) the classes whose codes clash, avoiding those codes."""
    avoid: set[str] = set()
    while clashes := _clashes(done):
        avoid |= clashes
        by_class = {job.class_id: job for job in jobs}
        for index, result in enumerate(done):
            if any(p.code in clashes for p in result.parts):
                job = by_class[result.class_id]
                redo = dataclasses.replace(job, avoid_codes=frozenset(avoid))
                done[index] = extracts.render_class(redo)
    return done


def _move_into_place(plan: _Plan, done: list[extracts.ClassExtracts]) -> dict[str, Path]:
    final: dict[str, Path] = {}
    for result in done:
        if result.pdf_path is None:
            continue
        target = plan.single_file or plan.folder / _file_name(result.class_name, plan.paper_only)
        write_atomic(target, result.pdf_path.read_bytes(), mode=PRIVATE_FILE)
        final[result.class_id] = target
    return final


def _families(done: list[extracts.ClassExtracts]) -> list[extracts.FamilyLine]:
    """Guardians whose children's extracts are in different class PDFs."""
    names: dict[str, str] = {}
    children: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for result in done:
        for part in result.parts:
            for gid, name in zip(part.guardian_ids, part.guardian_names, strict=True):
                names[gid] = name
                children[gid].append((result.class_name, part.student_name))
    lines = [
        extracts.FamilyLine(names[g], [f"{s}, {c}" for c, s in kids])
        for g, kids in children.items()
        if len({c for c, _ in kids}) > 1
    ]
    return sorted(lines, key=lambda line: line.guardian)


def _index_lines(
    done: list[extracts.ClassExtracts], files: dict[str, Path]
) -> list[extracts.IndexLine]:
    teachers = {t.id: t for t in queries.teachers()}
    lines = []
    for result in done:
        if result.class_id not in files:
            continue
        teacher = teachers.get(result.class_teacher_id or "")
        name = f"{teacher.last_name} {teacher.first_name}".strip() if teacher else ""
        file_name = files[result.class_id].name
        lines.append(
            extracts.IndexLine(result.class_name, name, len(result.parts), result.pages, file_name)
        )
    return lines


def _write_index(
    config: Config, plan: _Plan, done: list[extracts.ClassExtracts], files: dict[str, Path]
) -> Path:
    school = queries.school()
    html = extracts.index_html(
        school_name=school.name if school and school.name else config.school.name,
        today=plan.today,
        paper_only=plan.paper_only,
        lines=_index_lines(done, files),
        families=_families(done),
    )
    path = plan.folder / ("index-paper.pdf" if plan.paper_only else "index.pdf")
    pdf = render_pdf(html, extracts.extract_css(config.printing.paper_size))
    write_atomic(path, pdf.data, mode=PRIVATE_FILE)
    return path


def _record(
    plan: _Plan, done: list[extracts.ClassExtracts], files: dict[str, Path], at: dt.datetime
) -> None:
    with write_transaction():
        for result in done:
            if result.class_id not in files:
                continue
            printed.record_extracts(_new_extracts(result), at)
            path = files[result.class_id]
            printed.record_batch(
                class_id=result.class_id,
                path=str(path),
                pdf_sha256=_sha256(path),
                extracts=len(result.parts),
                pages=result.pages,
                paper_only=plan.paper_only,
                period_id=result.period_id,
                at=at,
            )
            if result.class_teacher_id:  # their page links the class's latest extracts
                journal.mark_dirty("teacher", [result.class_teacher_id])


def _new_extracts(result: extracts.ClassExtracts) -> Iterator[printed.NewExtract]:
    for part in result.parts:
        yield printed.NewExtract(
            code=part.code,
            student_id=part.student_id,
            class_unit_id=result.class_id,
            guardian_ids=part.guardian_ids,
            period_id=result.period_id,
            week_start=result.week_start,
            as_of=result.as_of,
            content_hash=part.content_hash,
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prune_cache(cache_dir: Path, keep_days: int = CACHE_KEEP_DAYS) -> int:
    """Delete cached extracts not used for `keep_days` (a hit refreshes the time)."""
    if not cache_dir.is_dir():
        return 0
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for path in cache_dir.glob("*/*.pdf"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def print_extracts(
    config: Config,
    *,
    class_name: str | None,
    everyone: bool,
    period: str | None,
    paper_only: bool,
    out: Path | None,
    reporter: Reporter,
    layout: extracts.Layout = "student",
    today: dt.date | None = None,
) -> ExtractsResult:
    """Print the extracts of one class (or of every class, with an index) and record them.

    `today` (default: the school's today) is the date the data is given for and the date
    of issue. `layout="class"` renders a class as one document (for bench/print.py).
    """
    started = time.perf_counter()
    day = today or today_in(config)
    plan = _plan(config, _classes(class_name, everyone), out, paper_only, day)
    period_id = _period_id(period)
    _make_folders(config, plan.folder)
    prune_cache(config.printing.extracts_dir / "cache")
    staging = Path(tempfile.mkdtemp(dir=plan.folder, prefix=".staging-"))
    try:
        jobs = _jobs(config, plan, period_id, staging, layout)
        with reporter.bar("printing extracts", len(jobs)) as advance:
            done = list(_run(jobs, config.printing.workers, advance))
        done = _resolve_clashes(done, jobs)
        files = _move_into_place(plan, done)
        index = _write_index(config, plan, done, files) if everyone and files else None
        _record(plan, done, files, dt.datetime.now(dt.UTC))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _result(done, files, index, time.perf_counter() - started)


def _result(
    done: list[extracts.ClassExtracts],
    files: dict[str, Path],
    index: Path | None,
    seconds: float,
) -> ExtractsResult:
    parts = [p for c in done for p in c.parts]
    return ExtractsResult(
        classes=len(files),
        extracts=len(parts),
        pages=sum(c.pages for c in done),
        rendered=sum(1 for p in parts if p.rendered),
        rendered_pages=sum(c.rendered_pages for c in done),
        seconds=seconds,
        files=list(files.values()),
        index_path=index,
        peak_worker_mb=max((c.peak_rss_mb for c in done), default=0.0),
        empty=[c.class_name for c in done if c.pdf_path is None],
    )


# --- slips ----------------------------------------------------------------------------------


@dataclass
class SlipsResult:
    path: Path | None = None
    with_password: int = 0
    new_logins: int = 0
    replaced: int = 0  # logins whose password was never printed, replaced
    already: int = 0  # people whose slip was printed before, left alone
    login_only: int = 0

    def summary(self) -> str:
        if self.login_only:
            return (
                f"printed {self.login_only} login-only slips (passwords are not kept; "
                f"a lost one is replaced with `otmetka credentials rotate`): {self.path}"
            )
        if not self.with_password:
            return (
                f"nothing to print: all {self.already} people already got their slips; "
                "--login-only reprints logins, `otmetka credentials rotate --login L` "
                "replaces a lost password"
            )
        return (
            f"printed {self.with_password} slips with passwords ({self.new_logins} new "
            f"logins, {self.replaced} logins replaced because their password was never "
            f"printed; {self.already} people already had slips): {self.path} (owner-only)"
        )


def _login_only(config: Config, people: set[credentials.PageKey]) -> SlipsResult:
    active = credentials_db.active_by_person()
    keys = sorted(k for k in people if k in active)
    if not keys:
        return SlipsResult()
    labels = credentials_db.labels_of(keys)
    items = [slips.Slip(labels[k][0], k[0], labels[k][1], active[k].login, None) for k in keys]
    items.sort(key=lambda s: (s.class_name, s.name, s.login))
    pdf = slips.slips_pdf(items, credentials.slip_addresses(config)).data
    at = dt.datetime.now(dt.UTC)
    path = credentials.write_slips(config, pdf, at, prefix="logins")
    with write_transaction():
        printed.record_slips([printed.SlipRow(active[k].login, k, False) for k in keys], at)
    return SlipsResult(path=path, login_only=len(items))


def print_slips(
    config: Config,
    *,
    class_name: str | None,
    everyone: bool,
    qr_password: bool,
    login_only: bool,
    reporter: Reporter,
) -> SlipsResult:
    """Slips for the people of a class (or everyone) who have not been given one."""
    people = credentials.people_in_scope(class_name, everyone)
    if login_only:
        return _login_only(config, people)
    active = {k: c for k, c in credentials_db.active_by_person().items() if k in people}
    printed_logins = printed.logins_with_password_slip(c.login for c in active.values())
    unprinted = [c for c in active.values() if c.login not in printed_logins]
    missing = people - set(active)
    targets = missing | {(c.person_kind, c.person_id) for c in unprinted}
    result = SlipsResult(already=len(active) - len(unprinted))
    if not targets:
        return result
    prepared = credentials.prepare_issue(config, targets, reporter, qr_password=qr_password)
    issued = credentials.commit_issue(config, prepared, dt.datetime.now(dt.UTC), revoking=unprinted)
    result.path = issued.slips_path
    result.with_password, result.new_logins, result.replaced = (
        issued.issued,
        len(missing),
        len(unprinted),
    )
    return result

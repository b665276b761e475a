"""Paper extracts: one A4 extract per student, printed class by class.

An extract shows what the student's page shows, from the same view models
(`otmetka.site_builder.pages.family.child_view`), so paper and screen agree: grades by subject with
averages, attendance, the test schedule, homework of the coming week and recommendations,
under the school's header with the date of issue, and ends with a tear-off acknowledgement
slip carrying a short code that staff type into `otmetka ack register`.

Page numbers («Стр. 1 из 2») restart for every student. WeasyPrint can restart the page
counter per page group, but `counter(pages)` always counts the whole document, so each
student is rendered as a document of their own and a class PDF is the concatenation
(`engine.merge_pdfs`). That also makes the per-student cache possible: a student's PDF is
kept under the hash of its content, and an extract whose content did not change is not
rendered again. `render_class(job)` does one class and runs in a worker process; it only
reads the database, and the caller records what was printed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import html
import os
import re
import resource
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape

from otmetka.db import acts as events
from otmetka.db import database, open_database, queries, row_types
from otmetka.site_builder import crypto, formatting, static_files, templating
from otmetka.site_builder.atomic import write_atomic
from otmetka.site_builder.markdown import render_markdown
from otmetka.site_builder.pages import family, lookups
from otmetka.site_builder.pdf import engine, slips

CODE_LENGTH = 8
# Where the code goes: the content is hashed without it, since the code derives from the hash.
_CODE_SLOT = "⁂otm-extract-code⁂"
Layout = Literal["student", "class"]


# --- codes ----------------------------------------------------------------------------------


def extract_code(
    student_id: str, guardian_ids: Sequence[str], content_hash: str, attempt: int = 0
) -> str:
    """The code of one extract: 8 symbols of the unambiguous alphabet, from its identity.

    The same extract printed again gets the same code; a clash with another extract (rare:
    30^8 codes) is resolved by the caller with the next `attempt`.
    """
    text = f"otmetka extract code v1|{student_id}|{','.join(guardian_ids)}|{content_hash}|{attempt}"
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")
    symbols = []
    for _ in range(CODE_LENGTH):
        number, index = divmod(number, len(crypto.ALPHABET))
        symbols.append(crypto.ALPHABET[index])
    return "".join(symbols)


def format_code(code: str) -> str:
    """«K7MP-2X4Q»: two groups of four are easier to read out and type."""
    return f"{code[:4]}-{code[4:]}"


# --- templates and styles -------------------------------------------------------------------


NBSP = "\u00a0"
# After a hyphen a line may break even before a non-breaking space («4-| (7.09)»); a word
# joiner forbids that and prints nothing.
WORD_JOINER = "\u2060"


def _marks_text(marks: Sequence[family.MarkView]) -> str:
    """«5 (7.09), 4- ×2 (14.09)»: one text run per subject lays out far faster than a box
    per mark, and 60 marks still wrap like a sentence. Within one mark nothing may break,
    so a line ends only after a comma: a mark never leaves its date."""
    out = []
    for mark in marks:
        extra = f" ×{formatting.number(mark.weight)}" if mark.weight != 1 else ""
        kind = formatting.MARK_KINDS.get(mark.kind)
        note = f", {kind}" if kind else ""
        out.append(f"{mark.raw}{extra} ({mark.date.day}.{mark.date.month:02}{note})")
    joined = (text.replace(" ", NBSP).replace("-", "-" + WORD_JOINER) for text in out)
    return ", ".join(joined)


def _marks_noun(weight: float) -> str:
    if weight != int(weight):
        return "оценки"  # «за 1,5 оценки»
    whole = int(weight)
    if whole % 10 == 1 and whole % 100 != 11:
        return "оценку"
    few = whole % 10 in (2, 3, 4) and whole % 100 not in (12, 13, 14)
    return "оценки" if few else "оценок"


def weights_legend(subjects: Sequence[family.SubjectGrades]) -> str:
    """One sentence per extract explaining the «×2» after a mark; empty when every mark
    weighs 1."""
    weights = sorted({m.weight for s in subjects for m in s.marks if m.weight != 1})
    if not weights:
        return ""
    parts = []
    for n, weight in enumerate(weights):
        shown = formatting.number(weight)
        how = "после оценки — её вес: в среднем балле она считается" if n == 0 else "—"
        parts.append(f"«×{shown}» {how} за {shown} {_marks_noun(weight)}")
    return "; ".join(parts) + "."


# --- links on paper ---------------------------------------------------------------------------

# A path longer than this is cut at a «/» and the whole address goes into a QR code.
SHORT_PATH = 32
# The sanitiser (site_builder/markdown.py) writes every link in exactly this shape.
_LINK = re.compile(r'<a href="([^"]*)"[^>]*>(.*?)</a>', re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def short_address(url: str) -> tuple[str, bool]:
    """«resh.edu.ru/subject/lesson/7411»: the address as a parent types it (no scheme, no
    «www.», no trailing «/»), and whether it still leads to the same place (False: a long
    path was cut or a query dropped, so a QR code carries the whole address)."""
    parts = urlsplit(url)
    if parts.scheme == "mailto":
        return parts.path, True
    host = parts.netloc.rsplit("@", 1)[-1].lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    whole = not parts.query
    if len(path) > SHORT_PATH:
        path, whole = path[: SHORT_PATH + 1].rsplit("/", 1)[0] + "/…", False
    return host + path, whole


def _printed_link(match: re.Match[str]) -> str:
    href = html.unescape(match.group(1))
    title = match.group(2)
    short, whole = short_address(href)
    label = escape(short)
    said = html.unescape(_TAG.sub("", title)).strip()
    if said in (href, short, href.split("://", 1)[-1]):
        text = f'<a href="{match.group(1)}">{label}</a>'
    else:
        text = f'{match.group(0)} <span class="url">({label})</span>'
    if not whole:
        text += f'<span class="qr">{slips.qr_svg(href)}</span>'
    return text


@functools.lru_cache(maxsize=4096)
def _markdown_on_paper(text: str) -> str:
    return _LINK.sub(_printed_link, render_markdown(text))


def markdown_on_paper(text: str) -> Markup:
    """A teacher's Markdown as the pages render it, with every link's address printed after
    its title: paper cannot be clicked."""
    return Markup(_markdown_on_paper(text))


@functools.cache
def environment() -> jinja2.Environment:
    """The pages' environment (same filters, same wording) plus the print filters."""
    return templating.with_filters(
        templating.environment(), marks=_marks_text, md=markdown_on_paper, legend=weights_legend
    )


@functools.cache
def extract_css(paper_size: str, layout: Layout = "student") -> str:
    css = f"@page {{ size: {paper_size}; }}\n" + static_files.text("print-extract.css")
    if layout == "class":
        # One document per class: page groups restart the counter, but there is no total
        # per student, so the footer says only «Стр. N».
        css += (
            "\n.ex { page: extract; break-before: page; }"
            "\n@page :nth(1 of extract) { counter-reset: page 1; }"
            '\n@page { @bottom-right { content: "Стр. " counter(page); } }'
        )
    return css


def document_html(parts: Sequence[str], title: str) -> str:
    template = environment().get_template("print_document.html.j2")
    return template.render(parts=[Markup(p) for p in parts], title=title)


@functools.cache
def _weasyprint_version() -> str:
    import weasyprint

    return str(weasyprint.__version__)


def content_hash(article: str, css: str) -> str:
    """Everything that decides the printed pages, except the code (derived from this)."""
    wrapper = (
        resources.files("otmetka.site_builder") / "templates" / "print_document.html.j2"
    ).read_text(encoding="utf-8")
    parts = (_weasyprint_version(), engine.fonts_version(), wrapper, css, article)
    return hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()


# --- one student ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractContext:
    school_name: str
    child: family.ChildView
    full_name: str  # with the patronymic: an extract is a document given to a family
    guardians: list[str]
    period: row_types.PeriodRow | None
    today: dt.date
    issued: dt.date


def article_html(ctx: ExtractContext, code: str = _CODE_SLOT) -> str:
    """One student's extract (an <article>), with `code` on its tear-off slip."""
    template = environment().get_template("print_extract.html.j2")
    return template.render(
        school_name=ctx.school_name,
        c=ctx.child,
        student_name=ctx.full_name,
        guardians=ctx.guardians,
        period=ctx.period,
        today=ctx.today,
        issued=ctx.issued,
        code=code,
    )


# --- one class, in a worker -----------------------------------------------------------------


@dataclass(frozen=True)
class ExtractJob:
    """What a worker needs to print one class; plain data, so it crosses processes."""

    db_url: str
    busy_timeout_ms: int
    run_id: str
    class_id: str
    today: dt.date
    issued: dt.date
    period_id: str | None
    paper_only: bool
    school_name: str
    paper_size: str
    cache_dir: Path
    staging_dir: Path
    layout: Layout = "student"
    avoid_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ExtractPart:
    student_id: str
    student_name: str
    guardian_ids: tuple[str, ...]
    guardian_names: tuple[str, ...]
    code: str
    content_hash: str
    rendered: bool
    pages: int


@dataclass(frozen=True)
class ClassExtracts:
    class_id: str
    class_name: str
    class_teacher_id: str | None
    period_id: str | None
    week_start: dt.date
    as_of: dt.date
    parts: list[ExtractPart]
    pdf_path: Path | None
    pages: int
    rendered_pages: int
    peak_rss_mb: float


@dataclass
class _School:
    lookup: lookups.Lookup
    school_name: str
    guardians: dict[str, list[row_types.GuardianRow]]
    on_paper: set[str]  # paper delivery, or refused / withdrew consent to electronic


_SCHOOL: dict[tuple[str, str], _School] = {}


def _school(job: ExtractJob) -> _School:
    """School-wide data, loaded once per worker and run."""
    key = (job.db_url, job.run_id)
    if key not in _SCHOOL:
        _SCHOOL.clear()
        ref = queries.reference()
        guardians: dict[str, list[row_types.GuardianRow]] = defaultdict(list)
        for guardian, student_id in queries.guardians_with_children(job.today):
            if guardian not in guardians[student_id]:
                guardians[student_id].append(guardian)
        name = ref.school.name if ref.school and ref.school.name else job.school_name
        refusing = {g for g, state in events.consent_states().items() if state in events.ON_PAPER}
        paper = {g.id for rows in guardians.values() for g in rows if g.delivery == "paper"}
        lookup = lookups.Lookup.build(ref, job.today)
        _SCHOOL[key] = _School(lookup, name, dict(guardians), paper | refusing)
    return _SCHOOL[key]


def _connect(job: ExtractJob) -> None:
    """A worker opens its own connection; the caller's process already has one."""
    if database.obj is None or database.is_closed():
        open_database(job.db_url, job.busy_timeout_ms)


def _scope(job: ExtractJob, lookup: lookups.Lookup) -> lookups.ClassScope:
    scope = lookups.ClassScope.build(lookup.classes[job.class_id], lookup)
    period = lookup.periods_by_id.get(job.period_id or "")
    return dataclasses.replace(scope, period=period) if period else scope


def _addressees(job: ExtractJob, school: _School, student_id: str) -> list[row_types.GuardianRow]:
    rows = school.guardians.get(student_id, [])
    chosen = [g for g in rows if g.id in school.on_paper] if job.paper_only else list(rows)
    return sorted(chosen, key=lambda g: (g.last_name, g.first_name, g.middle_name, g.id))


def class_contexts(
    job: ExtractJob,
) -> tuple[lookups.ClassScope, list[tuple[ExtractContext, list[str]]]]:
    school = _school(job)
    scope = _scope(job, school.lookup)
    start, end = scope.load_range
    bundle = queries.class_bundle(
        job.class_id, start, end, finals_from=scope.year_start, notes_from=scope.year_start
    )
    index = lookups.ClassIndex(bundle, scope, school.lookup)
    students = sorted(
        (s for s in bundle.students if s.left_at is None or s.left_at > job.today),
        key=lookups.student_sort_key,
    )
    out = []
    for student in students:
        guardians = _addressees(job, school, student.id)
        if job.paper_only and not guardians:
            continue
        names = [lookups.person_name(g) for g in guardians]
        child = family.child_view(student, index)
        full = lookups.person_name(student)
        ctx = ExtractContext(
            school.school_name, child, full, names, scope.period, job.today, job.issued
        )
        out.append((ctx, [g.id for g in guardians]))
    return scope, out


def _cache_path(job: ExtractJob, digest: str, code: str) -> Path:
    return job.cache_dir / digest[:2] / f"{digest}-{code}.pdf"


def _cached(path: Path) -> bool:
    """A cache file is used only if complete: it is written without fsync, for speed."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 32))
            tail = handle.read()
    except OSError:
        return False
    if b"%%EOF" not in tail:
        return False
    os.utime(path)  # keeps it from being pruned as unused
    return True


def _write_cache(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # extracts are private
    write_atomic(path, data, mode=0o600)


def _unique_code(job: ExtractJob, student_id: str, guardians: list[str], digest: str) -> str:
    attempt = 0
    while True:
        code = extract_code(student_id, guardians, digest, attempt)
        if code not in job.avoid_codes:
            return code
        attempt += 1


def _student_part(job: ExtractJob, ctx: ExtractContext, guardian_ids: list[str]) -> ExtractPart:
    css = extract_css(job.paper_size)
    article = article_html(ctx)
    digest = content_hash(article, css)
    code = _unique_code(job, ctx.child.student_id, guardian_ids, digest)
    path = _cache_path(job, digest, code)
    pages, rendered = 0, False
    if not _cached(path):
        html = document_html([article.replace(_CODE_SLOT, format_code(code))], ctx.full_name)
        pdf = engine.render_pdf(html, css)
        _write_cache(path, pdf.data)
        pages, rendered = pdf.pages, True
    return ExtractPart(
        ctx.child.student_id,
        ctx.full_name,
        tuple(guardian_ids),
        tuple(ctx.guardians),
        code,
        digest,
        rendered,
        pages,
    )


def _class_pdf_path(job: ExtractJob) -> Path:
    name = hashlib.sha256(job.class_id.encode()).hexdigest()[:16]
    return job.staging_dir / f"{name}.pdf"


def _per_student(job: ExtractJob, items: list[tuple[ExtractContext, list[str]]]) -> Any:
    parts = [_student_part(job, ctx, guardians) for ctx, guardians in items]
    paths = [_cache_path(job, p.content_hash, p.code) for p in parts]
    data, pages = engine.merge_pdfs(paths)
    return parts, data, pages, sum(p.pages for p in parts)


def _one_document(job: ExtractJob, items: list[tuple[ExtractContext, list[str]]]) -> Any:
    """The whole class as one document: measured by bench/print.py, not used by the CLI."""
    css = extract_css(job.paper_size, "class")
    parts, articles = [], []
    for ctx, guardians in items:
        article = article_html(ctx)
        digest = content_hash(article, css)
        code = _unique_code(job, ctx.child.student_id, guardians, digest)
        articles.append(article.replace(_CODE_SLOT, format_code(code)))
        names = tuple(ctx.guardians)
        parts.append(
            ExtractPart(
                ctx.child.student_id, ctx.full_name, tuple(guardians), names, code, digest, True, 0
            )
        )
    pdf = engine.render_pdf(document_html(articles, job.class_id), css)
    return parts, pdf.data, pdf.pages, pdf.pages


def render_class(job: ExtractJob) -> ClassExtracts:
    """Print one class into `job.staging_dir`; reads the database, writes no rows."""
    _connect(job)
    scope, items = class_contexts(job)
    pdf_path, pages, rendered_pages, parts = None, 0, 0, []
    if items:
        render_one = _one_document if job.layout == "class" else _per_student
        parts, data, pages, rendered_pages = render_one(job, items)
        pdf_path = _class_pdf_path(job)
        pdf_path.write_bytes(data)
    return ClassExtracts(
        class_id=job.class_id,
        class_name=scope.class_row.name,
        class_teacher_id=scope.class_row.class_teacher_id,
        period_id=scope.period.id if scope.period else None,
        week_start=scope.week_start,
        as_of=job.today,
        parts=parts,
        pdf_path=pdf_path,
        pages=pages,
        rendered_pages=rendered_pages,
        peak_rss_mb=peak_rss_mb(),
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ru_maxrss survives exec, so a spawned
    worker would report its parent's peak; VmHWM belongs to the process image itself."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the index of a whole-school run ----------------------------------------------------------


@dataclass(frozen=True)
class IndexLine:
    class_name: str
    class_teacher: str
    extracts: int
    pages: int
    file_name: str


@dataclass(frozen=True)
class FamilyLine:
    guardian: str
    children: list[str]  # «Иванов Артём, 7Б»


def index_html(
    *,
    school_name: str,
    today: dt.date,
    paper_only: bool,
    lines: Sequence[IndexLine],
    families: Sequence[FamilyLine],
) -> str:
    template = environment().get_template("print_index.html.j2")
    body = template.render(
        school_name=school_name,
        today=today,
        paper_only=paper_only,
        lines=lines,
        families=families,
    )
    return document_html([body], "Выписки: перечень")

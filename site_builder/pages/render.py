"""What each person's decrypted page shows: the HTML fragment the shell puts into
``<main id="otm-app">`` after unlocking.

The fragment is pure HTML and CSS (its scripts would never run) and deterministic: the same
data and the same `today` give the same string, because the builder hashes it to skip
unchanged pages. The pages are assembled class by class (otmetka.site_builder.pages.assembly),
in this process or in worker processes (otmetka.site_builder.pages.render_pool).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from concurrent.futures import Future

from otmetka.db import acts as events
from otmetka.site_builder import static_files, templating
from otmetka.site_builder.pages import assembly, audience, consent_text, render_pool
from otmetka.site_builder.workers import database_url


def page_css() -> str:
    """The page styles (static/page.css and the acts' static/acts.css), for the shell."""
    return static_files.text("page.css") + static_files.text("acts.css")


Page = tuple[audience.PageKey, str]


def start_workers_early(workers: int) -> None:
    """For a build that will render with `workers` processes: start what makes them now, so
    that it overlaps the build's first steps."""
    if _pooled(workers):
        render_pool.start_early()


def _pooled(workers: int) -> bool:
    """Whether pages may be rendered by worker processes (an in-memory database is not
    shared with them)."""
    return workers > 1 and database_url() is not None


def render_pages(
    today: dt.date,
    wanted: set[audience.PageKey] | None = None,
    *,
    workers: int = 1,
    meanwhile: Iterable[Page] = (),
) -> Iterator[Page]:
    """Yield (key, html_fragment) for every page in `wanted` (None: everyone on roll, whatever
    their consent; the builder asks only for guardians who consented, see build.py).
    Work class by class: load one class bundle, render each child section ONCE and reuse it
    in the student page, the guardians' pages and the class teacher page.

    Keys in `wanted` that have no page on `today` (left, paper delivery, unknown) are
    skipped. Pages come out in no particular order, each exactly once. With `workers` > 1
    the classes are rendered by that many processes (see otmetka.site_builder.pages.render_pool).
    `meanwhile` are pages made without the classes (the consent pages): they come out
    while the workers are still busy with the next class, and all that is left at the end,
    so that this process encrypts and writes them instead of waiting.
    """
    build = assembly.build_for(today, wanted)
    todo = build.todo()
    spare = iter(meanwhile)
    if _pooled(workers) and len(todo) > 1:
        for future in render_pool.class_works(todo, today, wanted, workers):
            yield from _until_done(future, spare)
            yield from build.take(future.result())
    else:
        for class_id in todo:
            yield from build.take(build.class_work(class_id))
    yield from build.last_pages()
    yield from spare


def _until_done(future: Future[assembly.ClassWork], spare: Iterator[Page]) -> Iterator[Page]:
    while not future.done():
        page = next(spare, None)
        if page is None:
            return
        yield page


def render_consent_pages(today: dt.date, keys: Iterable[audience.PageKey]) -> Iterator[Page]:
    """Pages of guardians who have not consented yet: what the service is and the consent
    form, with no personal data at all (not even the guardian's name)."""
    _name, _address, short = events.operator()
    acts = assembly.acts_context("consent", today, consent_html=consent_text.consent_html())
    page = str(templating.fragment("page_consent.html.j2", school_name=short, acts=acts))
    for key in sorted(keys):
        yield key, page


def blocked_page(title: str) -> str:
    """The «доступ заблокирован» page that replaces a page whose login leaked."""
    return str(templating.fragment("page_blocked.html.j2", title=title))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["consent"]:
        sys.exit("usage: python -m otmetka.site_builder.pages.render consent > docs/consent.md")
    sys.stdout.write(consent_text.consent_document())

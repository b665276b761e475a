"""The PDF engine gives back the memory of a big document at once: WeasyPrint leaves its
boxes and styles in reference cycles, which would otherwise wait for a full collection and
stop a later step of the same process (a build after the slips) for seconds."""

from __future__ import annotations

import gc

from otmetka.site_builder.pdf import engine

CSS = "@page { size: A6; margin: 10mm } p { break-after: page }"


def _pages(count: int) -> str:
    return "".join(f"<p>Страница {n}</p>" for n in range(count))


def _left_in_cycles(pages: int) -> int:
    gc.collect()
    rendered = engine.render_pdf(_pages(pages), CSS)
    assert rendered.pages == pages
    return gc.collect()


def test_a_big_document_leaves_nothing_for_the_collector() -> None:
    assert _left_in_cycles(engine.COLLECT_FROM_PAGES) < 100


def test_a_small_document_is_left_to_the_collector() -> None:
    # What the big one would leave without the engine's collection: thousands of objects.
    assert _left_in_cycles(engine.COLLECT_FROM_PAGES - 1) > 1000

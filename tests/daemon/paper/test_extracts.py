"""Paper extracts: what they show (read back from the PDF), page numbers per student, the
shipped fonts, hard cases that must wrap, the cache, the records behind `ack register`,
the whole-school run with its index, and bad input. The class teacher's encrypted copy is
in test_extract_copy.py."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pypdf import PdfReader
from weasyprint.formatting_structure import boxes

from otmetka.daemon.cli import main
from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import import_document
from otmetka.db import models
from otmetka.db import printing as printed
from otmetka.site_builder import crypto
from otmetka.site_builder.pages import family
from otmetka.site_builder.pdf import engine, extracts
from tests.support.extract_support import print_class
from tests.support.factories import change, envelope
from tests.support.page_factories import TODAY, page_school, two_class_school
from tests.support.qr_codes import read_qr_codes

NBSP = "\u00a0"


# --- helpers ------------------------------------------------------------------------------


def _pages(path: Path) -> list[str]:
    """The text as a reader sees it: a non-breaking space reads as a space."""
    return [page.extract_text().replace(NBSP, " ") for page in PdfReader(path).pages]


def _squash(text: str) -> str:
    """Line breaks and spaces out: a wrapped word or URL reads back whole."""
    return re.sub(r"\s+", "", text)


def _fonts(path: Path) -> set[str]:
    names = set()
    for page in PdfReader(path).pages:
        for font in page["/Resources"]["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]))
    return names


@pytest.fixture
def school(file_db: Path, rules: MarkRules) -> None:
    import_document(page_school(), "school.json", rules)


# --- what an extract shows ----------------------------------------------------------------


def test_extracts_show_the_page_data_in_the_shipped_fonts(school: None, config: Config) -> None:
    result = print_class(config)
    assert result.extracts == 3 and result.rendered == 3 and len(result.files) == 1
    path = result.files[0]
    assert path == config.printing.extracts_dir / TODAY.isoformat() / "7Б.pdf"
    pages = _pages(path)
    assert len(pages) == result.pages == 3  # one page each, in surname order
    alena = next(p for p in pages if "Иванова-Крылова Алёна" in p)
    for expected in (
        "Школа №1",
        "Выписка из электронного дневника",
        "Кому Иванова Мария",
        "Дата выдачи 16 сентября 2026",
        "Классный руководитель Королёва Анна Петровна",
        "Оценки: 1 четверть",
        "5 (7.09), 4- ×2 (14.09)",  # the marks of the page, with the weight
        "4,33",  # the weighted average the page shows
        "Пропущено уроков: 0",
        "23 сентября 2026 Русский язык Самостоятельная работа: Причастный оборот",
        "Доклад о причастиях",  # her individual homework
        "Больше читать вслух",
        "С информацией ознакомлен(а):",
        "подпись расшифровка дата",
        "Стр. 1 из 1",
        "Выписка от 16 сентября 2026",
    ):
        assert expected in alena, expected
    assert "Повторить дроби" not in alena  # another child's recommendation
    assert all(
        name.endswith(("PT-Sans", "PT-Sans-Bold", "PT-Sans-Italic")) for name in _fonts(path)
    )


def test_page_numbers_restart_for_every_student(school: None, config: Config) -> None:
    many = [
        change(
            "recommendation",
            f"r-long-{n}",
            {
                "student_id": "s-2",
                "teacher_id": "t-1",
                "date": "2026-09-15",
                "text": f"Рекомендация {n}: " + "читать и пересказывать главы вслух. " * 12,
            },
        )
        for n in range(25)
    ]
    import_document(envelope(many, mode="delta", cursor="c2"), "more.json", MarkRules())
    path = print_class(config).files[0]
    footers = [re.findall(r"Стр\. \d+ из \d+", text)[-1] for text in _pages(path)]
    artyom = len(footers) - 2  # Иванов Артём comes first and takes all but two pages
    assert artyom >= 2
    assert footers == [f"Стр. {n} из {artyom}" for n in range(1, artyom + 1)] + [
        "Стр. 1 из 1",
        "Стр. 1 из 1",
    ]


# --- marks, weights and links on paper -------------------------------------------------------

# A mark with its optional weight and its date, as one piece of text on one line.
MARK_AND_DATE = re.compile(r"(?:^|, )[2-5][-+]? (?:×[\d,]+ )?\(\d{1,2}\.\d\d\)")
WEIGHT_2 = "«×2» после оценки — её вес: в среднем балле она считается за 2 оценки."


def test_a_mark_never_leaves_its_date(school: None, config: Config) -> None:
    """60 marks wrap over several lines of a narrow column, and each line ends after a
    comma: every mark reads back with its date on the same line."""
    import_document(envelope(_hard_student(), mode="delta", cursor="c2"), "hard.json", MarkRules())
    pages = _pages(print_class(config).files[0])
    lines = [
        line for text in pages if _squash(LONG_LAST) in _squash(text) for line in text.split("\n")
    ]
    wrapped = [line for line in lines if re.search(r"\(\d{1,2}\.\d\d\)", line)]
    assert len(wrapped) >= 5  # the marks of subj-01 do wrap
    whole = sum(len(MARK_AND_DATE.findall(line.strip())) for line in lines)
    assert whole == 60 + 2 * 19, [line for line in wrapped if line.startswith("(")]
    assert not [line for line in lines if re.match(r"\s*\(\d{1,2}\.\d\d", line)]


def test_the_weight_is_explained_once_where_a_mark_has_one(school: None, config: Config) -> None:
    pages = _pages(print_class(config).files[0])
    alena = next(p for p in pages if "Иванова-Крылова Алёна" in p)
    assert "4- ×2 (14.09)" in alena
    assert _squash(alena).count(_squash(WEIGHT_2)) == 1
    unweighted = [p for p in pages if "×" not in p.split("Средний балл по всем")[0]]
    assert unweighted and all("её вес" not in p for p in unweighted)


@pytest.mark.parametrize(
    ("weights", "legend"),
    [
        ([1.0, 1.0], ""),
        ([2.0], WEIGHT_2),
        (
            [1.5, 5.0, 21.0, 1.0, 1.5],
            "«×1,5» после оценки — её вес: в среднем балле она считается за 1,5 оценки; "
            "«×5» — за 5 оценок; «×21» — за 21 оценку.",
        ),
    ],
)
def test_weights_legend(weights: list[float], legend: str) -> None:
    marks = [
        family.MarkView("5", dt.date(2026, 9, n + 1), weight, "regular", "", "")
        for n, weight in enumerate(weights)
    ]
    subjects = [
        family.SubjectGrades("Алгебра", marks[:2], None, []),
        family.SubjectGrades("Физика", marks[2:], None, []),
    ]
    assert extracts.weights_legend(subjects) == legend


RESH = "https://resh.edu.ru/subject/lesson/7411/start/"
LONG_LINK = "https://www.prosv.ru/umk/perspektiva/info.aspx?ob_no=12345&section=homework&page=2"
LINKED_HOMEWORK = (
    f"Посмотреть [урок на РЭШ]({RESH}), прочитать [главу учебника]({LONG_LINK}), "
    "вопросы: <https://www.example.org/q/>, пишите на [почту](mailto:teacher@example.org)"
)


@pytest.mark.parametrize(
    ("url", "short", "whole"),
    [
        (RESH, "resh.edu.ru/subject/lesson/7411/start", True),
        ("https://www.example.org/", "example.org", True),
        ("http://EXAMPLE.org:8080/a", "example.org:8080/a", True),
        (LONG_LINK, "prosv.ru/umk/perspektiva/info.aspx", False),
        ("https://x.ru/" + "abcdefgh/" * 6, "x.ru/abcdefgh/abcdefgh/abcdefgh/…", False),
        ("https://x.ru/" + "a" * 40, "x.ru/…", False),
        ("mailto:teacher@example.org", "teacher@example.org", True),
    ],
)
def test_short_address(url: str, short: str, whole: bool) -> None:
    assert extracts.short_address(url) == (short, whole)


def test_links_print_their_address_and_a_cut_one_a_qr_code(
    school: None, config: Config, tmp_path: Path
) -> None:
    homework = change(
        "homework",
        "hw-links",
        {
            "subject_id": "rus",
            "group_id": "g-rus",
            "assigned_on": "2026-09-14",
            "due_date": "2026-09-18",
            "text": LINKED_HOMEWORK,
        },
    )
    import_document(envelope([homework], mode="delta", cursor="c2"), "links.json", MarkRules())
    path = print_class(config).files[0]
    text = " ".join(_pages(path))
    for expected in (
        "урок на РЭШ (resh.edu.ru/subject/lesson/7411/start)",
        "главу учебника (prosv.ru/umk/perspektiva/info.aspx)",
        "вопросы: example.org/q,",
        "почту (teacher@example.org)",
    ):
        assert _squash(expected) in _squash(text), expected
    # The cut address, whole, once per extract that shows the homework; nothing else.
    codes = read_qr_codes(path, tmp_path / "scans")
    assert codes and set(codes) == {LONG_LINK}


# --- hard cases ---------------------------------------------------------------------------

LONG_LAST = "Константинопольская-Кшесинская-Оболенская-Трубецкая-Волконская"
LONG_FIRST = "Александра-Виктория-Елизавета"
LONG_MIDDLE = "Вячеславовна-Ярославовна"
LONG_URL = (
    "https://resh.edu.ru/subject/lesson/"
    + "очень-длинный-путь-к-уроку-" * 8
    + "?utm_source=journal&parameter="
    + "x" * 90
)
SUBJECTS = [
    (f"subj-{n:02}", f"Предмет {n:02}: основы проектной и исследовательской деятельности")
    for n in range(1, 21)
]
RAWS = ["5", "4", "3", "4-", "5", "2"]


def _hard_student() -> list[dict[str, Any]]:
    rows = [
        change(
            "student",
            "s-9",
            {
                "last_name": LONG_LAST,
                "first_name": LONG_FIRST,
                "middle_name": LONG_MIDDLE,
                "class_unit_id": "cls-7b",
            },
        ),
        change(
            "group",
            "g-hard",
            {
                "name": "7Б, проект",
                "kind": "subgroup",
                "subject_id": "rus",
                "class_unit_ids": ["cls-7b"],
            },
        ),
        change(
            "membership",
            "m-hard",
            {"group_id": "g-hard", "student_id": "s-9", "from": "2026-09-01"},
        ),
        change(
            "homework",
            "hw-url",
            {
                "subject_id": "rus",
                "group_id": "g-hard",
                "assigned_on": "2026-09-14",
                "due_date": "2026-09-17",
                "text": f"Прочитать статью {LONG_URL}",
            },
        ),
    ]
    rows += [change("subject", sid, {"name": name}) for sid, name in SUBJECTS]
    for n, (sid, _name) in enumerate(SUBJECTS):
        count = 60 if n == 0 else 2
        rows += [
            change(
                "mark",
                f"mk-{sid}-{k}",
                {
                    "student_id": "s-9",
                    "subject_id": sid,
                    "date": (dt.date(2026, 9, 1) + dt.timedelta(days=k % 45)).isoformat(),
                    "raw": RAWS[k % len(RAWS)],
                },
            )
            for k in range(count)
        ]
    return rows


def _overflowing(html: str, css: str) -> list[str]:
    """Text boxes whose right edge lies beyond the page's content area (headers and
    footers: beyond the paper)."""
    document = engine.render_document(html, css)
    found = []
    for number, page in enumerate(document.pages, 1):
        root = page._page_box
        content_right = root.content_box_x() + root.width
        for top in root.children:
            right = page.width if isinstance(top, boxes.MarginBox) else content_right
            for box in top.descendants():
                if isinstance(box, boxes.TextBox) and box.position_x + box.width > right + 0.5:
                    found.append(f"page {number}: {box.text[:40]!r}")
    return found


def test_hard_cases_wrap_and_nothing_runs_off_the_page(school: None, config: Config) -> None:
    import_document(envelope(_hard_student(), mode="delta", cursor="c2"), "hard.json", MarkRules())
    result = print_class(config)
    pages = _pages(result.files[0])
    mine = [text for text in pages if _squash(LONG_LAST) in _squash(text)]
    assert 2 <= len(mine) <= 4 and result.pages == len(pages) == len(mine) + 3
    assert re.findall(r"Стр\. \d+ из (\d+)", mine[0])[-1] == str(len(mine))
    text = _squash("".join(mine))
    for needle in [LONG_LAST, LONG_FIRST, LONG_MIDDLE, LONG_URL, *(n for _s, n in SUBJECTS)]:
        assert _squash(needle) in text, needle
    assert _squash(_sixty_marks()) in text  # the whole line of 60 marks, in order
    assert text.count("(1.09)") == 2 + 19  # 1 September: twice in subj-01, once in the others
    # Laid out again from the same HTML: no line of text sticks out of the page.
    css = extracts.extract_css("A4")
    html = extracts.document_html([extracts.article_html(_hard_context(), "ABCD-EFGH")], "hard")
    assert _overflowing(html, css) == []


def _sixty_marks() -> str:
    """subj-01's marks as the extract writes them: by date, then by mark id."""
    marks = []
    for k in range(60):
        day = dt.date(2026, 9, 1) + dt.timedelta(days=k % 45)
        marks.append((day, f"mk-subj-01-{k}", f"{RAWS[k % len(RAWS)]} ({day.day}.{day.month:02})"))
    return ", ".join(text for _day, _id, text in sorted(marks))


def _hard_context() -> extracts.ExtractContext:
    job = extracts.ExtractJob(
        db_url="",
        busy_timeout_ms=0,
        run_id="hard",
        class_id="cls-7b",
        today=TODAY,
        issued=TODAY,
        period_id=None,
        paper_only=False,
        school_name="Школа",
        paper_size="A4",
        cache_dir=Path("unused"),
        staging_dir=Path("unused"),
    )
    _scope, items = extracts.class_contexts(job)
    return next(ctx for ctx, _guardians in items if ctx.child.student_id == "s-9")


def test_overflow_check_catches_text_that_runs_off(school: None) -> None:
    """The check above can fail: a word that may not wrap does stick out."""
    html = extracts.document_html([f'<p style="overflow-wrap: normal">{LONG_URL}</p>'], "x")
    assert _overflowing(html, extracts.extract_css("A4"))


# --- cache and records --------------------------------------------------------------------


def test_unchanged_extracts_are_not_rendered_again(school: None, config: Config) -> None:
    first = print_class(config)
    codes = {sid: r.code for sid, r in printed.extracts_of_class("cls-7b").items()}
    again = print_class(config)
    assert (again.extracts, again.rendered) == (3, 0)
    assert again.files[0].read_bytes() == first.files[0].read_bytes()
    new_mark = change(
        "mark",
        "mk-new",
        {"student_id": "s-2", "subject_id": "math", "date": "2026-09-15", "raw": "2"},
    )
    import_document(envelope([new_mark], mode="delta", cursor="c2"), "mark.json", MarkRules())
    third = print_class(config)
    assert (third.extracts, third.rendered) == (3, 1)
    after = printed.extracts_of_class("cls-7b")
    assert after["s-1"].code == codes["s-1"] and after["s-3"].code == codes["s-3"]
    assert after["s-2"].code != codes["s-2"]  # a new version of Артём's extract
    assert models.ExtractIssue.get(models.ExtractIssue.code == codes["s-1"]).prints == 3


def test_extract_by_code_gives_what_the_acknowledgement_needs(school: None, config: Config) -> None:
    print_class(config)
    records = printed.extracts_of_class("cls-7b")
    alena, artyom = records["s-1"], records["s-2"]
    # A guardian of two children gets both extracts, each with its own code.
    assert alena.guardian_ids == artyom.guardian_ids == ("g-1",) and alena.code != artyom.code
    code = alena.code
    assert len(code) == 8 and set(code) <= set(crypto.ALPHABET)
    typed = f" {code[:4].lower()} – {code[4:]}".replace("A", "А").replace("K", "К")  # Cyrillic
    found = printed.extract_by_code(typed)
    assert found is not None
    assert found.student_ids == ("s-1",) and found.guardian_ids == ("g-1",)
    assert found.class_unit_id == "cls-7b" and found.period_id == "q1"
    assert found.week_start == dt.date(2026, 9, 14) and found.as_of == TODAY
    assert len(found.content_hash) == 64 and found.issued_at.tzinfo is not None
    assert printed.extract_by_code("ZZZZ-ZZZZ") is None
    pages = _pages(config.printing.extracts_dir / TODAY.isoformat() / "7Б.pdf")
    assert any(f"Код выписки: {extracts.format_code(code)}" in page for page in pages)


def test_a_clashing_code_is_replaced(school: None, config: Config) -> None:
    """If a code is taken by another extract, the next one is used and printed."""
    print_class(config)
    alena = printed.extracts_of_class("cls-7b")["s-1"]
    models.ExtractIssue.update(content_hash="another version").where(
        models.ExtractIssue.code == alena.code
    ).execute()
    print_class(config)
    now = printed.extracts_of_class("cls-7b")["s-1"]
    guardians = list(alena.guardian_ids)
    assert now.code == extracts.extract_code("s-1", guardians, alena.content_hash, attempt=1)
    pages = _pages(config.printing.extracts_dir / TODAY.isoformat() / "7Б.pdf")
    assert any(extracts.format_code(now.code) in page for page in pages)


def test_paper_only_prints_families_on_paper(school: None, config: Config) -> None:
    result = print_class(config, paper_only=True, period="1 четверть")
    pages = _pages(result.files[0])
    assert result.files[0].name == "7Б-paper.pdf" and len(pages) == 1
    assert "Петров Иван" in pages[0] and "Кому Петрова Ольга" in pages[0]
    batch = printed.latest_batches()["cls-7b"]
    assert batch.paper_only and batch.extracts == 1 and Path(batch.path) == result.files[0]


def test_all_classes_in_a_pool_with_an_index(file_db: Path, project_dir: Path) -> None:
    document = two_class_school(per_class=3)
    link = {"guardian_id": "g-c5a-0", "student_id": "s-c5b-1", "relation": "mother"}
    document["changes"].append(change("guardian_link", "gl-cross", link))
    import_document(document, "two.json", MarkRules())
    config = config_from_dict(
        {"site": {"kdf_iterations": 100_000}, "printing": {"workers": 2}},
        base_dir=project_dir,
        env={},
    )
    result = print_class(config, class_name=None, everyone=True)
    assert result.classes == 2 and result.extracts == 6 and result.index_path is not None
    assert sorted(p.name for p in result.files) == ["C5A.pdf", "C5B.pdf"]
    index = "\n".join(_pages(result.index_path))
    assert "C5A Учитель C5A 3 3 C5A.pdf" in index and "Всего выписок: 6" in index
    # The parent of children in both classes is listed, so the two extracts go out together.
    assert "Родитель000 Имя Ученик000 Имя, C5A; Ученик001 Имя, C5B" in index
    assert result.peak_worker_mb > 0
    assert not list(result.index_path.parent.glob(".staging-*"))


def test_staff_register_a_signed_slip_by_its_code(school: None, config: Config) -> None:
    """The tear-off slip's code names the extract: the act records its children and hash."""
    from otmetka.daemon.acts import paper
    from otmetka.daemon.core.errors import OtmetkaError

    print_class(config)
    alena = printed.extracts_of_class("cls-7b")["s-1"]
    first = paper.register_ack(config, login=None, paper=True, date="2026-09-16", code=alena.code)
    again = paper.register_ack(config, login=None, paper=True, date="2026-09-16", code=alena.code)
    assert first.event_id == again.event_id and "already registered" in again.summary()
    event = models.Event.get(models.Event.event_id == first.event_id)
    body = json.loads(event.payload)
    assert (event.channel, event.guardian_id) == ("paper", "g-1")
    assert body["code"] == alena.code and body["content_hash"] == alena.content_hash
    assert body["children"] == ["s-1"]
    with pytest.raises(OtmetkaError, match="no printed extract has the code"):
        paper.register_ack(config, login=None, paper=True, date=None, code="ZZZZ-ZZZZ")
    with pytest.raises(OtmetkaError, match="--code from the tear-off slip, or --login"):
        paper.register_ack(config, login=None, paper=True, date=None)


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"class_name": "9Я"}, "no class named «9Я»; classes: 7Б"),
        ({"class_name": None}, "say which extracts to print: --class 7Б or --all"),
        ({"everyone": True}, "say which extracts to print: --class 7Б or --all (not both)"),
        ({"period": "5 четверть"}, "no period «5 четверть»; periods: q1 «1 четверть»"),
        ({"out": Path("extracts.txt")}, "--out extracts.txt: give a file name ending in .pdf"),
    ],
)
def test_bad_options_say_what_to_do_and_print_nothing(
    school: None, config: Config, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(OtmetkaError, match=re.escape(message)):
        print_class(config, **options)
    assert not config.printing.extracts_dir.exists() or not any(
        config.printing.extracts_dir.rglob("*.pdf")
    )
    assert models.ExtractIssue.select().count() == models.ExtractBatch.select().count() == 0


def test_a_failing_class_leaves_no_files_and_no_rows(school: None, config: Config) -> None:
    """A class whose render fails stops the run before anything is moved or recorded."""
    config.printing.extracts_dir.mkdir(parents=True)
    (config.printing.extracts_dir / "cache").write_text("a file where the cache folder goes")
    with pytest.raises(OSError):
        print_class(config)
    assert not list(config.printing.extracts_dir.rglob("*.pdf"))
    assert not list(config.printing.extracts_dir.rglob(".staging-*"))
    assert models.ExtractIssue.select().count() == 0


def test_cli_prints_a_class(school: None, config_file: Path, runner: CliRunner) -> None:
    out = config_file.parent / "printed" / "class.pdf"
    args = ["--config", str(config_file), "print", "extracts", "--class", "7Б", "--out", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "printed 3 extracts of 1 classes, 3 pages" in result.output and str(out) in result.output
    assert len(PdfReader(out).pages) == 3
    bad = runner.invoke(main, ["--config", str(config_file), "print", "extracts", "--class", "1Z"])
    assert bad.exit_code == 1 and "Error: no class named «1Z»" in bad.output

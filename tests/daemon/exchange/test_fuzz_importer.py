"""Fuzzing the importer: random documents, mutated exchange documents and mutated bytes of
exchange files (JSON and JSON Lines). Whatever comes in, the importer either imports it or
raises BatchError, and a refused batch leaves every table exactly as it was.

Examples are derandomised so CI is repeatable; `HYPOTHESIS_PROFILE=deep` runs many more,
with fresh randomness.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange.importer import ImportResult, import_batch, import_document
from otmetka.daemon.exchange.reader import BatchError, read_file
from otmetka.db import close_database, journal, migrate, open_database
from tests.support.factories import small_school

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
FUZZ = settings(
    max_examples=2000 if DEEP else 60,
    deadline=None,
    derandomize=not DEEP,  # CI sees the same examples every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RULES = MarkRules()
BASE = small_school()
FIELDS = sorted({key for c in BASE["changes"] for key in c.get("data", {})})
ENVELOPE_KEYS = ["format", "version", "school_id", "tz", "mode", "cursor", "generated_at"]


@pytest.fixture(scope="module", autouse=True)
def database() -> Iterator[None]:
    """One database for the whole module: the small school, then whatever is accepted."""
    folder = tempfile.mkdtemp(prefix="otmetka-fuzz-")
    open_database(f"sqlite:///{folder}/fuzz.sqlite3")
    migrate()
    import_document(BASE, "school.json", RULES)
    yield
    close_database()


# --- strategies ----------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "2026-09-07", "2026-02-30", "5-", "Н", "\u202e", "🙂", "<b>", "x" * 300]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_document(draw: st.DrawFn) -> dict[str, Any]:
    """The small school with one to four things broken or changed."""
    document = copy.deepcopy(BASE)
    changes: list[Any] = document["changes"]
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(sorted(_MUTATIONS)))
        _MUTATIONS[how](draw, document, changes)
    document["cursor"] = f"fuzz-{draw(st.integers(0, 10**9))}"  # a new batch each time
    return document


def _pick(draw: st.DrawFn, changes: list[Any]) -> dict[str, Any]:
    """A change that is still an object (a junk change may be anything)."""
    records = [c for c in changes if isinstance(c, dict)]
    return records[draw(st.integers(0, len(records) - 1))] if records else {}


def _set_field(draw: st.DrawFn, _doc: dict[str, Any], changes: list[Any]) -> None:
    record = _pick(draw, changes)
    if isinstance(record.get("data"), dict):
        record["data"][draw(st.sampled_from(FIELDS))] = draw(json_values)


def _drop_field(draw: st.DrawFn, _doc: dict[str, Any], changes: list[Any]) -> None:
    record = _pick(draw, changes)
    data = record.get("data")
    if isinstance(data, dict) and data:
        data.pop(draw(st.sampled_from(sorted(data))))


def _change_key(draw: st.DrawFn, _doc: dict[str, Any], changes: list[Any]) -> None:
    record = _pick(draw, changes)
    key = draw(st.sampled_from(["type", "id", "op", "updated_at", "data", "extra"]))
    if draw(st.booleans()):
        record.pop(key, None)
    else:
        record[key] = draw(st.one_of(json_values, st.sampled_from(["delete", "upsert", "mark"])))


def _drop_change(draw: st.DrawFn, _doc: dict[str, Any], changes: list[Any]) -> None:
    if changes:
        changes.pop(draw(st.integers(0, len(changes) - 1)))


def _duplicate(draw: st.DrawFn, _doc: dict[str, Any], changes: list[Any]) -> None:
    twin = copy.deepcopy(_pick(draw, changes))
    twin["op"] = draw(st.sampled_from(["upsert", "delete"]))
    changes.insert(draw(st.integers(0, len(changes))), twin)


def _junk_change(draw: st.DrawFn, _doc: dict[str, Any], changes: list[Any]) -> None:
    changes.insert(draw(st.integers(0, len(changes))), draw(json_values))


def _envelope(draw: st.DrawFn, document: dict[str, Any], _changes: list[Any]) -> None:
    key = draw(st.sampled_from([*ENVELOPE_KEYS, "changes", "unknown"]))
    if key == "changes" and draw(st.booleans()):
        document["changes"] = draw(json_values)
    elif draw(st.booleans()):
        document.pop(key, None)
    else:
        document[key] = draw(json_values)


_MUTATIONS = {
    "set a field": _set_field,
    "drop a field": _drop_field,
    "change a key": _change_key,
    "drop a change": _drop_change,
    "duplicate a change": _duplicate,
    "junk change": _junk_change,
    "envelope": _envelope,
}


# --- the property ---------------------------------------------------------------------------------


def _all_or_nothing(attempt: Any) -> ImportResult | None:
    """Run an import; BatchError is fine if nothing changed, any other error is a bug."""
    before = journal.dump_tables()
    try:
        return attempt()  # type: ignore[no-any-return]
    except BatchError as error:
        assert str(error).strip(), "a refusal must say what is wrong"
        assert journal.dump_tables() == before, "a refused batch changed the database"
        return None


@FUZZ
@given(document=mutated_document())
def test_mutated_documents_import_whole_or_not_at_all(document: dict[str, Any]) -> None:
    _all_or_nothing(lambda: import_document(document, "fuzz.json", RULES))


@FUZZ
@given(document=json_values)
def test_random_documents_are_refused_cleanly(document: Any) -> None:
    _all_or_nothing(lambda: import_document(document, "random.json", RULES))


def _mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    how = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    at = draw(st.integers(0, len(data)))
    if how == "truncate":
        return data[:at]
    if how == "flip" and data:
        at = min(at, len(data) - 1)
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return data[:at] + data[at + draw(st.integers(1, 64)) :]


def _as_jsonl(document: dict[str, Any]) -> bytes:
    header = {k: v for k, v in document.items() if k != "changes"}
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps(c, ensure_ascii=False) for c in document["changes"]]
    return ("\n".join(lines) + "\n").encode("utf-8")


@st.composite
def mutated_file(draw: st.DrawFn) -> tuple[str, bytes]:
    document = copy.deepcopy(BASE)
    document["cursor"] = f"file-{draw(st.integers(0, 10**9))}"
    suffix = draw(st.sampled_from([".json", ".jsonl"]))
    if suffix == ".json":
        data = json.dumps(document, ensure_ascii=False, indent=draw(st.sampled_from([None, 1])))
        raw = data.encode("utf-8")
    else:
        raw = _as_jsonl(document)
    for _ in range(draw(st.integers(1, 3))):
        raw = _mutated_bytes(draw, raw)
    return suffix, raw


# Found by this suite: a NUL before the envelope line made json.loads guess UTF-16 and
# crash with UnicodeDecodeError (an odd number of bytes) instead of refusing the file.
NUL_FIRST = (".jsonl", b"\x00" + _as_jsonl({**BASE, "cursor": "nul-1"}))


@FUZZ
@given(case=mutated_file())
@example(case=NUL_FIRST)
def test_mutated_files_import_whole_or_not_at_all(case: tuple[str, bytes]) -> None:
    suffix, raw = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upstream{suffix}"
        path.write_bytes(raw)

        _all_or_nothing(lambda: import_batch(read_file(path), RULES))

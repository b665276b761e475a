"""Changes validated as plain dicts (exchange.plain) store what the models would have: an
`updated_at` in any form the models take, and the models' words for one they refuse."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange import row_makers, schema
from otmetka.daemon.exchange.importer import import_batch
from otmetka.daemon.exchange.reader import BatchError, read_file
from otmetka.db import journal, models
from tests.support.factories import write_json

# As the plain pattern has them, and as only the models read them (a space, a lower-case t,
# no seconds, seven digits of fraction, POSIX seconds).
MOMENTS: list[Any] = [
    "2026-09-01T07:00:00Z",
    "2026-09-01T10:00:00",
    "2026-09-01T10:00:00.5+03:00",
    "2026-09-01 10:00:00+03:00",
    "2026-09-01t10:00:00+05:00",
    "2026-09-01T10:00+03:00",
    "2026-09-01T10:00:00.1234567+03:00",
    1788000000,
]


@pytest.fixture(scope="module")
def school() -> dict[str, Any]:
    return generate_school(students=11, seed=1, as_of=dt.date(2026, 9, 20))


def _marks(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in document["changes"] if item["type"] == "mark"][20:]


def test_updated_at_in_every_form_the_models_take(
    memory_db: None, school: dict[str, Any], tmp_path: Path, rules: MarkRules
) -> None:
    document = copy.deepcopy(school)
    for item, moment in zip(_marks(document)[: len(MOMENTS)], MOMENTS, strict=True):
        item["updated_at"] = moment
    import_batch(read_file(write_json(tmp_path / "moments.json", document)), rules)
    tz = ZoneInfo(document["tz"])
    for item in _marks(document)[: len(MOMENTS)]:
        moment = schema.CHANGE_ADAPTER.validate_python(item).updated_at
        stored = models.Mark.get_by_id(item["id"]).updated_at
        assert journal._to_db(stored) == row_makers.utc_text(moment, tz), item["updated_at"]


@pytest.mark.parametrize("moment", ["2026-02-30T10:00:00+03:00", "2026-09-01T25:00:00Z"])
def test_updated_at_the_models_refuse_reads_the_same_in_blocks(
    memory_db: None, school: dict[str, Any], tmp_path: Path, rules: MarkRules, moment: str
) -> None:
    document = copy.deepcopy(school)
    bad = _marks(document)[len(MOMENTS)]
    bad["updated_at"] = moment
    assert document["changes"].index(bad) < len(document["changes"]) - 500  # inside a block
    path = write_json(tmp_path / "bad.json", document)
    messages = []
    for chunk_size in (4 * 1024 * 1024, 1000):
        with pytest.raises(BatchError) as caught:
            import_batch(read_file(path, chunk_size=chunk_size), rules)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    index = document["changes"].index(bad)
    assert f"record {index} (id '{bad['id']}', type 'mark'): field 'updated_at'" in messages[0]
    assert messages[0].count("bad.json: record ") == 1

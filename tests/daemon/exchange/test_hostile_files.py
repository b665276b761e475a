"""Hostile files dropped into the inbox: zip and gzip bombs of OneRoster bundles and exchange
files are refused while streaming, with a message naming the file, the member and the limit,
in bounded memory, without filling the disk, and with nothing stored changed.

Every import runs in a child process of its own (`tests.support.bounded`), so its peak RSS
and the bytes it wrote are its own.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.exchange import capped, inbox, oneroster_csv
from otmetka.daemon.exchange.inbox import InboxOutcome
from otmetka.daemon.exchange.reader import BatchError
from otmetka.db import models, open_database
from tests.support.bounded import run_bounded
from tests.support.oneroster_bundles import bundle_11, to_csv, write_folder
from tests.support.sync_support import journal_dump

MB = 1024**2
BOMB = 1024 * MB  # what each bomb unpacks to
# A bomb refused while streaming keeps the child near an idle interpreter (~100 MB): a
# reader that holds one member whole needs gigabytes.
PEAK_MB = 400
WRITTEN_MB = 16  # the database, the quarantine note; never a temporary copy of a bomb
USERS_ROW = b"u-x,,2026-08-25T10:00:00.000Z,true,sch-7,student,x,,Ivan,Petrov,,,,,,,07,\n"


def _fill(out: object, unit: bytes, total: int) -> None:
    chunk = unit * (MB // len(unit))
    for _ in range(total // len(chunk)):
        out.write(chunk)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A OneRoster zip with a users.csv of a gigabyte, the same with its directory forged
    to declare an innocent size, an exchange zip and an exchange gzip of a gigabyte."""
    folder = tmp_path_factory.mktemp("bombs")
    with zipfile.ZipFile(folder / "roster.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in bundle_11().items():
            if name != "users.csv":
                archive.writestr(name, to_csv(rows))
        with archive.open("users.csv", "w") as out:
            out.write(to_csv(bundle_11()["users.csv"]).encode())
            _fill(out, USERS_ROW, BOMB)
    with zipfile.ZipFile(folder / "zeros.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("orgs.csv", to_csv(bundle_11()["orgs.csv"]))
        with archive.open("users.csv", "w") as out:
            _fill(out, b"\0", BOMB)
    _forge(folder / "zeros.zip", folder / "forged.zip", "users.csv")
    with (
        zipfile.ZipFile(folder / "year.zip", "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("year.json", "w") as out,
    ):
        _fill(out, b" ", BOMB)
    with gzip.open(folder / "year.json.gz", "wb") as out:
        _fill(out, b" ", BOMB)
    return folder


def _forge(source: Path, target: Path, member: str) -> None:
    """The central directory entry of `member` declares 200 MB unpacked from 100 MB packed:
    a believable ratio and size, from an archive of about 1 MB."""
    data = bytearray(source.read_bytes())
    entry = data.index(b"PK\x01\x02")
    while True:
        name_length = struct.unpack_from("<H", data, entry + 28)[0]
        if data[entry + 46 : entry + 46 + name_length] == member.encode():
            break
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<II", data, entry + 20, 100 * MB, 200 * MB)
    target.write_bytes(bytes(data))


def _process_in_child(project: Path, url: str, path: Path) -> InboxOutcome:
    """Runs in the child: what the daemon does with one file taken from the inbox."""
    open_database(url)
    config = config_from_dict({}, base_dir=project, env={})
    outcome = inbox.process(config, path, MarkRules())
    if not outcome.ok:
        raise RuntimeError(outcome.message)
    return outcome


def _drop(config_dir: Path, bombs: Path, name: str, as_name: str | None = None) -> Path:
    folder = config_dir / "inbox"
    folder.mkdir(exist_ok=True)
    target = folder / (as_name or name)
    shutil.copyfile(bombs / name, target)
    return target


_RATIO = "unpacks to more than 100 times its packed size"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("roster.zip", f"roster.zip: member 'users.csv' {_RATIO}"),
        # zipfile stops at the declared size, or at the end of the archive: damaged
        ("forged.zip", "roster.zip: users.csv: damaged or unreadable (the archive ends inside"),
        ("year.zip", f"year.zip: member 'year.json' {_RATIO}"),
        ("year.json.gz", f"year.json.gz: member 'year.json' {_RATIO}"),
    ],
)
def test_a_bomb_is_refused_while_streaming_with_nothing_stored(
    name: str, words: str, bombs: Path, config_dir: Path, db_url: str
) -> None:
    as_name = "roster.zip" if name == "forged.zip" else name
    path = _drop(config_dir, bombs, name, as_name)
    before, logs = journal_dump(), models.ImportLog.select().count()
    outcome = run_bounded(_process_in_child, config_dir, db_url, path)
    assert words in outcome.error, outcome.error
    assert outcome.peak_rss_mb < PEAK_MB, outcome
    assert outcome.written_mb < WRITTEN_MB, outcome
    assert journal_dump() == before and models.ImportLog.select().count() == logs
    note = config_dir / "inbox" / "quarantine" / f"{as_name}.error.txt"
    assert words in note.read_text(encoding="utf-8")


@pytest.fixture
def config_dir(project_dir: Path, file_db: Path) -> Path:
    return project_dir


@pytest.fixture
def db_url(config: Config) -> str:
    return config.database.url


def test_a_folder_bundle_over_the_size_caps_names_the_file_and_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder packs nothing, so only the sizes count: of one file, then of all together."""
    monkeypatch.setattr(oneroster_csv, "CAPS", capped.Caps(member=2 * MB, total=3 * MB))
    folder = write_folder(tmp_path / "roster", bundle_11())
    with (folder / "users.csv").open("ab") as out:
        _fill(out, USERS_ROW, 2 * MB + MB // 2)
    with pytest.raises(BatchError) as error:
        oneroster_csv.read_bundle(folder, ZoneInfo("Europe/Moscow"))
    assert "roster: member 'users.csv' holds more than 2 MB, the limit for one file" in str(
        error.value
    )
    with (folder / "users.csv").open("r+b") as out:
        out.truncate(MB + MB // 2)
    (folder / "results.csv").write_bytes((folder / "users.csv").read_bytes())
    with pytest.raises(BatchError, match="unpacked, the limit for one archive or folder"):
        oneroster_csv.read_bundle(folder, ZoneInfo("Europe/Moscow"))

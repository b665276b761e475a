"""Exchange files in every packing the inbox accepts: `.json`, `.jsonl`, `.json.gz`,
`.jsonl.gz` and `.zip` archives of those.

Compressed files are unpacked into a private temporary folder under the member's own name
and read by `reader.read_file`, so the checks and messages are the importer's own.
Unpacked sizes and the packing ratio are capped (`capped`), on what the archive declares
before anything is written and on the bytes actually unpacked while they are written: a tiny
archive must not fill the disk of the school server.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from otmetka.daemon.exchange import capped
from otmetka.daemon.exchange.reader import BatchError, RawBatch, read_file

EXCHANGE_SUFFIXES = (".json", ".jsonl")
# A year of the largest school is a quarter of a gigabyte of JSON: room for many years in
# one file or one archive, and a bound on the temporary folder an archive may fill.
CAPS = capped.Caps(member=4 * 1024**3, total=4 * 1024**3)
_CHUNK = 1024 * 1024


def kind_of(path: Path) -> str | None:
    """'exchange', 'gzip', 'zip', 'oneroster' (a folder) or None (not ours)."""
    name = path.name.lower()
    if path.is_dir():
        return "oneroster"
    if name.endswith(EXCHANGE_SUFFIXES):
        return "exchange"
    if name.endswith(tuple(f"{suffix}.gz" for suffix in EXCHANGE_SUFFIXES)):
        return "gzip"
    if name.endswith(".zip"):
        return "zip"
    return None


def _copy(source: capped.Readable, target: Path) -> None:
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            out.write(chunk)


def _refused(error: capped.TooLarge) -> BatchError:
    return BatchError(error.origin, [str(error)])


@contextmanager
def _scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="otmetka-unpack-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _unpack(
    open_source: Callable[[], IO[bytes]],
    name: str,
    packed: int,
    target: Path,
    budget: capped.Budget,
) -> None:
    """Unpack member `name` in two passes: the first only counts it through the archive's
    caps, so nothing of a bomb is ever written; the second writes it."""
    with open_source() as source:
        capped.drain(budget.counted(source, name, packed))
    again = capped.Budget(budget.origin, CAPS, budget.packed_size)  # the same bytes again
    with open_source() as source:
        _copy(again.counted(source, name, packed), target)


def _gunzip(path: Path, folder: Path, origin: str) -> Path:
    """Unpack `path` into `folder`; `origin` is the name the sender gave the packed file."""
    target = folder / path.name[: -len(".gz")]
    packed = path.stat().st_size
    budget = capped.Budget(origin, CAPS, packed)
    try:
        opener = partial(gzip.open, path, "rb")
        _unpack(opener, target.name, packed, target, budget)  # type: ignore[arg-type]
    except (OSError, EOFError) as error:
        raise BatchError(
            origin,
            [f"{origin}: not a complete gzip file ({error}); copy or download it again"],
        ) from None
    return target


def zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Members that carry data, in name order; folders and macOS/Windows leftovers skipped."""
    members = []
    for info in archive.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.is_dir() or not parts or parts[0] == "__MACOSX":
            continue
        if parts[-1].startswith(".") or parts[-1].lower() in ("thumbs.db", "desktop.ini"):
            continue
        members.append(info)
    return sorted(members, key=lambda info: info.filename)


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise BatchError(
            path.name, [f"{path.name}: not a readable zip archive ({error}); copy it again"]
        ) from None


def _unzip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path, budget: capped.Budget
) -> Path:
    origin = info.filename
    target = folder / PurePosixPath(info.filename).name  # never a path from the archive
    try:
        _unpack(partial(archive.open, info), origin, info.compress_size, target, budget)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        detail = str(error) or "the archive ends inside it"
        raise BatchError(origin, [f"{origin}: damaged in the archive ({detail})"]) from None
    if target.name.lower().endswith(".gz"):
        return _gunzip(target, folder, f"{budget.origin}: {info.filename}")
    return target


def _check_member_name(archive_name: str, info: zipfile.ZipInfo) -> None:
    name = info.filename.lower()
    if not name.endswith((*EXCHANGE_SUFFIXES, *(f"{s}.gz" for s in EXCHANGE_SUFFIXES))):
        raise BatchError(
            archive_name,
            [
                f"{archive_name}: member '{info.filename}' is not an exchange file "
                "(.json, .jsonl, .json.gz); an archive holds exchange files only, or a "
                "OneRoster bundle with manifest.csv"
            ],
        )


def exchange_batches(path: Path) -> Iterator[tuple[str, RawBatch]]:
    """(name, batch) for every exchange document in `path`, in order.

    A zip yields one batch per member, in name order; each member is a batch of its own, so
    a bad member stops the archive there and earlier members stay imported.
    """
    try:
        yield from _batches(path)
    except capped.TooLarge as error:
        raise _refused(error) from None


def _batches(path: Path) -> Iterator[tuple[str, RawBatch]]:
    kind = kind_of(path)
    if kind == "exchange":
        yield path.name, read_file(path)
        return
    with _scratch() as folder:
        if kind == "gzip":
            yield path.name, read_file(_gunzip(path, folder, path.name))
            return
        with open_zip(path) as archive:
            members = zip_members(archive)
            if not members:
                raise BatchError(path.name, [f"{path.name}: the archive is empty"])
            for info in members:
                _check_member_name(path.name, info)
            budget = capped.Budget(path.name, CAPS, path.stat().st_size)
            budget.check_declared(members)
            for info in members:
                member = _unzip_member(archive, info, folder, budget)
                yield info.filename, read_file(member)
                member.unlink()

"""Exchange files in every packing the inbox accepts: `.json`, `.jsonl`, `.json.gz`,
`.jsonl.gz` and `.zip` archives of those.

Compressed files are unpacked into a private temporary folder under the member's own name
and read by `reader.read_file`, so the checks and messages are the importer's own.
Unpacked size is capped: a tiny archive must not fill the disk of the school server.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from otmetka.daemon.exchange.reader import BatchError, RawBatch, read_file

EXCHANGE_SUFFIXES = (".json", ".jsonl")
MAX_UNPACKED_BYTES = 4 * 1024**3
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


def _copy_capped(source: object, target: Path, origin: str) -> None:
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):  # type: ignore[attr-defined]
            written += len(chunk)
            if written > MAX_UNPACKED_BYTES:
                raise BatchError(
                    origin,
                    [
                        f"{origin}: unpacks to more than {MAX_UNPACKED_BYTES // 1024**3} GB; "
                        "split the export into smaller files"
                    ],
                )
            out.write(chunk)


@contextmanager
def _scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="otmetka-unpack-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _gunzip(path: Path, folder: Path) -> Path:
    target = folder / path.name[: -len(".gz")]
    try:
        with gzip.open(path, "rb") as source:
            _copy_capped(source, target, path.name)
    except (OSError, EOFError) as error:
        raise BatchError(
            path.name,
            [f"{path.name}: not a complete gzip file ({error}); copy or download it again"],
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


def _unzip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path) -> Path:
    origin = info.filename
    target = folder / PurePosixPath(info.filename).name  # never a path from the archive
    try:
        with archive.open(info) as source:
            _copy_capped(source, target, origin)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise BatchError(origin, [f"{origin}: damaged in the archive ({error})"]) from None
    if target.name.lower().endswith(".gz"):
        return _gunzip(target, folder)
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
    kind = kind_of(path)
    if kind == "exchange":
        yield path.name, read_file(path)
        return
    with _scratch() as folder:
        if kind == "gzip":
            yield path.name, read_file(_gunzip(path, folder))
            return
        with open_zip(path) as archive:
            members = zip_members(archive)
            if not members:
                raise BatchError(path.name, [f"{path.name}: the archive is empty"])
            for info in members:
                _check_member_name(path.name, info)
            for info in members:
                member = _unzip_member(archive, info, folder)
                yield info.filename, read_file(member)
                member.unlink()

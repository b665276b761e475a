"""The class's latest extracts PDF on the class teacher's page, encrypted like the page.

`otmetka print extracts` records each class PDF (otmetka.db.printing). On the next build the class
teacher's page links it and the builder writes `output/f/<file id>.bin`: envelope v1 (the
same JSON as a page's envelope; the PDF is deflated and sealed with AES-256-GCM) under the
teacher's credential key, with the file id in the place of the page id in the associated
data, so a file cannot be passed off as another. In the browser, static/download.js
fetches the file, decrypts it with the key the teacher's password already unlocked
(`OtmUnlock.openFile`) and saves the PDF.

The file id is a hash of the class and the PDF's SHA-256, so the page can name the file
without any key, and a new print gets a new name. The files written, and for which
credential, are remembered in a setting: a rotated teacher login re-encrypts the file
once, an unchanged one costs nothing per build. Imports no WeasyPrint.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otmetka.db import build_state as site_state
from otmetka.db import printing as printed
from otmetka.db import queries as q
from otmetka.db.models import Credential
from otmetka.site_builder import crypto, static_files

FILES_DIR = "f"
DOWNLOAD_SCRIPT = "download.js"
FILE_MARK = "data-otm-file"
_PUBLISHED = "printing.published_files"  # setting: JSON {file id: page id of the key used}

PageKey = tuple[str, str]


@functools.cache
def download_script() -> str:
    return static_files.script(DOWNLOAD_SCRIPT)


@functools.cache
def script_version() -> str:
    """Written next to each link, so a changed download.js changes the page's hash."""
    return hashlib.sha256(download_script().encode()).hexdigest()[:12]


def page_scripts(fragment: str) -> list[str]:
    """The download script, for pages that link an encrypted file; nothing for the rest."""
    return [download_script()] if FILE_MARK in fragment else []


def connect_src(base: str, fragment: str) -> str:
    """The page's CSP connect-src, plus its own origin where it links a file to fetch
    (the .bin sits beside the page, on the school's server or a mirror)."""
    if FILE_MARK not in fragment:
        return base
    return "'self'" if base.strip() == "'none'" else f"{base} 'self'"


def file_id(class_id: str, pdf_sha256: str) -> str:
    digest = hashlib.sha256(f"otmetka extracts file v1|{class_id}|{pdf_sha256}".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class ClassFile:
    """What the teacher page says about a class's latest extracts PDF."""

    class_id: str
    file_id: str
    file_name: str  # the name the browser saves it under
    path: Path
    extracts: int
    pages: int
    printed_on: dt.date
    version: str = ""

    @property
    def href(self) -> str:
        return f"../{FILES_DIR}/{self.file_id}.bin"  # relative to p/<page id>.html


def class_files(class_names: Mapping[str, str]) -> dict[str, ClassFile]:
    """Class id -> its latest extracts PDF that is still on disk."""
    files = {}
    for class_id, batch in printed.latest_batches().items():
        path = Path(batch.path)
        if class_id not in class_names or not path.is_file():
            continue
        day = batch.created_at.date()
        name = f"Выписки {class_names[class_id]} {day:%d.%m.%Y}.pdf"
        files[class_id] = ClassFile(
            class_id,
            file_id(class_id, batch.pdf_sha256),
            name,
            path,
            batch.extracts,
            batch.pages,
            day,
            script_version(),
        )
    return files


def _encrypted(pdf: bytes, credential: Credential, fid: str) -> bytes:
    envelope = crypto.encrypt_page(
        pdf,
        bytes(credential.derived_key),
        bytes(credential.salt),
        fid,
        credential.kdf_iterations,
    )
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode("ascii")


def _wanted(credentials: Mapping[PageKey, Credential]) -> dict[str, tuple[ClassFile, Credential]]:
    """File id -> (file, the class teacher's credential), for teachers with a page."""
    classes = q.class_units()
    files = class_files({c.id: c.name for c in classes})
    wanted = {}
    for cls in classes:
        found = files.get(cls.id)
        credential = credentials.get(("teacher", cls.class_teacher_id or ""))
        if found is not None and credential is not None:
            wanted[found.file_id] = (found, credential)
    return wanted


def publish(output_dir: Path, credentials: Mapping[PageKey, Credential]) -> int:
    """Write each class teacher's encrypted copy of the class's latest extracts; delete
    copies nobody links any more. Returns how many files were written."""
    return sync_sealed_files(output_dir / FILES_DIR, _wanted(credentials), _PUBLISHED, _encrypted)


def sync_sealed_files(
    folder: Path,
    wanted: Mapping[str, tuple[Any, Credential]],
    setting_key: str,
    seal: Callable[[bytes, Credential, str], bytes],
) -> int:
    """Make `folder` hold exactly the sealed files in `wanted` (file id -> (file with a
    `.path`, reader's credential)); a file is rewritten only when it is missing or its
    reader's page changed. Returns how many files were written."""
    from otmetka.site_builder.atomic import write_atomic

    done = json.loads(site_state.get_setting(setting_key) or "{}")
    written = 0
    for fid, (found, credential) in wanted.items():
        target = folder / f"{fid}.bin"
        if done.get(fid) == credential.page_id and target.exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(target, seal(found.path.read_bytes(), credential, fid))
        written += 1
    if folder.is_dir():
        for stale in folder.glob("*.bin"):
            if stale.stem not in wanted:
                stale.unlink()
    now = {fid: credential.page_id for fid, (_found, credential) in wanted.items()}
    if now != done:  # most builds change nothing here, and then write nothing
        site_state.put_setting(setting_key, json.dumps(now, sort_keys=True))
    return written

"""The builder: collect -> render -> encrypt -> write -> manifest.

Incremental by default: only people in the dirty set (or whose page file is missing) are
rendered, and a rendered page is encrypted and written only when its content hash differs
from the manifest. Every file is written atomically (temp file in the same folder, fsync,
os.replace), so a reader never sees half a page and a crash leaves the previous site.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from db import credentials as stored
from db import site as site_state
from db import write_transaction
from db.models import Credential
from site_builder import crypto, keys, render, shell

log = logging.getLogger("otmetka.build")

PageKey = tuple[str, str]
ProgressBar = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]
PAGES_DIR = "p"
_WEEK_KEY = "build.week"
# Bumped when the shell, the unlock script or the envelope change, so every page is redone.
_SHELL_VERSION = shell.shell_version()


@dataclass
class BuildOptions:
    output_dir: Path
    secret_file: Path
    title: str
    remember_days: int
    today: dt.date
    full: bool = False


@dataclass
class BuildResult:
    rendered: int = 0
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    without_credentials: int = 0
    bytes_written: int = 0
    built: list[tuple[str, PageKey, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"built site: {self.written} pages written, {self.unchanged} unchanged, "
            f"{self.removed} removed ({self.rendered} rendered; "
            f"{self.without_credentials} people without credentials)"
        )


# --- write ---------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename over: all or nothing, even on power loss."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- collect -------------------------------------------------------------------------------


@dataclass
class Plan:
    credentials: dict[PageKey, Credential]
    wanted: set[PageKey]
    dirty_read: set[tuple[str, str]]
    everyone: set[PageKey]


def _week_of(day: dt.date) -> str:
    return (day - dt.timedelta(days=day.weekday())).isoformat()


def collect(options: BuildOptions, pages_dir: Path) -> Plan:
    """Who gets a page, and whose page must be rendered now."""
    everyone = render.people_with_pages(options.today)
    credentials = {k: c for k, c in stored.active_by_person().items() if k in everyone}
    dirty = site_state.dirty_rows()
    new_week = site_state.get_setting(_WEEK_KEY) != f"{_week_of(options.today)}/{_SHELL_VERSION}"
    expanded = None if (options.full or new_week) else render.expand_dirty(dirty)
    wanted = set(credentials) if expanded is None else expanded & set(credentials)
    missing = {k for k, c in credentials.items() if not (pages_dir / f"{c.page_id}.html").exists()}
    return Plan(credentials, wanted | missing, dirty, everyone)


# --- render, encrypt -------------------------------------------------------------------------


def content_hash(fragment: str) -> str:
    return hashlib.sha256(f"{_SHELL_VERSION}\n{fragment}".encode()).hexdigest()


def encrypt(fragment: str, credential: Credential, options: BuildOptions) -> bytes:
    envelope = crypto.encrypt_page(
        fragment.encode("utf-8"),
        bytes(credential.derived_key),
        bytes(credential.salt),
        credential.page_id,
        credential.kdf_iterations,
    )
    html = shell.render_shell(
        envelope,
        credential.page_id,
        title=options.title,
        remember_days=options.remember_days,
        css=render.page_css(),
    )
    return html.encode("utf-8")


def _rendered(plan: Plan, options: BuildOptions) -> Iterator[tuple[PageKey, str]]:
    if plan.wanted:
        yield from render.render_pages(options.today, plan.wanted)


# --- manifest, cleanup -----------------------------------------------------------------------


def _remove_stale(pages_dir: Path, plan: Plan) -> int:
    """Delete pages of people who left, lost their page, or whose login was rotated."""
    live = {c.page_id for c in plan.credentials.values()}
    stale_files = [p for p in pages_dir.glob("*.html") if p.stem not in live]
    for path in stale_files:
        path.unlink(missing_ok=True)
    stale_ids = set(site_state.manifest()) - live
    site_state.forget_pages(stale_ids)
    return len(stale_files)


def _write_index(options: BuildOptions) -> None:
    salt = keys.public_salt(keys.load_or_create_secret(options.secret_file))
    html = shell.render_login_page(salt, title=options.title).encode("utf-8")
    index = options.output_dir / "index.html"
    if not index.exists() or index.read_bytes() != html:
        write_atomic(index, html)


def _no_bar(_label: str, _total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda _n: None)


def build_site(options: BuildOptions, bar: ProgressBar = _no_bar) -> BuildResult:
    """Run the pipeline once; returns what it did. `bar(label, total)` may draw progress."""
    pages_dir = options.output_dir / PAGES_DIR
    pages_dir.mkdir(parents=True, exist_ok=True)
    plan = collect(options, pages_dir)
    with bar("build", len(plan.wanted)) as advance:
        result = _render_and_write(plan, options, pages_dir, advance)
    _finish(options, plan, result, pages_dir)
    return result


def _render_and_write(
    plan: Plan, options: BuildOptions, pages_dir: Path, advance: Callable[[int], None]
) -> BuildResult:
    result = BuildResult(without_credentials=len(plan.everyone) - len(plan.credentials))
    known = site_state.manifest()
    built: list[tuple[str, PageKey, str]] = []
    # fsync dominates a full build; threads overlap it (it releases the GIL).
    with ThreadPoolExecutor(max_workers=4) as writers:
        pending: list[Future[None]] = []
        for key, fragment in _rendered(plan, options):
            result.rendered += 1
            credential = plan.credentials[key]
            digest = content_hash(fragment)
            target = pages_dir / f"{credential.page_id}.html"
            entry = known.get(credential.page_id)
            if entry is not None and entry.content_hash == digest and target.exists():
                result.unchanged += 1
            else:
                data = encrypt(fragment, credential, options)
                pending.append(writers.submit(write_atomic, target, data))
                result.written += 1
                result.bytes_written += len(data)
                built.append((credential.page_id, key, digest))
            pending = _settle(pending, keep=32)
            advance(1)
        _settle(pending, keep=0)
    _fsync_dir(pages_dir)
    result.built = built
    return result


def _settle(pending: list[Future[None]], keep: int) -> list[Future[None]]:
    """Wait for older writes so memory stays bounded; re-raise a failed write here."""
    while len(pending) > keep:
        pending.pop(0).result()
    return pending


def _finish(options: BuildOptions, plan: Plan, result: BuildResult, pages_dir: Path) -> None:
    result.removed = _remove_stale(pages_dir, plan)
    _write_index(options)
    with write_transaction():
        site_state.record_pages(result.built, dt.datetime.now(dt.UTC))
        site_state.clear_dirty(plan.dirty_read)
        site_state.put_setting(_WEEK_KEY, f"{_week_of(options.today)}/{_SHELL_VERSION}")
    log.info("%s", result.summary())

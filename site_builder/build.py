"""The builder: collect -> render -> encrypt -> write -> manifest.

Incremental by default: only people in the dirty set (or whose page file is missing) are
rendered, and a rendered page is encrypted and written only when its content hash differs
from the manifest. Every file is written all or nothing (staged under a hidden name, synced,
renamed into place: `publishing`), so a reader never sees half a page and a crash leaves the
previous site.

The public folder gives nothing away but the number of pages (docs/security.md): every page
has the same shell (the same scripts and CSP, whoever it is for), its envelope is padded to
a size bucket, the pages of a build are staged and then renamed into place in a random
order, and every file and folder carries one fixed mtime (`publishing`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from otmetka.db import acts as events
from otmetka.db import analytics, build_state, page_versions, write_transaction
from otmetka.db import credentials as credentials_db
from otmetka.db.errors import OtmetkaError
from otmetka.db.models import Credential
from otmetka.site_builder import attachments, crypto, keys, publishing, shell, static_files
from otmetka.site_builder.atomic import fsync_dir
from otmetka.site_builder.pages import audience, consent_text, lookups, render

log = logging.getLogger("otmetka.build")

ProgressBar = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]
PAGES_DIR = "p"
_WEEK_KEY = "build.week"
_LOOK_KEY = "build.look"  # the last build's `_look`, for a page blocked between builds
# The offline copy is taken by the first, while the document is parsed; the second binds
# the acts of a decrypted page and offers that copy.
PAGE_SCRIPTS = ("save.js", "page.js")
PAGE_DATA_ID = "otm-page-data"
# Starting workers costs about a second (less once their server runs): worth it for a full
# build, not for a few pages.
PARALLEL_FROM = 300


def _page_scripts() -> tuple[str, ...]:
    """static/save.js and static/page.js, as shipped (see their headers)."""
    return tuple(static_files.script(name) for name in PAGE_SCRIPTS)


def _shell_version() -> str:
    digest = hashlib.sha256(shell.shell_version().encode())
    for script in _page_scripts():
        digest.update(script.encode())
    digest.update(render.page_css().encode())
    return digest.hexdigest()[:12]


# Bumped when the shell, the scripts, the styles or the envelope change: every page is redone.
_SHELL_VERSION = _shell_version()


@dataclass
class BuildOptions:
    output_dir: Path
    secret_file: Path
    title: str
    remember_days: int
    today: dt.date
    full: bool = False
    # Absolute base URL of the acts API (".../api/v1/"), written into every page: a page
    # opened from file:// or a mirror still posts to the school. Empty: acts cannot be sent.
    api_url: str = ""
    # Processes rendering classes when a build renders at least PARALLEL_FROM pages.
    workers: int = 1


@dataclass
class BuildResult:
    rendered: int = 0
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    without_credentials: int = 0
    bytes_written: int = 0
    built: list[tuple[str, audience.PageKey, str]] = field(default_factory=list)
    # (credential id, page version) of every page rendered, written or not: an
    # acknowledgement must name a version that was built for its login.
    versions: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"built site: {self.written} pages written, {self.unchanged} unchanged, "
            f"{self.removed} removed ({self.rendered} rendered; "
            f"{self.without_credentials} people without credentials)"
        )


# --- collect -------------------------------------------------------------------------------


@dataclass
class Plan:
    credentials: dict[audience.PageKey, Credential]
    wanted: set[audience.PageKey]
    dirty_read: set[tuple[str, str]]
    everyone: set[audience.PageKey]
    children: dict[str, list[str]] = field(default_factory=dict)  # guardian -> children
    consents: dict[str, str] = field(default_factory=dict)  # guardian -> consent state


def _week_of(day: dt.date) -> str:
    return analytics.monday(day).isoformat()


def collect(options: BuildOptions, pages_dir: Path) -> Plan:
    """Who gets a page, and whose page must be rendered now."""
    roster = audience.roster(options.today)
    everyone = roster.keys()
    credentials = {k: c for k, c in credentials_db.active_by_person().items() if k in everyone}
    dirty = build_state.dirty_rows()
    new_week = build_state.get_setting(_WEEK_KEY) != f"{_week_of(options.today)}/{_SHELL_VERSION}"
    expanded = None if (options.full or new_week) else audience.expand_dirty(dirty)
    wanted = set(credentials) if expanded is None else expanded & set(credentials)
    missing = {k for k, c in credentials.items() if not (pages_dir / f"{c.page_id}.html").exists()}
    plan = Plan(credentials, wanted | missing, dirty, everyone, roster.children)
    plan.consents = events.consent_states()
    return plan


# --- render, encrypt -------------------------------------------------------------------------


def content_hash(page_version: str, data_block: bytes) -> str:
    """What the manifest compares: the shell, the fragment (by its page version, a hash
    already taken) and the page data block. One pass over the block, not the page."""
    head = f"{_SHELL_VERSION}\n{page_version}\n".encode()
    return hashlib.sha256(head + data_block).hexdigest()


def page_data(
    key: audience.PageKey,
    credential: Credential,
    page_version: str,
    plan: Plan,
    options: BuildOptions,
) -> dict[str, Any]:
    """What static/page.js needs to post acts: inert JSON inside the encrypted fragment.

    ``page_version`` is the SHA-256 of the fragment without this block: an acknowledgement
    names the exact content the parent saw.
    """
    monday, saturday = lookups.week_of(options.today)
    data: dict[str, Any] = {
        "v": 1,
        "api": options.api_url,
        "token": keys.endpoint_token(bytes(credential.derived_key)),
        "role": key[0],
        "page_version": page_version,
        "shown": {
            "as_of": options.today.isoformat(),
            "week_start": monday.isoformat(),
            "week_end": saturday.isoformat(),
        },
    }
    if key[0] == audience.GUARDIAN:
        data["guardian_id"] = key[1]
        data["children"] = plan.children.get(key[1], [])
        data["consent"] = plan.consents.get(key[1], "unknown")
        data["consent_version"] = consent_text.CONSENT_TEXT_VERSION
    return data


def page_data_block(data: dict[str, Any]) -> bytes:
    """The element that follows the fragment in the plaintext and carries `data`."""
    block = shell.envelope_json(data)  # JSON with <, >, & escaped: cannot end the element
    return f'<script type="application/json" id="{PAGE_DATA_ID}">{block}</script>\n'.encode()


def connect_source(api_url: str) -> str:
    """CSP connect-src: the API's origin only; a page posts nowhere else."""
    parts = urlsplit(api_url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return "'none'"


def encrypt(plaintext: bytes, credential: Credential, options: BuildOptions) -> bytes:
    """The page file: envelope v2 (padded to its size bucket) in the shell every page shares."""
    envelope = crypto.seal_page(
        plaintext,
        bytes(credential.derived_key),
        bytes(credential.salt),
        credential.page_id,
        credential.kdf_iterations,
    )
    return _shell(envelope, credential.page_id, _look(options))


def _look(options: BuildOptions) -> dict[str, Any]:
    """What the shell of every page of this site depends on, besides its envelope."""
    return {"title": options.title, "remember_days": options.remember_days, "api": options.api_url}


def _shell(envelope: dict[str, Any], page_id: str, look: dict[str, Any]) -> bytes:
    shared = _shell_of(look["title"], look["remember_days"], look["api"])
    return shell.render_shell(envelope, page_id, **shared)


@functools.lru_cache(maxsize=8)
def _shell_of(title: str, remember_days: int, api: str) -> dict[str, Any]:
    """What the shell of every page of a look shares, made once: strings the shell's own
    cache can find without hashing a new copy of the styles for each page."""
    # Every page carries the download script and may fetch from its own origin, whether it
    # links a file or not: a shell that differed would tell a class teacher's page apart.
    connect = attachments.connect_src(connect_source(api), attachments.FILE_MARK)
    return {
        "title": title,
        "remember_days": remember_days,
        "css": render.page_css(),
        "scripts": (*_page_scripts(), attachments.download_script()),
        "connect_src": connect,
    }


def _rendered(plan: Plan, options: BuildOptions) -> Iterator[tuple[audience.PageKey, str]]:
    """Full pages, except for guardians without consent: they get the consent form only."""
    waiting = {
        k for k in plan.wanted if k[0] == audience.GUARDIAN and plan.consents.get(k[1]) != "granted"
    }
    full = plan.wanted - waiting
    consent = render.render_consent_pages(options.today, waiting) if waiting else iter(())
    if full:
        workers = options.workers if len(full) >= PARALLEL_FROM else 1
        yield from render.render_pages(options.today, full, workers=workers, meanwhile=consent)
    yield from consent


# --- manifest, cleanup -----------------------------------------------------------------------


def _remove_stale(pages_dir: Path, plan: Plan, title: str) -> int:
    """Delete pages of people who left, lost their page, or whose login was rotated.

    Pages of logins reported leaked stay, as «доступ заблокирован» (see `block_page`).
    """
    live = {c.page_id for c in plan.credentials.values()}
    blocked = events.blocked_page_ids()
    kept = live | blocked
    with os.scandir(pages_dir) as entries:  # not temp files, whose names start with a dot
        names = [e.name for e in entries if e.name.endswith(".html") and e.name[0] != "."]
    stale_files = [pages_dir / n for n in names if n.removesuffix(".html") not in kept]
    for path in stale_files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    for page_id in blocked:
        block_page(pages_dir.parent, page_id, title)  # repairs one a crash left unwritten
    stale_ids = build_state.manifest_page_ids() - live
    build_state.forget_pages(stale_ids)
    return len(stale_files)


def _write_index(options: BuildOptions) -> None:
    salt = keys.public_salt(keys.load_or_create_secret(options.secret_file))
    html = shell.render_login_page(salt, title=options.title).encode("utf-8")
    index = options.output_dir / "index.html"
    if not index.exists() or index.read_bytes() != html:
        publishing.write_public(index, html)


def _no_bar(_label: str, _total: int) -> AbstractContextManager[Callable[[int], None]]:
    return nullcontext(lambda _n: None)


def build_site(options: BuildOptions, bar: ProgressBar = _no_bar) -> BuildResult:
    """Run the pipeline once; returns what it did. `bar(label, total)` may draw progress."""
    if options.full:  # every page: the workers will be needed
        render.start_workers_early(options.workers)
    pages_dir = options.output_dir / PAGES_DIR
    pages_dir.mkdir(parents=True, exist_ok=True)
    _tidy_output(options.output_dir)
    plan = collect(options, pages_dir)
    try:
        with bar("build", len(plan.wanted)) as advance:
            result = _render_and_write(plan, options, pages_dir, advance)
        _finish(options, plan, result, pages_dir)
    except OSError as error:
        raise _write_failed(error, options.output_dir) from error
    _tidy_output(options.output_dir)
    return result


# A temp file older than this was left by a build that died (SIGKILL, power cut); younger
# ones may belong to a page being written right now by the endpoint (`build_pages`).
STALE_TEMP_S = 15 * 60


def _tidy_output(output_dir: Path) -> None:
    """Folders of the site world-readable whatever the umask (files are made 0644 by
    `write_atomic`), and temp files a killed build left behind removed. A web server never
    serves them either: `otmetka serve` refuses dotfiles."""
    stale_before = dt.datetime.now().timestamp() - STALE_TEMP_S
    for folder in [output_dir, *(p for p in output_dir.iterdir() if p.is_dir())]:
        if folder.stat().st_mode & 0o777 != 0o755:
            os.chmod(folder, 0o755)
        for temp in folder.glob(".tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                if temp.stat().st_mtime < stale_before:
                    temp.unlink()


def _write_failed(error: OSError, output_dir: Path) -> Exception:
    """A full disk or a file-size limit mid-build, as one line an operator can act on."""
    where = error.filename or output_dir
    why = error.strerror or str(error)
    return OtmetkaError(
        f"build stopped: cannot write {where} ({why}). Every page in {output_dir} is still a "
        "complete one (the previous version, or the new one where it was written in full); "
        "free disk space (or raise the limit) and run `otmetka build` again"
    )


@dataclass
class _Writes:
    """What one pass of `_stage_pages` found and did."""

    result: BuildResult
    known: dict[str, Any]
    built: list[tuple[str, audience.PageKey, str]] = field(default_factory=list)
    staged: list[publishing.Move] = field(default_factory=list)


def _render_and_write(
    plan: Plan, options: BuildOptions, pages_dir: Path, advance: Callable[[int], None]
) -> BuildResult:
    result = BuildResult(without_credentials=len(plan.everyone) - len(plan.credentials))
    writes = _Writes(result, dict(build_state.manifest()))
    try:
        _stage_pages(plan, options, pages_dir, advance, writes)
        publishing.commit_shuffled(writes.staged)  # the order of the class list stays unseen
    except BaseException:
        publishing.discard(writes.staged)
        raise
    fsync_dir(pages_dir)
    result.built = writes.built
    return result


def _stage_pages(
    plan: Plan,
    options: BuildOptions,
    pages_dir: Path,
    advance: Callable[[int], None],
    writes: _Writes,
) -> None:
    """Render, encrypt and stage each changed page (see `publishing`)."""
    # Writing the files is a good part of a full build; a thread overlaps it (a write
    # releases the GIL). One, not several: writers creating files in one folder contend
    # for it in the kernel, and the spinning cost more CPU than it saved. They are synced
    # all together before the first rename.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as writers:
        pending: list[tuple[Future[Path], Path]] = []
        try:
            for key, fragment in _rendered(plan, options):
                sealed = _sealed_if_changed(key, fragment, plan, options, writes)
                if sealed is not None:
                    target = pages_dir / f"{plan.credentials[key].page_id}.html"
                    pending.append((writers.submit(publishing.stage, target, sealed), target))
                _settle(pending, writes.staged, keep=32)
                advance(1)
            _settle(pending, writes.staged, keep=0)
        except BaseException:
            _settle_quietly(pending, writes.staged)
            raise


def _sealed_if_changed(
    key: audience.PageKey, fragment: str, plan: Plan, options: BuildOptions, writes: _Writes
) -> bytes | None:
    """The page file to write, or None when the manifest says the page is unchanged."""
    result = writes.result
    result.rendered += 1
    credential = plan.credentials[key]
    body = fragment.encode("utf-8")
    version = hashlib.sha256(body).hexdigest()  # an acknowledgement names this (page_data)
    result.versions.append((credential.get_id(), version))
    block = page_data_block(page_data(key, credential, version, plan, options))
    digest = content_hash(version, block)
    entry = writes.known.get(credential.page_id)
    same = entry is not None and entry.content_hash == digest
    if same and (options.output_dir / PAGES_DIR / f"{credential.page_id}.html").exists():
        result.unchanged += 1
        return None
    sealed = encrypt(body + block, credential, options)
    result.written += 1
    result.bytes_written += len(sealed)
    writes.built.append((credential.page_id, key, digest))
    return sealed


def _settle(
    pending: list[tuple[Future[Path], Path]], staged: list[publishing.Move], keep: int
) -> None:
    """Wait for older writes so memory stays bounded; re-raise a failed write here."""
    while len(pending) > keep:
        future, target = pending.pop(0)
        staged.append((future.result(), target))


def _settle_quietly(
    pending: list[tuple[Future[Path], Path]], staged: list[publishing.Move]
) -> None:
    """After a failure: collect what the other writes staged, so it can be removed."""
    for future, target in pending:
        with contextlib.suppress(Exception):
            staged.append((future.result(), target))


def _finish(options: BuildOptions, plan: Plan, result: BuildResult, pages_dir: Path) -> None:
    look = json.dumps(_look(options), sort_keys=True)
    if build_state.get_setting(_LOOK_KEY) != look:  # before block_page reads it
        with write_transaction():
            build_state.put_setting(_LOOK_KEY, look)
    result.removed = _remove_stale(pages_dir, plan, options.title)
    _write_index(options)
    retire_v1_files(options.output_dir)
    attachments.publish(options.output_dir, plan.credentials)  # staff pages' PDFs
    publishing.pin_times(options.output_dir)  # the PDFs, and folders a rename just touched
    with write_transaction():
        build_state.record_pages(result.built, dt.datetime.now(dt.UTC))
        page_versions.record(result.versions, dt.datetime.now(dt.UTC))
        build_state.clear_dirty(plan.dirty_read)
        build_state.put_setting(_WEEK_KEY, f"{_week_of(options.today)}/{_SHELL_VERSION}")
    log.info("%s", result.summary())


def retire_v1_files(output_dir: Path) -> int:
    """Delete PDFs sealed in envelope v1 (they carry their reader's PBKDF2 salt, which ties
    them to one page), so that publishing seals them again in v2. Returns how many."""
    retired = 0
    folders = (attachments.EXTRACTS_DIR, attachments.REPORTS_DIR)
    for path in [p for folder in folders for p in output_dir.glob(f"{folder}/*.bin")]:
        with path.open("rb") as handle:  # keys are sorted: "v" ends the JSON
            handle.seek(max(0, path.stat().st_size - 8))
            if handle.read().endswith(b'"v":1}'):
                path.unlink()
                retired += 1
    return retired


# --- pages changed by an act ----------------------------------------------------------------


def build_pages(options: BuildOptions, keys: set[audience.PageKey]) -> BuildResult:
    """Render and write these pages now (a parent just consented), leaving the dirty set,
    stale pages and the week marker to the next full run of `build_site`."""
    pages_dir = options.output_dir / PAGES_DIR
    pages_dir.mkdir(parents=True, exist_ok=True)
    roster = audience.roster(options.today)
    wanted = keys & roster.keys()
    credentials = {k: c for k, c in credentials_db.active_by_person().items() if k in wanted}
    plan = Plan(credentials, set(credentials), set(), roster.keys(), roster.children)
    plan.consents = events.consent_states()
    result = _render_and_write(plan, options, pages_dir, lambda _n: None)
    with write_transaction():
        build_state.record_pages(result.built, dt.datetime.now(dt.UTC))
        page_versions.record(result.versions, dt.datetime.now(dt.UTC))
    return result


# In the decrypted notice only: from outside a blocked page is a page like any other.
BLOCKED_MARK = b'data-otm-blocked="1"'
_ENVELOPE_OPEN = b'<script type="application/json" id="otm-envelope">'


def block_page(output_dir: Path, page_id: str, title: str) -> bool:
    """Replace a page by «доступ заблокирован» (no personal data); True if written now.

    The notice is sealed like any page, in the shell every page shares (as the last build
    recorded it; `title` only until there was one) and under the leaked login's own key:
    the file keeps the envelope and size bucket of every other page, and whoever opens it
    with the old password reads why it is closed. A page id without a credential gets a key
    nobody holds.
    """
    target = output_dir / PAGES_DIR / f"{page_id}.html"
    look = _last_look(title)
    notice = render.blocked_page(str(look["title"])).encode("utf-8")
    key, salt, rounds = _key_of(page_id)
    html = _shell(crypto.seal_page(notice, key, salt, page_id, rounds), page_id, look)
    if target.exists() and _same_notice(target.read_bytes(), html, (key, page_id, notice)):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    publishing.write_public(target, html)
    return True


def _last_look(title: str) -> dict[str, Any]:
    stored: str | None = build_state.get_setting(_LOOK_KEY)
    if stored is None:
        return {"title": title, "remember_days": 0, "api": ""}
    look: dict[str, Any] = json.loads(stored)
    return look


def _key_of(page_id: str) -> tuple[bytes, bytes, int]:
    """The key, KDF salt and count of the credential of a page; for a page id without one,
    a key nobody holds."""
    credential = Credential.get_or_none(Credential.page_id == page_id)
    if credential is None:
        return secrets.token_bytes(32), crypto.new_salt(), crypto.DEFAULT_ITERATIONS
    return bytes(credential.derived_key), bytes(credential.salt), int(credential.kdf_iterations)


def _split_envelope(html: bytes) -> tuple[bytes, bytes, bytes]:
    """(before, envelope JSON, after) of a page file; an empty envelope if it has none."""
    head, found, rest = html.partition(_ENVELOPE_OPEN)
    sealed, _end, tail = rest.partition(b"</script>")
    return (head, sealed, tail) if found else (html, b"", b"")


def _same_notice(existing: bytes, fresh: bytes, opener: tuple[bytes, str, bytes]) -> bool:
    """The page already is this notice in the current shell (envelopes differ by their iv)."""
    key, page_id, notice = opener
    old_head, sealed, old_tail = _split_envelope(existing)
    new_head, _sealed, new_tail = _split_envelope(fresh)
    if (old_head, old_tail) != (new_head, new_tail) or not sealed:
        return False
    try:
        return crypto.decrypt_page(json.loads(sealed), key, page_id) == notice
    except (crypto.PageCryptoError, ValueError):
        return False


def remove_page(output_dir: Path, page_id: str) -> bool:
    """Delete a page at once (consent refused or withdrawn); True if there was one."""
    target = output_dir / PAGES_DIR / f"{page_id}.html"
    existed = target.exists()
    target.unlink(missing_ok=True)
    if existed:
        publishing.pin(target.parent)  # the folder's mtime would tell when
    return existed


def page_data_of(html_fragment: str) -> dict[str, Any]:
    """The page data block of a decrypted fragment (for tests and tools)."""
    marker = f'<script type="application/json" id="{PAGE_DATA_ID}">'
    text = html_fragment.split(marker, 1)[1].split("</script>", 1)[0]
    data: dict[str, Any] = json.loads(text)
    return data

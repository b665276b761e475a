"""The builder: collect -> render -> encrypt -> write -> manifest.

Incremental by default: only people in the dirty set (or whose page file is missing) are
rendered, and a rendered page is encrypted and written only when its content hash differs
from the manifest. Every file is written atomically (temp file in the same folder, fsync,
os.replace), so a reader never sees half a page and a crash leaves the previous site.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from otmetka.db import acts as events
from otmetka.db import analytics, write_transaction
from otmetka.db import build_state as site_state
from otmetka.db import credentials as stored
from otmetka.db.errors import OtmetkaError
from otmetka.db.models import Credential
from otmetka.site_builder import attachments, crypto, keys, shell, static_files
from otmetka.site_builder.atomic import fsync_dir, write_atomic
from otmetka.site_builder.pages import audience, consent_text, lookups, render

log = logging.getLogger("otmetka.build")

ProgressBar = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]
PAGES_DIR = "p"
_WEEK_KEY = "build.week"
PAGE_SCRIPT = "page.js"
PAGE_DATA_ID = "otm-page-data"
# Spawning workers costs about a second: worth it for a full build, not for a few pages.
PARALLEL_FROM = 300


def _page_script() -> str:
    """static/page.js: binds the act buttons and forms of a decrypted page (see its header)."""
    return static_files.script(PAGE_SCRIPT)


def _shell_version() -> str:
    digest = hashlib.sha256(shell.shell_version().encode())
    digest.update(_page_script().encode())
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
    credentials = {k: c for k, c in stored.active_by_person().items() if k in everyone}
    dirty = site_state.dirty_rows()
    new_week = site_state.get_setting(_WEEK_KEY) != f"{_week_of(options.today)}/{_SHELL_VERSION}"
    expanded = None if (options.full or new_week) else audience.expand_dirty(dirty)
    wanted = set(credentials) if expanded is None else expanded & set(credentials)
    missing = {k for k, c in credentials.items() if not (pages_dir / f"{c.page_id}.html").exists()}
    plan = Plan(credentials, wanted | missing, dirty, everyone, roster.children)
    plan.consents = events.consent_states()
    return plan


# --- render, encrypt -------------------------------------------------------------------------


def content_hash(fragment: str) -> str:
    return hashlib.sha256(f"{_SHELL_VERSION}\n{fragment}".encode()).hexdigest()


def page_data(
    key: audience.PageKey, credential: Credential, fragment: str, plan: Plan, options: BuildOptions
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
        "page_version": hashlib.sha256(fragment.encode("utf-8")).hexdigest(),
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


def with_page_data(fragment: str, data: dict[str, Any]) -> str:
    block = shell.envelope_json(data)  # JSON with <, >, & escaped: cannot end the element
    return f'{fragment}<script type="application/json" id="{PAGE_DATA_ID}">{block}</script>\n'


def connect_source(api_url: str) -> str:
    """CSP connect-src: the API's origin only; a page posts nowhere else."""
    parts = urlsplit(api_url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return "'none'"


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
        scripts=[_page_script(), *attachments.page_scripts(fragment)],
        connect_src=attachments.connect_src(connect_source(options.api_url), fragment),
    )
    return html.encode("utf-8")


def _rendered(plan: Plan, options: BuildOptions) -> Iterator[tuple[audience.PageKey, str]]:
    """Full pages, except for guardians without consent: they get the consent form only."""
    waiting = {
        k for k in plan.wanted if k[0] == audience.GUARDIAN and plan.consents.get(k[1]) != "granted"
    }
    full = plan.wanted - waiting
    if full:
        workers = options.workers if len(full) >= PARALLEL_FROM else 1
        yield from render.render_pages(options.today, full, workers=workers)
    if waiting:
        yield from render.render_consent_pages(options.today, waiting)


# --- manifest, cleanup -----------------------------------------------------------------------


def _remove_stale(pages_dir: Path, plan: Plan, title: str) -> int:
    """Delete pages of people who left, lost their page, or whose login was rotated.

    Pages of logins reported leaked stay, as «доступ заблокирован» (see `block_page`).
    """
    live = {c.page_id for c in plan.credentials.values()}
    blocked = events.blocked_page_ids()
    stale_files = [
        p
        for p in pages_dir.glob("*.html")  # pathlib's glob matches dotfiles: skip temp files
        if p.stem not in live and p.stem not in blocked and not p.name.startswith(".")
    ]
    for path in stale_files:
        path.unlink(missing_ok=True)
    for page_id in blocked:
        block_page(pages_dir.parent, page_id, title)  # repairs one a crash left unwritten
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


def _render_and_write(
    plan: Plan, options: BuildOptions, pages_dir: Path, advance: Callable[[int], None]
) -> BuildResult:
    result = BuildResult(without_credentials=len(plan.everyone) - len(plan.credentials))
    known = site_state.manifest()
    built: list[tuple[str, audience.PageKey, str]] = []
    # fsync dominates a full build; threads overlap it (it releases the GIL).
    with ThreadPoolExecutor(max_workers=4) as writers:
        pending: list[Future[None]] = []
        for key, fragment in _rendered(plan, options):
            result.rendered += 1
            credential = plan.credentials[key]
            fragment = with_page_data(fragment, page_data(key, credential, fragment, plan, options))
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
    fsync_dir(pages_dir)
    result.built = built
    return result


def _settle(pending: list[Future[None]], keep: int) -> list[Future[None]]:
    """Wait for older writes so memory stays bounded; re-raise a failed write here."""
    while len(pending) > keep:
        pending.pop(0).result()
    return pending


def _finish(options: BuildOptions, plan: Plan, result: BuildResult, pages_dir: Path) -> None:
    result.removed = _remove_stale(pages_dir, plan, options.title)
    _write_index(options)
    attachments.publish(options.output_dir, plan.credentials)  # staff pages' PDFs
    with write_transaction():
        site_state.record_pages(result.built, dt.datetime.now(dt.UTC))
        site_state.clear_dirty(plan.dirty_read)
        site_state.put_setting(_WEEK_KEY, f"{_week_of(options.today)}/{_SHELL_VERSION}")
    log.info("%s", result.summary())


# --- pages changed by an act ----------------------------------------------------------------


def build_pages(options: BuildOptions, keys: set[audience.PageKey]) -> BuildResult:
    """Render and write these pages now (a parent just consented), leaving the dirty set,
    stale pages and the week marker to the next full run of `build_site`."""
    pages_dir = options.output_dir / PAGES_DIR
    pages_dir.mkdir(parents=True, exist_ok=True)
    roster = audience.roster(options.today)
    wanted = keys & roster.keys()
    credentials = {k: c for k, c in stored.active_by_person().items() if k in wanted}
    plan = Plan(credentials, set(credentials), set(), roster.keys(), roster.children)
    plan.consents = events.consent_states()
    result = _render_and_write(plan, options, pages_dir, lambda _n: None)
    with write_transaction():
        site_state.record_pages(result.built, dt.datetime.now(dt.UTC))
    return result


BLOCKED_MARK = b'<meta name="otm-blocked" content="1">'


def block_page(output_dir: Path, page_id: str, title: str) -> bool:
    """Replace a page by «доступ заблокирован» (no personal data); True if written now."""
    target = output_dir / PAGES_DIR / f"{page_id}.html"
    if target.exists() and BLOCKED_MARK in target.read_bytes():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, render.blocked_page(title).encode("utf-8"))
    return True


def remove_page(output_dir: Path, page_id: str) -> bool:
    """Delete a page at once (consent refused or withdrawn); True if there was one."""
    target = output_dir / PAGES_DIR / f"{page_id}.html"
    existed = target.exists()
    target.unlink(missing_ok=True)
    return existed


def page_data_of(html_fragment: str) -> dict[str, Any]:
    """The page data block of a decrypted fragment (for tests and tools)."""
    marker = f'<script type="application/json" id="{PAGE_DATA_ID}">'
    text = html_fragment.split(marker, 1)[1].split("</script>", 1)[0]
    data: dict[str, Any] = json.loads(text)
    return data

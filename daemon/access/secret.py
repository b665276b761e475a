"""`otmetka secret rotate`: a new site secret, hence a new public salt and a new address
(page id) for every page. Logins, passwords and page keys stay as they are.

Three steps, so that dying after any of them leaves something the next run can settle:

1. `prepare`: the new secret goes to `<secret_file>.new` (owner-only, fsynced);
2. `commit`: ONE transaction gives every credential its new page id, empties the build
   manifest, records the new public salt and appends the audit entry;
3. `finish`: the current secret is kept as `<secret_file>.old`, then `.new` is renamed
   over the secret file.

The recorded salt decides after a crash. A `.new` whose salt is the recorded one was
committed: any command opening the project (`open_project`) and the next rotation finish
its rename. A `.new` whose salt is not was never committed: the next rotation removes it.
Until the rename is done the database and the secret file disagree (pages at the new
addresses, index.html with the old salt), which is why finishing it must not wait for
the operator. After the three steps a full build writes every page at its new address
and deletes the pages at the old ones.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from otmetka.daemon.acts.paper import staff_actor
from otmetka.daemon.core.config import Config
from otmetka.daemon.core.errors import OtmetkaError
from otmetka.daemon.core.pidfile import daemon_stopped
from otmetka.daemon.core.progress import Reporter
from otmetka.daemon.core.settings import build_options
from otmetka.db import audit, build_state, write_transaction
from otmetka.db import credentials as credentials_db
from otmetka.site_builder import crypto, keys
from otmetka.site_builder.atomic import fsync_dir, write_atomic
from otmetka.site_builder.build import BuildResult, build_site

log = logging.getLogger("otmetka.secret")

SECRET_BYTES = 32
# The public salt of the last committed rotation (public: index.html carries it too).
SALT_SETTING = "site.rotated_salt"
AUDIT_ACTION = "site.secret_rotate"


@dataclass
class RotateResult:
    credentials: int
    page_ids_changed: int
    build: BuildResult
    old_secret: Path

    def summary(self) -> str:
        return (
            f"site secret rotated: {self.page_ids_changed} of {self.credentials} page ids "
            f"changed, site rebuilt ({self.build.written} pages written, "
            f"{self.build.removed} at old addresses removed); old bookmarks and page links "
            f"stop working, logins and passwords stay the same; previous secret kept in "
            f"{self.old_secret} (owner-only)"
        )


def pending_path(secret_file: Path) -> Path:
    return secret_file.with_name(secret_file.name + ".new")


def old_path(secret_file: Path) -> Path:
    return secret_file.with_name(secret_file.name + ".old")


def _read_secret(path: Path) -> bytes | None:
    """The secret in `path`, or None if it is missing or not one (cut off by a crash)."""
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return secret if len(secret) == SECRET_BYTES else None


# --- the three steps --------------------------------------------------------------------------


def prepare(secret_file: Path) -> bytes:
    """Step 1: a new secret in `<secret_file>.new`; returns it."""
    secret = secrets.token_bytes(SECRET_BYTES)
    keys.write_secret(pending_path(secret_file), secret)
    fsync_dir(secret_file.parent)
    return secret


def commit(new_salt: str, actor: str, now: dt.datetime) -> tuple[int, int]:
    """Step 2, in one transaction; returns (credentials, page ids changed)."""
    with write_transaction():
        total, changed = credentials_db.readdress_all(
            lambda login: crypto.page_id_for_login(login, new_salt)
        )
        build_state.forget_pages(list(build_state.manifest()))  # the next build writes all
        build_state.put_setting(SALT_SETTING, new_salt)
        details = {"what": "site secret rotated", "credentials": total, "page_ids": changed}
        audit.append(actor, AUDIT_ACTION, "site", {**details, "public_salt": new_salt}, now)
    return total, changed


def finish(secret_file: Path) -> bool:
    """Step 3, if `.new` holds the committed secret: keep the current one as `.old`, rename
    `.new` over it. True if this call did the rename. Safe to run from two processes."""
    recorded = build_state.get_setting(SALT_SETTING)
    new = _read_secret(pending_path(secret_file))
    if new is None or keys.public_salt(new) != recorded:
        return False
    current = _read_secret(secret_file)
    if current is not None and keys.public_salt(current) != recorded:
        _keep_old(secret_file, current)
    try:
        os.replace(pending_path(secret_file), secret_file)
    except FileNotFoundError:  # another process finished it a moment ago
        return False
    fsync_dir(secret_file.parent)
    return True


def _keep_old(secret_file: Path, secret: bytes) -> None:
    """`<secret_file>.old`, replaced atomically: a crash leaves the previous `.old` whole."""
    text = secret.hex() + "\n"  # as `keys.write_secret` writes it, so it reads back alike
    write_atomic(old_path(secret_file), text.encode("ascii"), mode=0o600)


def finish_interrupted(config: Config) -> None:
    """For `open_project`: finish a rotation that died between its commit and its rename,
    so no command works with a secret that disagrees with the stored page ids."""
    secret_file = config.site.secret_file
    if pending_path(secret_file).exists() and finish(secret_file):
        log.warning("finished the site secret rotation interrupted earlier: %s", secret_file)


def _discard_uncommitted(secret_file: Path) -> None:
    """A `.new` the database does not vouch for was never committed: remove it."""
    pending = pending_path(secret_file)
    new = _read_secret(pending)
    if new is None or keys.public_salt(new) != build_state.get_setting(SALT_SETTING):
        pending.unlink(missing_ok=True)


# --- the command --------------------------------------------------------------------------------


def _require_secret(secret_file: Path) -> None:
    if not secret_file.is_file():
        raise OtmetkaError(
            f"no site secret at {secret_file}: nothing to rotate. Run `otmetka init` for a "
            "new project, or `otmetka restore BACKUP` to bring the secret back"
        )
    if _read_secret(secret_file) is None:
        raise OtmetkaError(
            f"{secret_file} does not hold a site secret (64 hex digits); nothing was changed. "
            "Put it back from a backup (`otmetka restore BACKUP`)"
        )


def _check_finished(secret_file: Path, new: bytes) -> None:
    if _read_secret(secret_file) != new:
        raise OtmetkaError(
            f"the new site secret was committed but {pending_path(secret_file)} could not be "
            f"put in place of {secret_file}; once it can be, any command finishes the "
            "rotation: run `otmetka build`"
        )


def require_secret(config: Config) -> None:
    """Refuse a rotation without a site secret, before anything makes a database."""
    secret_file = config.site.secret_file
    if not secret_file.is_file() and not pending_path(secret_file).is_file():
        _require_secret(secret_file)


def rotate_secret(
    config: Config, reporter: Reporter, *, today: dt.date | None = None
) -> RotateResult:
    """Rotate the site secret, then rebuild the whole site at the new addresses. The
    project is open (`runtime.rotate_secret` checks the secret first, then opens it)."""
    secret_file = config.site.secret_file
    # Not beside the daemon: it builds pages and issues logins with the secret it read.
    with daemon_stopped(config):
        finish(secret_file)
        _require_secret(secret_file)
        _discard_uncommitted(secret_file)
        new = prepare(secret_file)
        total, changed = commit(keys.public_salt(new), staff_actor(), dt.datetime.now(dt.UTC))
        finish(secret_file)
        _check_finished(secret_file, new)
        options = build_options(config, full=True, today=today)
        built = build_site(options, bar=reporter.bar)
    result = RotateResult(total, changed, built, old_path(secret_file))
    log.info("%s", result.summary())
    return result

"""Faults of a build, with real processes on real files; afterwards the database always
passes `integrity_check`.

- `otmetka build` killed with SIGKILL half-way: every page in output/ is a complete one that
  opens with its key, no temp file is served and the next build clears them.
- A build that runs out of disk (a file-size limit, and a real full file system on a small
  tmpfs): one clear line, exit 1, the site as it was.

(The other faults, of serving, importing, mailing and the database, are in test_faults.py.)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from otmetka.daemon.core.config import Config, load_config
from otmetka.daemon.endpoint.app import create_app
from otmetka.db import close_database
from otmetka.site_builder import crypto
from tests.support import fault_support as faults
from tests.support.sync_support import (
    OTMETKA,
    query,
    wait_for,
    write_project,
)

STUDENTS = 250  # about 580 pages: a full build takes several seconds, time to kill it
STALE = 3600  # seconds: older than any write in progress (build.STALE_TEMP_S is 15 min)


# --- a school large enough, built once ----------------------------------------------------------


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo school with logins for everyone and its site built; its config file."""
    folder = tmp_path_factory.mktemp("faults")
    config_path = write_project(folder)
    done = faults.run_otmetka(config_path, "demo", "--students", str(STUDENTS), "--no-serve")
    assert done.returncode == 0, done.stderr
    return config_path


def _keys(config: Config) -> dict[str, bytes]:
    rows = query(faults.database_file(config), "SELECT page_id, derived_key FROM credential")
    return {str(page_id): bytes(key) for page_id, key in rows}


def _open_all(output: Path, keys: dict[str, bytes]) -> dict[str, str]:
    """Every page in output/p decrypted with its key; fails on any that does not open."""
    pages = {}
    for path in _pages(output):
        html = path.read_text(encoding="utf-8")
        sealed = json.loads(html.split('id="otm-envelope">', 1)[1].split("</script>", 1)[0])
        pages[path.stem] = crypto.decrypt_page(sealed, keys[path.stem], path.stem).decode()
    return pages


def _rewrite_everything_next(config: Config) -> None:
    """Forget the manifest, so the next `build --full` writes every page again."""
    with contextlib.closing(sqlite3.connect(faults.database_file(config))) as conn:
        conn.execute("DELETE FROM build_manifest")
        conn.commit()


def _temp_files(output: Path) -> list[Path]:
    return sorted(output.rglob(".tmp-*"))


def _pages(output: Path) -> list[Path]:
    """The pages (pathlib's glob would match the builder's .tmp-*.html files too)."""
    return sorted(p for p in (output / "p").glob("*.html") if not p.name.startswith("."))


def _page_inodes(output: Path) -> dict[str, int]:
    """Every page file's inode: a page renamed into place is a new file (all share one mtime)."""
    return {p.stem: p.stat().st_ino for p in _pages(output)}


def _rewritten(output: Path, inodes: dict[str, int]) -> int:
    now = _page_inodes(output)
    return sum(now[k] != t for k, t in inodes.items())


def _under_way(output: Path, inodes: dict[str, int]) -> bool:
    """New pages are written to hidden names first, then renamed into place."""
    return bool(_temp_files(output)) or _rewritten(output, inodes) > 0


# --- SIGKILL during a build -----------------------------------------------------------------------


def test_a_build_killed_half_way_leaves_a_complete_site(school: Path) -> None:
    config = load_config(school)
    output, keys = config.site.output_dir, _keys(config)
    before = _open_all(output, keys)
    inodes = _page_inodes(output)
    _rewrite_everything_next(config)
    with open(school.parent / "build.log", "wb") as log:
        process = subprocess.Popen(
            [OTMETKA, "--config", str(school), "build", "--full"], stdout=log, stderr=log
        )
    try:
        # Stopped at the first new page seen, staged or renamed (a look at the folder can
        # take a second while the build fsyncs), then killed: caught in the middle.
        wait_for(lambda: _under_way(output, inodes), 120, "the first page written")
        process.send_signal(signal.SIGSTOP)
        rewritten = _rewritten(output, inodes)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert rewritten < len(inodes), "the kill must land in the middle of the build"
    assert _temp_files(output) or rewritten > 0

    assert faults.config_integrity(config) == "ok"
    assert _open_all(output, keys) == before  # every page whole: the old one or the new one
    _no_temp_file_is_served(config)

    # The next build clears what the killed one left, and finishes the work.
    leftovers = _temp_files(output)
    for path in leftovers:
        os.utime(path, (time.time() - STALE, time.time() - STALE))
    fresh = output / "p" / ".tmp-being-written-now.html"  # a write in progress right now
    fresh.write_text("half a page", encoding="utf-8")
    done = faults.run_otmetka(school, "build")
    assert done.returncode == 0, done.stderr
    assert _temp_files(output) == [fresh]
    fresh.unlink()
    assert _open_all(output, keys) == before
    assert faults.config_integrity(config) == "ok"


def _status(client: Any, url: str) -> int:
    response = client.get(url)
    response.close()  # a file answer holds the file open until closed
    return int(response.status_code)


def _no_temp_file_is_served(config: Config) -> None:
    """Temp files (left by the kill, and one planted for sure) are never served."""
    output = config.site.output_dir
    planted = output / "p" / ".tmp-planted.html"
    planted.write_text("<p>half a page</p>", encoding="utf-8")
    os.utime(planted, (time.time() - STALE, time.time() - STALE))
    (output / ".hidden").write_text("not for the web", encoding="utf-8")
    client = create_app(config).test_client()
    try:
        for path in [*_temp_files(output), output / ".hidden"]:
            url = "/" + path.relative_to(output).as_posix()
            assert _status(client, url) == 404, url
            assert _status(client, url.replace("/.", "/%2E")) == 404, url
        assert _status(client, f"/p/{_pages(output)[0].name}") == 200
    finally:
        close_database()
        (output / ".hidden").unlink()


# --- a full disk during a build -------------------------------------------------------------------


def test_a_file_size_limit_stops_the_build_with_a_clear_message(school: Path) -> None:
    config = load_config(school)
    output, keys = config.site.output_dir, _keys(config)
    before = _open_all(output, keys)
    _rewrite_everything_next(config)
    # `ulimit -f 48`: no file may grow past 48 KB. SQLite's shared-memory file (32 KB) still
    # fits; a page (70 KB and more) does not. Python ignores SIGXFSZ, so the write fails
    # with EFBIG instead of the signal killing the process.
    command = f"ulimit -f 48 && exec {OTMETKA} --config {school} build --full"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: build stopped: cannot write ")
    assert os.strerror(errno.EFBIG) in message and "run `otmetka build` again" in message
    assert "Traceback" not in done.stderr
    assert _temp_files(output) == []
    assert _open_all(output, keys) == before
    assert faults.config_integrity(config) == "ok"


def test_a_full_disk_stops_the_build_and_the_site_stays(school: Path, tmp_path: Path) -> None:
    base = load_config(school)
    # A full build stages every new page before the renames: room for the site twice.
    with faults.small_file_system(tmp_path / "small-disk", 192) as disk:
        config_path = tmp_path / "config.yaml"
        settings = yaml.safe_load(school.read_text(encoding="utf-8"))
        settings["database"] = {"url": f"sqlite:///{faults.database_file(base)}"}
        settings["site"] = {**settings["site"], "secret_file": str(base.site.secret_file)}
        settings["site"]["output_dir"] = str(disk / "output")
        settings["paths"] = {"var_dir": str(tmp_path / "var")}
        config_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        config = load_config(config_path)
        _rewrite_everything_next(config)
        first = faults.run_otmetka(config_path, "build", "--full")
        assert first.returncode == 0, first.stderr
        keys = _keys(config)
        before = _open_all(config.site.output_dir, keys)

        # A page is rewritten through a temp file beside it, so a rebuild needs room for the
        # pages being written at once: leave room for one (70-150 KB), not for four.
        filler = faults.fill_file_system(disk, leave=100 * 1024)
        _rewrite_everything_next(config)
        done = faults.run_otmetka(config_path, "build", "--full")
        assert done.returncode == 1, done.stdout + done.stderr
        message = done.stderr.strip().splitlines()[-1]
        assert message.startswith("Error: build stopped: cannot write ")
        assert os.strerror(errno.ENOSPC) in message and "free disk space" in message
        assert _temp_files(config.site.output_dir) == []
        assert _open_all(config.site.output_dir, keys) == before
        assert faults.config_integrity(config) == "ok"

        filler.unlink()  # room again: the next build completes
        again = faults.run_otmetka(config_path, "build")
        assert again.returncode == 0, again.stderr
        assert _open_all(config.site.output_dir, keys) == before

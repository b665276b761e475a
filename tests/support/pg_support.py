"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, postgres
listening on 127.0.0.1 only (and on a socket in that folder, which only its user can
enter), trust authentication, stopped and removed when the tests are done. Each test takes
a fresh database from template0.

The server binaries come from Debian's `postgresql` package, which `make test` installs.
initdb and postgres refuse to run as root, so under root they run as the `postgres` user
the package creates, in a folder that user owns.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port

MISSING = (
    "PostgreSQL {what} not found: run `make test`, which installs the `postgresql` Debian "
    "package and the psycopg2-binary test extra"
)
# The server's own zone is not UTC on purpose: otmetka must set UTC on its connections.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",  # a test cluster: durability is not what is tested
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "Europe/Moscow",
    "max_connections": "50",
}


def server_bin_dir() -> Path:
    """Where initdb, pg_ctl and postgres are (the newest Debian version, else PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail(MISSING.format(what="server binaries (initdb, pg_ctl, postgres)"))
    return Path(initdb).parent


def _version(path: Path) -> tuple[int, ...]:
    name = path.parent.parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop root to the `postgres` user; nothing otherwise."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(MISSING.format(what="system user `postgres` (initdb refuses root)"))
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


@dataclass
class Cluster:
    bin_dir: Path
    folder: Path
    port: int
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """One statement on the `postgres` database, outside a transaction."""
        import psycopg2

        with closing(psycopg2.connect(self.url("postgres"))) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(sql)

    def fresh_database(self) -> str:
        """A new empty database (UTF-8, C collation: byte order, as SQLite sorts); its URL."""
        name = f"otmetka_test_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _check_driver() -> None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail(MISSING.format(what="driver psycopg2"))


def _pg(bin_dir: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(bin_dir / args[0]), *args[1:]]
    return subprocess.run(
        command, cwd=folder, env=_env(), capture_output=True, text=True, timeout=60, **_run_as()
    )


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"}


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def _make_folder() -> Path:
    """A folder the server user owns (pytest's own tmp folders are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="otmetka-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    return folder


def _initdb(bin_dir: Path, folder: Path) -> None:
    command = ["initdb", "-D", "data", "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    result = _pg(bin_dir, folder, *command, "--locale=C", "--no-sync", "--no-instructions")
    _checked(result, "initdb")


def _start(bin_dir: Path, folder: Path, port: int) -> subprocess.Popen[bytes]:
    """The postmaster as our own child (not daemonised by pg_ctl), so that we reap it."""
    settings = {**SERVER_SETTINGS, "port": str(port), "unix_socket_directories": str(folder)}
    options = [f"--{key}={value}" for key, value in settings.items()]
    with (folder / "server.log").open("ab") as log:
        return subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", "data", *options],
            cwd=folder,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            **_run_as(),
        )


def _wait_ready(server: subprocess.Popen[bytes], folder: Path, url: str) -> None:
    """Poll until the server takes a connection (it listens before it is ready)."""
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            log = (folder / "server.log").read_text(errors="replace")
            pytest.fail(f"postgres exited with {server.returncode}:\n{log}")
        try:
            psycopg2.connect(url, connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stop(bin_dir: Path, folder: Path, server: subprocess.Popen[bytes]) -> None:
    """pg_ctl stop -m fast, then reap the postmaster; killed if it will not go."""
    _pg(bin_dir, folder, "pg_ctl", "stop", "-D", "data", "-m", "fast", "-w", "-t", "30")
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server for the duration of the block; stopped and removed after it."""
    _check_driver()
    _run_as()  # fails at once, with the fix, when there is no user to run the server as
    bin_dir = server_bin_dir()
    folder = _make_folder()
    port = free_port()
    server = None
    try:
        _initdb(bin_dir, folder)
        server = _start(bin_dir, folder, port)
        cluster = Cluster(bin_dir, folder, port)
        _wait_ready(server, folder, cluster.url("postgres"))
        yield cluster
    finally:
        if server is not None:
            _stop(bin_dir, folder, server)
        shutil.rmtree(folder, ignore_errors=True)

"""Endpoint benchmark: a school's parents acknowledging at once while an import runs.

    .venv/bin/python bench/endpoint.py [--requests 10000] [--clients 50] [--students 600]

Sets up the demo school in a fresh SQLite file, gives every guardian a login and a consent,
then starts `otmetka serve` in its own process. 50 client threads (keep-alive connections)
post 10,000 acknowledgements, 10 % of them replays of an earlier one (same event_id, same
body), while another process imports the demo school again (a full upsert of every row,
one transaction that holds the write lock for seconds). Checked: every request answered
2xx (no 5xx, nothing lost), one row per event_id, replays answered like their originals.
Recorded: throughput, latency percentiles, how long the import overlapped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import record

from otmetka.daemon.acts import rules as acts
from otmetka.daemon.core.config import config_from_dict
from otmetka.daemon.core.marks import MarkRules
from otmetka.daemon.demo.school import generate_school
from otmetka.daemon.exchange.importer import import_document
from otmetka.daemon.runtime import open_project
from otmetka.db import acts as events
from otmetka.db import close_database, models, write_transaction
from otmetka.db import credentials as credentials_db
from otmetka.site_builder import crypto, keys
from otmetka.site_builder.pages import audience

AS_OF = dt.date(2026, 11, 27)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config_file(folder: Path, port: int, threads: int) -> Path:
    # One address posts for the whole school here, so the per-address limit is lifted.
    text = (
        "site:\n  kdf_iterations: 100000\n"
        f"endpoint:\n  port: {port}\n  threads: {threads}\n"
        "  rate_per_address_per_minute: 10000000\n"
    )
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _setup(folder: Path, students: int) -> dict[str, tuple[str, list[str]]]:
    """The school, a login per guardian (random keys: no KDF needed here), consent for all.
    Returns guardian id -> (token, children)."""
    config = config_from_dict({}, base_dir=folder, env={})
    open_project(config)
    import_document(generate_school(students, seed=1, as_of=AS_OF), "demo", MarkRules())
    roster = audience.roster(AS_OF)
    families: dict[str, tuple[str, list[str]]] = {}
    now = dt.datetime.now(dt.UTC)
    ctx = acts.ActContext(config, now, "bench")
    with write_transaction():
        for gid in sorted(roster.guardians):
            key = secrets.token_bytes(32)
            login = crypto.generate_login()
            credentials_db.add(
                key=("guardian", gid),
                login=login,
                page_id=crypto.page_id_for_login(login, "bench"),
                salt=crypto.new_salt(),
                derived_key=key,
                iterations=100_000,
                token_hash=crypto.hash_token(keys.endpoint_token(key)),
                at=now,
            )
            if any(legal for _s, legal in events.children_of(gid, AS_OF)):
                families[gid] = (keys.endpoint_token(key), roster.children[gid])
                _consent(ctx, gid)
    close_database()
    return families


def _consent(ctx: acts.ActContext, guardian_id: str) -> None:
    event_id = secrets.token_hex(16)
    body = {"event_id": event_id, "decision": "granted", "text_version": "2026-1"}
    act = acts.Act(acts.CONSENT, event_id, body, ctx.now, acts.PAPER)
    acts.consent(ctx, act, None, guardian_id)  # its after-commit page rebuild is skipped


def _import_again(database: str, students: int, started: object, done: object) -> None:
    """In its own process: a full import of the same school under a new cursor."""
    from otmetka.db import open_database

    document = generate_school(students, seed=1, as_of=AS_OF)
    document["cursor"] = "bench-again"
    stamp = "2026-11-27T23:00:00+03:00"
    for change in document["changes"]:
        change["updated_at"] = stamp  # later than before: every row is written again
    open_database(database)
    started.set()  # type: ignore[attr-defined]
    import_document(document, "bench-again", MarkRules())
    done.set()  # type: ignore[attr-defined]


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _requests(families: dict[str, tuple[str, list[str]]], total: int) -> list[dict]:
    rng = random.Random(1)
    guardians = sorted(families)
    originals: list[dict] = []
    plan: list[dict] = []
    for i in range(total):
        if originals and rng.random() < 0.10:
            plan.append(rng.choice(originals))  # a replay: the very same body again
            continue
        gid = guardians[i % len(guardians)]
        token, children = families[gid]
        body = {
            "event_id": secrets.token_hex(16),
            "token": token,
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "page_version": secrets.token_hex(32),
            "children": children,
            "shown": {"as_of": "2026-11-27", "week_start": "2026-11-23", "week_end": "2026-11-28"},
        }
        originals.append(body)
        plan.append(body)
    return plan


def _client(port: int, work: list[dict], results: Results) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    for body in work:
        payload = json.dumps(body)
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/acknowledgements", payload, headers)
            response = connection.getresponse()
            text = response.read().decode()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with results.lock:
                results.failures.append(f"{body['event_id']}: {error!r}")
            continue
        elapsed = time.perf_counter() - started
        with results.lock:
            results.latencies.append(elapsed)
            results.statuses[status] = results.statuses.get(status, 0) + 1
            results.answers.setdefault(body["event_id"], []).append(text)
    connection.close()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _check(database: Path, plan: list[dict], results: Results) -> list[str]:
    """Nothing lost, nothing twice, replays answered like the first time."""
    from otmetka.db import open_database

    open_database(f"sqlite:///{database}")
    unique = {body["event_id"] for body in plan}
    stored_ids = [
        e.event_id for e in models.Event.select().where(models.Event.kind == "acknowledgement")
    ]
    close_database()
    problems = list(results.failures)
    bad = {code: n for code, n in results.statuses.items() if not 200 <= code < 300}
    if bad:
        problems.append(f"non-2xx answers: {bad}")
    if len(stored_ids) != len(set(stored_ids)):
        problems.append("duplicate rows")
    if set(stored_ids) != unique:
        problems.append(f"rows {len(set(stored_ids))} != distinct acts {len(unique)}")
    differing = [k for k, answers in results.answers.items() if len(set(answers)) > 1]
    if differing:
        problems.append(f"{len(differing)} replays answered differently")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--students", type=int, default=600)
    parser.add_argument("--threads", type=int, default=None, help="endpoint.threads")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port = _free_port()
        threads = args.threads or config_from_dict({}, base_dir=folder, env={}).endpoint.threads
        config_path = _config_file(folder, port, threads)
        families = _setup(folder, args.students)
        database = folder / "db" / "otmetka.sqlite3"
        plan = _requests(families, args.requests)
        log = (folder / "serve.log").open("w", encoding="utf-8")  # waitress's queue warnings
        server = subprocess.Popen(
            [sys.executable, "-c", "from otmetka.daemon.cli import main; main()",
             "--config", str(config_path), "serve"],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            _wait_for(port)
            lines = _run(port, database, plan, args)
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        lines.insert(
            0, f"guardians with a login and consent: {len(families):,}; server threads {threads}"
        )
    command = (
        f"python bench/endpoint.py --requests {args.requests} --clients {args.clients} "
        f"--students {args.students}" + (f" --threads {args.threads}" if args.threads else "")
    )
    record("Endpoint", command, lines, keep=not args.no_record)


def _run(port: int, database: Path, plan: list[dict], args: argparse.Namespace) -> list[str]:
    results = Results()
    shares = [plan[i :: args.clients] for i in range(args.clients)]
    spawn = multiprocessing.get_context("spawn")
    import_started, import_done = spawn.Event(), spawn.Event()
    importer = spawn.Process(
        target=_import_again,
        args=(f"sqlite:///{database}", args.students, import_started, import_done),
    )
    threads = [threading.Thread(target=_client, args=(port, s, results)) for s in shares]
    importer.start()
    import_started.wait(timeout=120)  # the school is generated; the import begins now
    started = time.perf_counter()
    finished: list[float] = []
    watcher = threading.Thread(
        target=lambda: (
            finished.append(time.perf_counter() - started)
            if import_done.wait(timeout=600)
            else None
        )
    )
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    importer.join(timeout=600)
    watcher.join()
    problems = _check(database, plan, results)
    replays = len(plan) - len({b["event_id"] for b in plan})
    answered = len(results.latencies)
    import_line = (
        f"the import finished {finished[0]:.1f} s into the {wall:.1f} s run"
        if finished and finished[0] <= wall
        else "the import was still running when the last request was answered"
    )
    return [
        f"requests: {len(plan):,} from {args.clients} clients, {replays:,} of them replays; "
        f"answered {answered:,}: {dict(sorted(results.statuses.items()))}",
        f"throughput: {answered / wall:,.0f} requests/s over {wall:.1f} s (target >= 300/s)",
        f"latency: p50 {_percentile(results.latencies, 0.50) * 1000:.0f} ms, "
        f"p99 {_percentile(results.latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(results.latencies) * 1000:.0f} ms",
        f"concurrent full re-import of the {args.students}-student school (one transaction, "
        f"every row rewritten) started with the first request; {import_line}",
        "checks: " + ("all passed (no 5xx, nothing lost, no duplicate row, replays identical)"
                      if not problems else "; ".join(problems)),
    ]  # fmt: skip


if __name__ == "__main__":
    main()

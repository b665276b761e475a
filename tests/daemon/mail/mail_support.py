"""Helpers of the mail tests: a config pointing at a test SMTP server, letters queued by
hand, outbox rows read back, headers decoded as mail clients do."""

from __future__ import annotations

import datetime as dt
import email
import json
from collections.abc import Iterator
from contextlib import contextmanager
from email.header import decode_header, make_header
from email.policy import compat32
from pathlib import Path
from typing import Any

from otmetka.daemon.core.config import Config, config_from_dict
from otmetka.daemon.mail import letters, smtp
from otmetka.db import mail as mail_db
from otmetka.db import models, write_transaction

MOSCOW = dt.timezone(dt.timedelta(hours=3))
NOW = dt.datetime(2026, 9, 18, 12, 0, tzinfo=dt.UTC)


def decoded(raw: bytes, header: str) -> str:
    """A header decoded as RFC 2047 says: white space between encoded words is dropped.

    (Python's own address parser keeps it, and would read a long Cyrillic name folded
    into two encoded words as «Пе тровна»; mail clients do not.)
    """
    legacy = email.message_from_bytes(raw, policy=compat32)
    return str(make_header(decode_header(str(legacy[header]))))


def make_config(project_dir: Path, port: int, **mail: Any) -> Config:
    data = {
        "site": {"kdf_iterations": 100_000},
        "school": {
            "head_email": "head@school.ru",
            "support_email": "it@school.ru",
            "mirror_url": "https://mirror.example.ru/",
            "lan_url": "http://school.lan/",
        },
        "mail": {"enabled": True, "smtp_port": port, **mail},
    }
    return config_from_dict(data, base_dir=project_dir, env={})


def write_config_file(project_dir: Path, port: int, **mail: Any) -> Path:
    lines = [
        "site:",
        "  kdf_iterations: 100000",
        "mail:",
        "  enabled: true",
        f"  smtp_port: {port}",
    ]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in mail.items()]
    path = project_dir / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def queue_plain(config: Config, key: str, **fields: Any) -> None:
    letter = letters.Letter(
        to=fields.get("to", ("Иванова-Крылова Мария Петровна <maria@example.ru>",)),
        subject=fields.get("subject", "Проверка: «кириллица» в теме письма №1"),
        text=fields.get("text", "Здравствуйте!\n\nЭто проверка.\n"),
    )
    with open_write():
        smtp.queue_letter(config, key, letter, NOW)


@contextmanager
def open_write() -> Iterator[None]:
    with write_transaction():
        yield


def row(key: str) -> models.OutboxItem:
    item = mail_db.by_key(key)
    assert item is not None
    return item

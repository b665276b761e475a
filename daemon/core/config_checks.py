"""The configuration's value checks: validators and the annotated types the sections use,
each refusing a bad value with the plain-English message an operator sees."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from pydantic.fields import FieldInfo

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


# --------------------------------------------------------------------------- validators
# Validators raise ValueError with the final, plain-English message; config._translate strips
# pydantic's "Value error, " prefix.


def base_dir_of(info: ValidationInfo) -> Path:
    """The folder relative paths are resolved against: the config file's, else cwd."""
    context = info.context if isinstance(info.context, Mapping) else {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def _under(base: Path, value: Path) -> Path:
    """`value` made absolute against `base`, tidied so messages show clean paths."""
    value = value.expanduser()
    return value if value.is_absolute() else Path(os.path.normpath(base / value))


def _not_empty_path(value: Any) -> Any:
    """An empty string would silently mean "the config folder itself"; refuse it."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a path relative to the config file, as DESIGN.md promises operators."""
    return _under(base_dir_of(info), value)


def _refuse_bool(message: str) -> Callable[[Any], Any]:
    """Build a validator refusing true/false, which pydantic would read as 1/0."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(message)
        return value

    return check


def lowered(value: Any) -> Any:
    """Let `Friday` or `STARTTLS` match the lower-case choices."""
    return value.strip().lower() if isinstance(value, str) else value


def _hhmm_not_number(value: Any) -> Any:
    """Explain YAML's base-60 trap: unquoted 18:00 loads as the number 1080."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError('must look like HH:MM (write it in quotes, e.g. "18:00")')
    return value


def _check_hhmm(value: str) -> str:
    """Accept 8:00 or 08:00 and normalise to HH:MM, the form `schedule` needs."""
    match = _HHMM.fullmatch(value.strip())
    if match is None:
        raise ValueError("must look like HH:MM")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _check_tz(value: str) -> str:
    """Fail at load time, not at the first scheduled job, on a misspelt zone."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone '{value}' (use an IANA name such as Europe/Moscow)"
        ) from None
    return value


def _check_email(value: str) -> str:
    """Catch obvious typos in addresses that breach notices depend on; empty is allowed."""
    value = value.strip()
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise ValueError("must be an e-mail address like name@school.ru, or empty")
    return value


def _check_http_url(value: str) -> str:
    """URLs printed on slips and used for pulls must be absolute http(s); empty is allowed."""
    value = value.strip()
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://, or be empty")
    return value


def _resolve_db_url(value: str, info: ValidationInfo) -> str:
    """Anchor a relative SQLite file to the config folder; pass PostgreSQL through."""
    value = value.strip()
    if value.startswith(_POSTGRES_PREFIXES):
        return value
    if not value.startswith(_SQLITE_PREFIX):
        raise ValueError("must start with sqlite:/// or postgresql://")
    path, sep, query = value[len(_SQLITE_PREFIX) :].partition("?")
    if path in ("", ":memory:"):
        return value
    return f"{_SQLITE_PREFIX}{_under(base_dir_of(info), Path(path))}{sep}{query}"


def sqlite_file(url: str) -> Path | None:
    """The file of a sqlite:/// URL; None for other databases and for :memory:."""
    if not url.startswith(_SQLITE_PREFIX):
        return None
    path = url[len(_SQLITE_PREFIX) :].partition("?")[0]
    return None if path in ("", ":memory:") else Path(path)


Int = Annotated[int, BeforeValidator(_refuse_bool("must be a whole number"))]
Float = Annotated[float, BeforeValidator(_refuse_bool("must be a number"))]
ConfigPath = Annotated[Path, BeforeValidator(_not_empty_path), AfterValidator(_resolve_path)]
HHMM = Annotated[str, BeforeValidator(_hhmm_not_number), AfterValidator(_check_hhmm)]
TimeZoneName = Annotated[str, AfterValidator(_check_tz)]
Email = Annotated[str, AfterValidator(_check_email)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
DatabaseUrl = Annotated[str, AfterValidator(_resolve_db_url)]


def _resolve_optional_path(value: str, info: ValidationInfo) -> str:
    """A path that may be left empty (meaning "none"); otherwise anchored like any path."""
    value = value.strip()
    return str(_under(base_dir_of(info), Path(value))) if value else ""


OptionalPath = Annotated[str, AfterValidator(_resolve_optional_path)]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class Problems(ValueError):
    """Several cross-field problems from one model validator, each with its own key."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


def literal_choices(field: FieldInfo) -> list[str]:
    """Values of a Literal annotation, looking through Annotated; [] for other types."""
    annotation = field.annotation
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return (
        [str(value) for value in get_args(annotation)] if get_origin(annotation) is Literal else []
    )

"""Configuration: typed sections, the YAML loader, environment overrides and generated docs.

The pydantic models below are the single source for three things that must agree: what
`load_config` accepts, the default `config.yaml`, and `docs/configuration.md`. Both files
are generated from the models (`python -m otmetka.daemon.core.config yaml|docs`) and the tests check
that the committed copies are up to date.

Resolution rules, applied while validating:
- every `Path` value is relative to the folder of the config file (absolute paths and
  `~` are honoured);
- `database.url` of the form `sqlite:///relative/file` is rewritten to an absolute
  `sqlite:////abs/file` URL, so `playhouse.db_url.connect(config.database.url)` works from
  any working directory; PostgreSQL URLs pass through unchanged.
  `Config.database_path()` gives the SQLite file as a `Path` (None for PostgreSQL or
  `:memory:`).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from annotated_types import Ge, Gt, Le
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from otmetka.daemon.core.errors import OtmetkaError

log = logging.getLogger("otmetka.config")

DEFAULT_FILE_NAME = "config.yaml"
ENV_PREFIX = "OTMETKA_"
_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


class ConfigError(OtmetkaError):
    """Everything wrong with a configuration, one line per problem.

    All problems are collected before raising, so an operator fixes the file in one pass
    instead of discovering errors one run at a time.
    """

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


# --------------------------------------------------------------------------- validators
# Validators raise ValueError with the final, plain-English message; `_translate` strips
# pydantic's "Value error, " prefix.


def _base_dir(info: ValidationInfo) -> Path:
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
    return _under(_base_dir(info), value)


def _refuse_bool(message: str) -> Callable[[Any], Any]:
    """Build a validator refusing true/false, which pydantic would read as 1/0."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(message)
        return value

    return check


def _lower(value: Any) -> Any:
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
    return f"{_SQLITE_PREFIX}{_under(_base_dir(info), Path(path))}{sep}{query}"


def _sqlite_file(url: str) -> Path | None:
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
    return str(_under(_base_dir(info), Path(value))) if value else ""


OptionalPath = Annotated[str, AfterValidator(_resolve_optional_path)]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class _Problems(ValueError):
    """Several cross-field problems from one model validator, each with its own key."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


# ----------------------------------------------------------------------------- sections


class Section(BaseModel):
    """Common settings of every section.

    Unknown keys are ignored here and reported by `load_config` from the raw data, so a
    `Config` never carries junk. Defaults are validated too, so default paths resolve.
    """

    model_config = ConfigDict(extra="ignore", validate_default=True, coerce_numbers_to_str=True)


class SchoolSection(Section):
    """The school this server belongs to."""

    name: str = Field(
        "Демонстрационная школа №1", description="School name shown on pages, extracts and mail."
    )
    school_id: str = Field(
        "demo-school", description="Upstream school id; batches for another school are refused."
    )
    tz: TimeZoneName = Field(
        "Europe/Moscow", description="IANA time zone of the school: dates, deadlines, schedule."
    )
    head_email: Email = Field("", description="Head of school's e-mail for breach reports.")
    support_email: Email = Field(
        "", description="Technical support e-mail for breach reports and daemon alerts."
    )
    lan_url: HttpUrl = Field(
        "http://127.0.0.1:8080/", description="Site address in the school network, on slips."
    )
    mirror_url: HttpUrl = Field(
        "", description="Public mirror of the site, printed on slips as a second address."
    )

    def zone(self) -> ZoneInfo:
        """The school's time zone as an object, for date arithmetic."""
        return ZoneInfo(self.tz)


class PathsSection(Section):
    """Folders for runtime state. Keep them out of the published site."""

    var_dir: ConfigPath = Field(
        Path("var"), description="Runtime state: one-time credential lists, pid file, logs."
    )
    inbox_dir: ConfigPath = Field(
        Path("inbox"), description="Folder watched for upstream files (JSON, zip, CSV, XLSX)."
    )
    backup_dir: ConfigPath = Field(
        Path("var/backups"), description="Where nightly database backups are written."
    )


class DatabaseSection(Section):
    """Where the local copy of the journal and the event records live."""

    url: DatabaseUrl = Field(
        "sqlite:///db/otmetka.sqlite3",
        description="sqlite:///file (relative to this file) or postgresql://user@host/db.",
    )
    busy_timeout_ms: Int = Field(
        5000, ge=0, description="How long SQLite waits for a lock before failing (ms)."
    )


class SiteSection(Section):
    """The encrypted static site."""

    output_dir: ConfigPath = Field(
        Path("output"), description="Where the built site is written; all of it is public."
    )
    kdf_iterations: Int = Field(
        600000, ge=100000, description="PBKDF2-SHA256 iterations deriving each page key."
    )
    secret_file: ConfigPath = Field(
        Path("var/site.key"), description="File holding the site secret; not inside output_dir."
    )
    remember_days: Int = Field(
        30, ge=0, le=365, description="Days a browser may remember a login (0: never)."
    )
    build_workers: Int = Field(
        2, ge=1, le=32, description="Processes rendering classes in a big build (1: none)."
    )
    title: str = Field("Электронный дневник", description="Title of the login and personal pages.")


class MarksSection(Section):
    """How written marks count in averages."""

    minus_delta: Float = Field(
        0.0, ge=0.0, le=0.5, description="'4-' counts as 4 - minus_delta (0.0: as 4)."
    )
    plus_delta: Float = Field(
        0.0, ge=0.0, le=0.5, description="'4+' counts as 4 + plus_delta (0.0: as 4)."
    )
    split_double: bool = Field(
        True, description="'3/5' counts as two marks (false: as one, their mean)."
    )


class SourceSection(Section):
    """Where journal data comes from."""

    kind: Annotated[Literal["none", "http", "inbox"], BeforeValidator(_lower)] = Field(
        "inbox", description="http: pull the upstream API; inbox: files dropped in inbox_dir."
    )
    url: HttpUrl = Field("", description="Base URL of the upstream exchange API (for kind http).")
    token_env: str = Field(
        "OTMETKA_UPSTREAM_TOKEN", description="Environment variable holding the bearer token."
    )
    page_limit: Int = Field(
        5000, ge=1, le=100000, description="Changes requested per page of a pull."
    )
    timeout_s: Float = Field(30.0, gt=0, description="Timeout of one upstream request (seconds).")
    retries: Int = Field(5, ge=0, le=20, description="Retries of a failed request, with backoff.")
    backoff_s: Float = Field(
        2.0, gt=0, le=600, description="Wait before the first retry; doubles on each retry (s)."
    )
    backoff_max_s: Float = Field(
        120.0, gt=0, description="Longest wait between two retries of one request (seconds)."
    )
    push_batch: Int = Field(
        100, ge=1, le=1000, description="Events sent upstream in one POST by the outbox."
    )
    inbox_settle_s: Float = Field(
        3.0, ge=0, le=600, description="A dropped file is imported once unchanged this long (s)."
    )

    @model_validator(mode="after")
    def _url_for_http(self) -> SourceSection:
        """A pull without an address can only fail later, at night; say so now."""
        if self.kind == "http" and not self.url:
            raise _Problems([("source.url", "must be set when source.kind is http")])
        return self


class EndpointSection(Section):
    """The web server: the built site and the JSON API for acts."""

    host: str = Field("127.0.0.1", description="Listen address (0.0.0.0: every interface).")
    port: Int = Field(8080, ge=1, le=65535, description="TCP port of the web server.")
    max_body_bytes: Int = Field(
        16384, ge=1024, description="Largest API request body; larger gets 413."
    )
    rate_per_credential_per_minute: Int = Field(
        30, ge=1, description="API requests per credential per minute; more gets 429."
    )
    rate_per_address_per_minute: Int = Field(
        12000,
        ge=1,
        description="API requests per client address per minute: a school's NAT shares one.",
    )
    threads: Int = Field(
        16, ge=1, le=256, description="Worker threads of the web server (acts wait in them)."
    )
    public_url: HttpUrl = Field(
        "", description="Site address pages post acts to (empty: school.lan_url)."
    )
    write_wait_s: Float = Field(
        60.0, gt=0, le=600, description="How long an act waits for a busy database before 503 (s)."
    )


class MailSection(Section):
    """Outgoing mail: breach notices and weekly digests."""

    enabled: bool = Field(False, description="Send e-mail at all.")
    smtp_host: str = Field("127.0.0.1", description="SMTP server host.")
    smtp_port: Int = Field(25, ge=1, le=65535, description="SMTP port (25, 587 starttls, 465 ssl).")
    security: Annotated[Literal["plain", "starttls", "ssl"], BeforeValidator(_lower)] = Field(
        "plain", description="How the SMTP connection is protected."
    )
    username_env: str = Field(
        "OTMETKA_SMTP_USER", description="Environment variable holding the SMTP user name."
    )
    password_env: str = Field(
        "OTMETKA_SMTP_PASSWORD", description="Environment variable holding the SMTP password."
    )
    from_addr: Email = Field("noreply@school.local", description="Sender address of all mail.")
    digest_day: Annotated[Weekday, BeforeValidator(_lower)] = Field(
        "friday", description="Day the weekly digest goes to families."
    )
    digest_time: HHMM = Field("18:00", description="Local time (HH:MM) the digest is sent.")
    grades_in_body: bool = Field(
        False, description="Put grades in the digest text (false: only a link)."
    )
    attach_page: bool = Field(
        False, description="Attach the encrypted personal page to the digest."
    )
    ca_file: OptionalPath = Field(
        "", description="PEM file of CAs trusted for the SMTP server (empty: the system's)."
    )
    timeout_s: Float = Field(30.0, gt=0, description="Timeout of one SMTP connection (seconds).")


class ScheduleSection(Section):
    """What `otmetka run` does and when."""

    pull_minutes: Int = Field(15, ge=1, description="Pull upstream every N minutes.")
    outbox_minutes: Int = Field(
        5, ge=1, description="Retry unsent events and mail every N minutes."
    )
    backup_time: HHMM = Field("02:30", description="Local time (HH:MM) of the nightly backup.")
    backup_keep: Int = Field(14, ge=1, description="Nightly backups kept; older are deleted.")
    max_pull_age_minutes: Int = Field(
        180, ge=1, description="Status fails if the daemon runs and the last good pull is older."
    )
    deadline_check_minutes: Int = Field(
        10, ge=1, description="Check legal deadlines (breach reports) every N minutes."
    )
    outbox_retry_max_minutes: Int = Field(
        360, ge=1, description="Longest wait before retrying an unsent outbox item (minutes)."
    )
    inbox_scan_seconds: Int = Field(
        60, ge=1, description="Rescan inbox_dir this often even without file events (s)."
    )


class PrintingSection(Section):
    """Paper extracts and credential slips."""

    extracts_dir: ConfigPath = Field(
        Path("var/extracts"), description="Where PDF extracts and slips are written."
    )
    workers: Int = Field(2, ge=1, le=32, description="Processes rendering PDFs in parallel.")
    paper_size: str = Field("A4", min_length=1, description="CSS page size of PDFs (A4, A5).")


class RetentionSection(Section):
    """How long personal data is kept."""

    purge_after_days: Int = Field(
        365, ge=1, description="Days after a person leaves before their data is purged."
    )


def _section(model: type[Section]) -> Any:
    """A section field whose default is validated with the loader's context."""
    return Field(default_factory=dict, validate_default=True, description=model.__doc__)


class Config(BaseModel):
    """The whole configuration. Build it with `load_config` or `config_from_dict`."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    school: SchoolSection = _section(SchoolSection)
    paths: PathsSection = _section(PathsSection)
    database: DatabaseSection = _section(DatabaseSection)
    site: SiteSection = _section(SiteSection)
    marks: MarksSection = _section(MarksSection)
    source: SourceSection = _section(SourceSection)
    endpoint: EndpointSection = _section(EndpointSection)
    mail: MailSection = _section(MailSection)
    schedule: ScheduleSection = _section(ScheduleSection)
    printing: PrintingSection = _section(PrintingSection)
    retention: RetentionSection = _section(RetentionSection)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _config_file: Path | None = PrivateAttr(default=None)
    _unknown_keys: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _check_private_paths(self, info: ValidationInfo) -> Config:
        """Refuse private files inside output/: everything there is published."""
        self._base_dir = _base_dir(info)
        problems = [
            (key, f"must not be inside site.output_dir ({self.site.output_dir}): it is public")
            for key, path in self._private_paths()
            if path.resolve().is_relative_to(self.site.output_dir.resolve())
        ]
        if problems:
            raise _Problems(problems)
        return self

    def _private_paths(self) -> list[tuple[str, Path]]:
        """Paths holding secrets or personal data, keyed by their config key."""
        paths = [
            ("paths.var_dir", self.paths.var_dir),
            ("paths.inbox_dir", self.paths.inbox_dir),
            ("paths.backup_dir", self.paths.backup_dir),
            ("site.secret_file", self.site.secret_file),
            ("printing.extracts_dir", self.printing.extracts_dir),
        ]
        database = self.database_path()
        return [*paths, ("database.url", database)] if database else paths

    @property
    def base_dir(self) -> Path:
        """Folder relative paths were resolved against (the config file's, or cwd)."""
        return self._base_dir

    @property
    def config_file(self) -> Path | None:
        """The file this configuration was read from; None when only defaults were used."""
        return self._config_file

    @property
    def unknown_keys(self) -> list[str]:
        """Key paths present in the file but not known here, e.g. `site.foo`."""
        return self._unknown_keys

    def database_path(self) -> Path | None:
        """The absolute SQLite file; None for PostgreSQL and in-memory SQLite."""
        return _sqlite_file(self.database.url)

    @classmethod
    def sections(cls) -> dict[str, type[Section]]:
        """Section name -> model, in file order."""
        return {name: _section_model(field) for name, field in cls.model_fields.items()}

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(key path, default as written in YAML, description) of every key, for docs."""
        return [
            (f"{name}.{key}", _yaml_scalar(field.default), field.description or "")
            for name, model in cls.sections().items()
            for key, field in model.model_fields.items()
        ]


def _section_model(field: FieldInfo) -> type[Section]:
    """The section model class behind a `Config` field."""
    model = field.annotation
    assert isinstance(model, type) and issubclass(model, Section)
    return model


# ------------------------------------------------------------------------------ loading


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate the configuration.

    `path=None` means `./config.yaml` when it exists, else all defaults relative to the
    working directory. `env` defaults to `os.environ`. Raises `ConfigError` listing every
    problem; unknown keys are logged as warnings and kept in `Config.unknown_keys`.
    """
    if path is None:
        default = Path.cwd() / DEFAULT_FILE_NAME
        if not default.is_file():
            return config_from_dict({}, base_dir=Path.cwd(), env=env)
        path = default
    file = Path(path).expanduser().resolve()
    config = config_from_dict(_read_yaml(file), base_dir=file.parent, env=env, name=file.name)
    config._config_file = file
    return config


def config_from_dict(
    data: Mapping[str, Any],
    *,
    base_dir: str | Path,
    env: Mapping[str, str] | None = None,
    name: str = DEFAULT_FILE_NAME,
) -> Config:
    """Validate already-parsed YAML data; also handy for tests that need a `Config`.

    `name` is the file name that starts every message.
    """
    unknown = _find_unknown_keys(data)
    for key in unknown:
        log.warning("%s: %s", name, _unknown_key_message(key))
    merged, origins = _apply_env(data, os.environ if env is None else env)
    context = {"base_dir": Path(base_dir).expanduser().resolve()}
    try:
        config = Config.model_validate(merged, context=context)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, name, origins)) from None
    config._unknown_keys = unknown
    return config


def _read_yaml(file: Path) -> dict[str, Any]:
    """Parse the file into a mapping, turning every failure into a `ConfigError`."""
    name = file.name
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{name}: file not found: {file}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{name}: not UTF-8 text: {file}"]) from None
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read {file}: {exc.strerror or exc}"]) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error_message(name, exc)]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the value {data!r}"
        sections = "school:, site:, ..."
        raise ConfigError(
            [f"{name}: the top level must be a mapping of sections ({sections}), not {kind}"]
        )
    return data


class _StrictLoader(yaml.SafeLoader):
    """safe_load, plus: a key written twice is an error, not a silent overwrite."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """Refuse duplicate keys, e.g. two `site:` sections where the first would be lost."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` may be overridden on purpose
            continue
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: let PyYAML report it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_error_message(name: str, exc: yaml.YAMLError) -> str:
    """`config.yaml: line 3, column 5: invalid YAML: <problem>`, with a tab hint."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    hint = " (indent with spaces, not tabs)" if "\\t" in problem else ""
    return f"{name}: {where}invalid YAML: {problem}{hint}"


def _find_unknown_keys(data: Mapping[str, Any]) -> list[str]:
    """Key paths in `data` that no section defines: usually typos worth a warning."""
    sections = Config.sections()
    unknown: list[str] = []
    for section, body in data.items():
        if section not in sections:
            unknown.append(str(section))
        elif isinstance(body, Mapping):
            known = sections[section].model_fields
            unknown += [f"{section}.{key}" for key in body if key not in known]
    return unknown


def _unknown_key_message(key: str) -> str:
    """`unknown key 'site.foo' (ignored)`, suggesting the nearest known key if any."""
    known = [path for path, _, _ in Config.describe()] + list(Config.sections())
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key '{key}' (ignored{hint})"


def _apply_env(
    data: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Overlay `OTMETKA_<SECTION>_<KEY>` variables; also return key path -> variable."""
    merged = {key: _section_copy(value) for key, value in data.items()}
    origins: dict[str, str] = {}
    for variable, (section, key) in _env_keys(env):
        body = merged.setdefault(section, {})
        if isinstance(body, dict):  # a broken section is reported by validation
            body[key] = env[variable]
            origins[f"{section}.{key}"] = variable
    return merged, origins


def _section_copy(value: Any) -> Any:
    """A copy safe to add overrides to; an empty `site:` (None) counts as no keys."""
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else value


def _env_keys(env: Mapping[str, str]) -> Iterator[tuple[str, tuple[str, str]]]:
    """Variables naming a known key. Keys contain `_`, so sections are matched first."""
    sections = sorted(Config.sections().items(), key=lambda item: -len(item[0]))
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        rest = variable[len(ENV_PREFIX) :]
        for section, model in sections:
            prefix = section.upper() + "_"
            key = rest[len(prefix) :].lower()
            if rest.startswith(prefix) and key in model.model_fields:
                yield variable, (section, key)
                break


# ------------------------------------------------------------------------------- errors


def _format_errors(exc: ValidationError, name: str, origins: Mapping[str, str]) -> list[str]:
    """One `config.yaml: key 'a.b' (from VAR): message` line per problem."""
    lines: list[str] = []
    for error in exc.errors():
        for key, message in _translate(error):
            origin = f" (from {origins[key]})" if key in origins else ""
            line = f"{name}: key '{key}'{origin}: {message}"
            if line not in lines:
                lines.append(line)
    return lines


_PLAIN_MESSAGES = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "string_too_short": "must not be empty",
    "path_type": "must be a path",
    "model_type": "must be a section of keys (a mapping)",
    "model_attributes_type": "must be a section of keys (a mapping)",
    "dict_type": "must be a section of keys (a mapping)",
}

_BOUND_MESSAGES = {
    "greater_than_equal": ("ge", "must be >= {}"),
    "greater_than": ("gt", "must be > {}"),
    "less_than_equal": ("le", "must be <= {}"),
    "less_than": ("lt", "must be < {}"),
}


def _translate(error: ErrorDetails) -> list[tuple[str, str]]:
    """Turn one pydantic error into (key path, short plain-English message) pairs."""
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, _Problems):
        return cause.problems
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if error.get("input", "") is None and kind != "value_error":
        return [(key, "has no value (write a value, or delete the line to use the default)")]
    if kind == "value_error" and cause is not None:
        return [(key, str(cause))]
    if kind == "literal_error":
        return [(key, "must be one of: " + ", ".join(_choices_at(error["loc"])))]
    if kind in _BOUND_MESSAGES:
        bound, template = _BOUND_MESSAGES[kind]
        return [(key, template.format(ctx.get(bound)))]
    return [(key, _PLAIN_MESSAGES.get(kind, error["msg"]))]


def _choices_at(loc: tuple[int | str, ...]) -> list[str]:
    """The allowed values of the Literal field at `loc` (section, key)."""
    model = Config.sections().get(str(loc[0])) if loc else None
    field = model.model_fields.get(str(loc[1])) if model and len(loc) > 1 else None
    return _literal_choices(field) if field else []


def _literal_choices(field: FieldInfo) -> list[str]:
    """Values of a Literal annotation, looking through Annotated; [] for other types."""
    annotation = field.annotation
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return (
        [str(value) for value in get_args(annotation)] if get_origin(annotation) is Literal else []
    )


# --------------------------------------------------------------------------------- docs


def _yaml_scalar(value: Any) -> str:
    """A default as it is written in config.yaml; strings always quoted (18:00 trap)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = value.as_posix()
    return json.dumps(str(value), ensure_ascii=False)


def _allowed(field: FieldInfo) -> str:
    """Allowed values of a key in a few characters: choices or numeric bounds."""
    choices = _literal_choices(field)
    if choices:
        return " | ".join(choices)
    low = next((item for item in field.metadata if isinstance(item, Ge | Gt)), None)
    high = next((item.le for item in field.metadata if isinstance(item, Le)), None)
    if isinstance(low, Ge) and high is not None:
        return f"{low.ge} .. {high}"
    if low is not None:
        return f">= {low.ge}" if isinstance(low, Ge) else f"> {low.gt}"
    return f"<= {high}" if high is not None else ""


def _fields() -> Iterator[tuple[str, str, list[tuple[str, FieldInfo]]]]:
    """(section, section doc, [(key, field)]) in file order."""
    for section, model in Config.sections().items():
        doc = (model.__doc__ or "").strip()
        yield section, doc, list(model.model_fields.items())


_YAML_HEADER = """\
# otmetka configuration. Generated by `python -m otmetka.daemon.core.config yaml`; the defaults run
# the demo school with no edits. Reference: docs/configuration.md.
#
# Paths are relative to the folder of this file. Any key can be overridden by an
# environment variable OTMETKA_<SECTION>_<KEY>, e.g. OTMETKA_ENDPOINT_PORT=9000.
# Secrets never go here: the upstream token and SMTP login are read from the variables
# named by source.token_env, mail.username_env and mail.password_env.
# Strings are quoted on purpose: unquoted 18:00 is the number 1080 in YAML.
"""


def render_default_config() -> str:
    """The default config.yaml: every key with its default and a comment."""
    parts = [_YAML_HEADER]
    for section, doc, fields in _fields():
        parts.append(f"\n# {doc}\n{section}:\n")
        for key, field in fields:
            allowed = _allowed(field)
            comment = (field.description or "") + (f" [{allowed}]" if allowed else "")
            for line in textwrap.wrap(comment, width=94):
                parts.append(f"  # {line}\n")
            parts.append(f"  {key}: {_yaml_scalar(field.default)}\n")
    return "".join(parts)


_DOCS_HEADER = """\
# Configuration

<!-- Generated by `python -m otmetka.daemon.core.config docs > docs/configuration.md`; \
do not edit. -->

otmetka reads `config.yaml` (the path given to the CLI, else `./config.yaml`; without a
file every key has its default). The committed `config.yaml` holds every key at its
default and runs the demo school as is.

- Paths, including a `sqlite:///` database file, are relative to the folder of the
  config file; absolute paths and `~` are honoured.
- Any key can be overridden by an environment variable `OTMETKA_<SECTION>_<KEY>`, for
  example `OTMETKA_SITE_KDF_ITERATIONS=200000` or `OTMETKA_ENDPOINT_PORT=9000`.
- All problems are reported at once, one per line, and the command exits with status 1:
  `config.yaml: key 'site.kdf_iterations': must be >= 100000`. A bad environment value
  names its variable: `config.yaml: key 'endpoint.port' (from OTMETKA_ENDPOINT_PORT): ...`.
- Unknown keys are ignored with a warning: `config.yaml: unknown key 'site.foo' (ignored)`.
- Secrets never go in the file: the upstream token and the SMTP login come from the
  environment variables named by `source.token_env`, `mail.username_env` and
  `mail.password_env`; the site secret lives in `site.secret_file`, which must be outside
  `site.output_dir`. So must every other private path (`paths.*`, `printing.extracts_dir`,
  the SQLite file): everything in `site.output_dir` is published.
"""


def render_config_docs() -> str:
    """docs/configuration.md: every key with default, allowed values and description."""
    parts = [_DOCS_HEADER]
    for section, doc, fields in _fields():
        parts.append(f"\n## {section}\n\n{doc}\n\n")
        parts.append("| Key | Default | Allowed | Description |\n|---|---|---|---|\n")
        for key, field in fields:
            cells = [
                f"`{section}.{key}`",
                f"`{_yaml_scalar(field.default)}`",
                _allowed(field).replace("|", "\\|"),
                (field.description or "").replace("|", "\\|"),
            ]
            parts.append("| " + " | ".join(cells) + " |\n")
    return "".join(parts)


def _main(argv: list[str]) -> int:
    """`python -m otmetka.daemon.core.config yaml|docs` prints the generated file to stdout."""
    renderers = {"yaml": render_default_config, "docs": render_config_docs}
    if len(argv) != 1 or argv[0] not in renderers:
        print("usage: python -m otmetka.daemon.core.config yaml|docs", file=sys.stderr)
        return 2
    sys.stdout.write(renderers[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""The configuration's typed sections and the `Config` model that holds them: every key
with its type, default, bounds and description."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)
from pydantic.fields import FieldInfo

from otmetka.daemon.core.config_checks import (
    HHMM,
    ConfigPath,
    DatabaseUrl,
    Email,
    Float,
    HttpUrl,
    Int,
    OptionalPath,
    Problems,
    TimeZoneName,
    Weekday,
    base_dir_of,
    lowered,
    sqlite_file,
)


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

    kind: Annotated[Literal["none", "http", "inbox"], BeforeValidator(lowered)] = Field(
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
    allow_plain_http: bool = Field(
        False,
        description="Send the token to an http:// source.url off this machine (true: only "
        "on a line protected otherwise, e.g. a VPN).",
    )
    inbox_settle_s: Float = Field(
        3.0, ge=0, le=600, description="A dropped file is imported once unchanged this long (s)."
    )

    @model_validator(mode="after")
    def _url_for_http(self) -> SourceSection:
        """A pull without an address can only fail later, at night; say so now."""
        if self.kind == "http" and not self.url:
            raise Problems([("source.url", "must be set when source.kind is http")])
        refused = None if self.allow_plain_http else plain_http_problem(self.url)
        if refused:
            raise Problems([("source.url", refused)])
        return self


def plain_http_problem(url: str) -> str | None:
    """Why the bearer token must not go to `url`: plain http to another machine, where
    anyone on the line reads the token and the journal. None for https, for http to this
    machine (loopback), and for an empty URL."""
    parts = urlsplit(url.strip())
    if not url.strip() or parts.scheme == "https":
        return None
    host = parts.hostname or ""
    if parts.scheme == "http" and _is_loopback(host):
        return None
    return (
        f"{url} is not https: the bearer token and the journal would cross the network "
        "unencrypted; use an https:// address, or set source.allow_plain_http: true if the "
        "line to upstream is protected otherwise (a VPN)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


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
    offline_window_days: Int = Field(
        14,
        ge=1,
        le=60,
        description="How many days late an act made offline on a page may arrive; older gets 422.",
    )


class MailSection(Section):
    """Outgoing mail: breach notices and weekly digests."""

    enabled: bool = Field(False, description="Send e-mail at all.")
    smtp_host: str = Field("127.0.0.1", description="SMTP server host.")
    smtp_port: Int = Field(25, ge=1, le=65535, description="SMTP port (25, 587 starttls, 465 ssl).")
    security: Annotated[Literal["plain", "starttls", "ssl"], BeforeValidator(lowered)] = Field(
        "plain", description="How the SMTP connection is protected."
    )
    username_env: str = Field(
        "OTMETKA_SMTP_USER", description="Environment variable holding the SMTP user name."
    )
    password_env: str = Field(
        "OTMETKA_SMTP_PASSWORD", description="Environment variable holding the SMTP password."
    )
    from_addr: Email = Field("noreply@school.local", description="Sender address of all mail.")
    digest_day: Annotated[Weekday, BeforeValidator(lowered)] = Field(
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
    staff_refresh_seconds: Int = Field(
        30,
        ge=5,
        le=60,
        description="Rebuild the pages an act or an import changed every N seconds, so a "
        "class teacher and a deputy head see a parent's consent within a minute (s).",
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
        self._base_dir = base_dir_of(info)
        problems = [
            (key, f"must not be inside site.output_dir ({self.site.output_dir}): it is public")
            for key, path in self._private_paths()
            if path.resolve().is_relative_to(self.site.output_dir.resolve())
        ]
        if problems:
            raise Problems(problems)
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
        return sqlite_file(self.database.url)

    @classmethod
    def sections(cls) -> dict[str, type[Section]]:
        """Section name -> model, in file order."""
        return {name: _section_model(field) for name, field in cls.model_fields.items()}

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(key path, default as written in YAML, description) of every key, for docs."""
        return [
            (f"{name}.{key}", yaml_scalar(field.default), field.description or "")
            for name, model in cls.sections().items()
            for key, field in model.model_fields.items()
        ]


def _section_model(field: FieldInfo) -> type[Section]:
    """The section model class behind a `Config` field."""
    model = field.annotation
    assert isinstance(model, type) and issubclass(model, Section)
    return model


def yaml_scalar(value: Any) -> str:
    """A default as it is written in config.yaml; strings always quoted (18:00 trap)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = value.as_posix()
    return json.dumps(str(value), ensure_ascii=False)

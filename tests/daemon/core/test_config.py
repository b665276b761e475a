"""Tests of the configuration loader: defaults, errors as operators see them, overrides."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import yaml

from otmetka.daemon.core.config import Config, ConfigError, config_from_dict, load_config
from otmetka.daemon.core.config_docs import render_config_docs, render_default_config
from otmetka.daemon.core.errors import OtmetkaError
from tests.support import paths

ROOT = paths.ROOT

SPEC_KEYS = {
    "school": "name school_id tz head_email support_email lan_url mirror_url",
    "paths": "var_dir inbox_dir backup_dir",
    "database": "url busy_timeout_ms",
    "site": "output_dir kdf_iterations secret_file remember_days title",
    "marks": "minus_delta plus_delta split_double",
    "source": "kind url token_env page_limit timeout_s retries",
    "endpoint": "host port max_body_bytes rate_per_credential_per_minute "
    "rate_per_address_per_minute threads",
    "mail": "enabled smtp_host smtp_port security username_env password_env from_addr "
    "digest_day digest_time grades_in_body attach_page",
    "schedule": "pull_minutes outbox_minutes backup_time backup_keep max_pull_age_minutes",
    "printing": "extracts_dir workers paper_size",
    "retention": "purge_after_days",
}


def write_config(folder: Path, text: str) -> Path:
    """Write a config.yaml (dedented) into `folder` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(folder: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    """The error lines loading `text` produces; fails the test if it loads."""
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(folder, text), env=env or {})
    return caught.value.errors


# ------------------------------------------------------------------------------ defaults


def test_defaults_without_a_file_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.config_file is None
    assert config.base_dir == tmp_path.resolve()
    assert config.school.name == "Демонстрационная школа №1"
    assert config.site.kdf_iterations == 600000
    assert config.paths.var_dir == tmp_path.resolve() / "var"
    assert config.site.secret_file == tmp_path.resolve() / "var/site.key"
    assert config.database_path() == tmp_path.resolve() / "db/otmetka.sqlite3"
    assert config.mail.digest_day == "friday" and config.mail.digest_time == "18:00"
    assert config.unknown_keys == []


def test_path_none_reads_config_yaml_in_cwd(tmp_path, monkeypatch):
    write_config(tmp_path, "endpoint:\n  port: 9001\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.endpoint.port == 9001
    assert config.config_file == tmp_path.resolve() / "config.yaml"


def test_every_key_of_the_spec_exists_with_a_one_line_description():
    described = {key: description for key, _, description in Config.describe()}
    expected = {f"{s}.{k}" for s, keys in SPEC_KEYS.items() for k in keys.split()}
    assert expected <= set(described)
    for key, description in described.items():
        assert description and "\n" not in description, key


def test_describe_gives_defaults_as_written_in_yaml():
    defaults = {key: default for key, default, _ in Config.describe()}
    assert defaults["site.kdf_iterations"] == "600000"
    assert defaults["paths.var_dir"] == '"var"'
    assert defaults["mail.enabled"] == "false"
    assert defaults["mail.digest_time"] == '"18:00"'
    assert defaults["marks.minus_delta"] == "0.0"


def test_committed_config_yaml_loads_as_the_defaults():
    config = load_config(ROOT / "config.yaml", env={})
    assert config.unknown_keys == []
    defaults = config_from_dict({}, base_dir=ROOT, env={})
    assert config.model_dump() == defaults.model_dump()


def test_committed_config_yaml_has_every_key():
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    present = {f"{section}.{key}" for section, body in data.items() for key in body}
    assert present == {key for key, _, _ in Config.describe()}


def test_committed_config_yaml_is_generated():
    committed = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert committed == render_default_config(), (
        "config.yaml is stale: run "
        ".venv/bin/python -m otmetka.daemon.core.config_docs yaml > config.yaml"
    )


def test_committed_docs_are_generated():
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render_config_docs(), (
        "docs/configuration.md is stale: run "
        ".venv/bin/python -m otmetka.daemon.core.config_docs docs > docs/configuration.md"
    )


def test_docs_list_every_key():
    docs = render_config_docs()
    for key, default, _ in Config.describe():
        assert f"| `{key}` | `{default}` |" in docs


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "site:\n  kdf_iterations: 1000\n",
            "config.yaml: key 'site.kdf_iterations': must be >= 100000",
        ),
        ("site:\n  remember_days: 400\n", "config.yaml: key 'site.remember_days': must be <= 365"),
        ("endpoint:\n  port: eighty\n", "config.yaml: key 'endpoint.port': must be a whole number"),
        ("endpoint:\n  port: 80.5\n", "config.yaml: key 'endpoint.port': must be a whole number"),
        ("endpoint:\n  port: true\n", "config.yaml: key 'endpoint.port': must be a whole number"),
        ("marks:\n  minus_delta: lots\n", "config.yaml: key 'marks.minus_delta': must be a number"),
        ("mail:\n  enabled: maybe\n", "config.yaml: key 'mail.enabled': must be true or false"),
        (
            "mail:\n  security: tls\n",
            "config.yaml: key 'mail.security': must be one of: plain, starttls, ssl",
        ),
        (
            "source:\n  kind: ftp\n",
            "config.yaml: key 'source.kind': must be one of: none, http, inbox",
        ),
        (
            "mail:\n  digest_time: '25:00'\n",
            "config.yaml: key 'mail.digest_time': must look like HH:MM",
        ),
        (
            "schedule:\n  backup_time: 'noon'\n",
            "config.yaml: key 'schedule.backup_time': must look like HH:MM",
        ),
        (
            "mail:\n  digest_time: 18:00\n",
            "config.yaml: key 'mail.digest_time': must look like HH:MM "
            '(write it in quotes, e.g. "18:00")',
        ),
        (
            "school:\n  tz: Europe/Moskva\n",
            "config.yaml: key 'school.tz': unknown time zone 'Europe/Moskva' "
            "(use an IANA name such as Europe/Moscow)",
        ),
        (
            "database:\n  url: mysql://localhost/otmetka\n",
            "config.yaml: key 'database.url': must start with sqlite:/// or postgresql://",
        ),
        ("site: 5\n", "config.yaml: key 'site': must be a section of keys (a mapping)"),
        (
            "site:\n  title:\n",
            "config.yaml: key 'site.title': has no value "
            "(write a value, or delete the line to use the default)",
        ),
        ("paths:\n  var_dir: ''\n", "config.yaml: key 'paths.var_dir': must not be empty"),
        (
            "source:\n  kind: http\n",
            "config.yaml: key 'source.url': must be set when source.kind is http",
        ),
    ],
)
def test_error_messages(tmp_path, text, expected):
    assert errors_of(tmp_path, text) == [expected]


def test_secret_file_inside_output_dir_is_refused(tmp_path):
    errors = errors_of(tmp_path, "site:\n  output_dir: public\n  secret_file: public/../public/k\n")
    output = tmp_path.resolve() / "public"
    assert errors == [
        f"config.yaml: key 'site.secret_file': must not be inside site.output_dir ({output}): "
        "it is public"
    ]


def test_other_private_paths_inside_output_dir_are_refused(tmp_path):
    errors = errors_of(tmp_path, "site:\n  output_dir: .\n")
    keys = [line.split("'")[1] for line in errors]
    assert keys == [
        "paths.var_dir",
        "paths.inbox_dir",
        "paths.backup_dir",
        "site.secret_file",
        "printing.extracts_dir",
        "database.url",
    ]


def test_several_errors_are_all_listed(tmp_path):
    text = """\
    school:
      tz: Mars/Olympus
    site:
      kdf_iterations: 10
      remember_days: -1
    endpoint:
      port: 70000
    mail:
      security: tls
    """
    error = None
    try:
        load_config(write_config(tmp_path, text), env={})
    except ConfigError as caught:
        error = caught
    assert isinstance(error, OtmetkaError)
    assert error.errors == [
        "config.yaml: key 'school.tz': unknown time zone 'Mars/Olympus' "
        "(use an IANA name such as Europe/Moscow)",
        "config.yaml: key 'site.kdf_iterations': must be >= 100000",
        "config.yaml: key 'site.remember_days': must be >= 0",
        "config.yaml: key 'endpoint.port': must be <= 65535",
        "config.yaml: key 'mail.security': must be one of: plain, starttls, ssl",
    ]
    assert str(error) == "\n".join(error.errors)


def test_messages_start_with_the_file_name_not_the_path(tmp_path):
    path = tmp_path / "school-7.yaml"
    path.write_text("site:\n  kdf_iterations: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value) == "school-7.yaml: key 'site.kdf_iterations': must be >= 100000"


def test_invalid_yaml_names_the_line(tmp_path):
    errors = errors_of(tmp_path, "school:\n  name: x\nsite: [1\nmail: {}\n")
    assert len(errors) == 1
    assert errors[0].startswith("config.yaml: line 4, column 5: invalid YAML: ")


def test_tabs_get_a_hint(tmp_path):
    (error,) = errors_of(tmp_path, "site:\n\ttitle: x\n")
    assert error.startswith("config.yaml: line 2, column 1: invalid YAML: ")
    assert error.endswith("(indent with spaces, not tabs)")


def test_duplicate_key_is_an_error(tmp_path):
    errors = errors_of(tmp_path, "endpoint:\n  port: 1\n  port: 2\n")
    assert errors == ["config.yaml: line 3, column 3: invalid YAML: key 'port' appears twice"]


def test_merge_keys_may_be_overridden(tmp_path):
    text = "endpoint: &e\n  port: 1\nschedule:\n  pull_minutes: 2\n"
    assert load_config(write_config(tmp_path, text), env={}).endpoint.port == 1
    text = "x-base: &b\n  port: 1\nendpoint:\n  <<: *b\n  port: 2\n"
    assert load_config(write_config(tmp_path, text), env={}).endpoint.port == 2


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("42\n", "the value 42")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    assert errors_of(tmp_path, text) == [
        "config.yaml: the top level must be a mapping of sections (school:, site:, ...), "
        f"not {kind}"
    ]


def test_missing_file_given_explicitly(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, env={})
    assert str(caught.value) == f"nope.yaml: file not found: {missing.resolve()}"


def test_empty_file_and_empty_sections_mean_defaults(tmp_path):
    assert load_config(write_config(tmp_path, ""), env={}).site.kdf_iterations == 600000
    config = load_config(write_config(tmp_path, "site:\nmail:\n"), env={})
    assert config.site.title == "Электронный дневник"


# -------------------------------------------------------------------------- unknown keys


def test_unknown_keys_warn_and_are_listed(tmp_path, caplog):
    text = "site:\n  foo: 1\n  kdf_iteration: 200000\nextras:\n  a: 1\n"
    with caplog.at_level(logging.WARNING, logger="otmetka.config"):
        config = load_config(write_config(tmp_path, text), env={})
    assert config.unknown_keys == ["site.foo", "site.kdf_iteration", "extras"]
    assert config.site.kdf_iterations == 600000
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "config.yaml: unknown key 'site.foo' (ignored)",
        "config.yaml: unknown key 'site.kdf_iteration' "
        "(ignored; did you mean 'site.kdf_iterations'?)",
        "config.yaml: unknown key 'extras' (ignored)",
    ]
    assert all(record.levelno == logging.WARNING for record in caplog.records)


# ------------------------------------------------------------------- environment overrides


def test_env_overrides_file_values(tmp_path):
    path = write_config(tmp_path, "endpoint:\n  port: 8081\n")
    env = {
        "OTMETKA_ENDPOINT_PORT": "9000",
        "OTMETKA_SITE_KDF_ITERATIONS": "200000",
        "OTMETKA_MAIL_ENABLED": "true",
        "OTMETKA_SCHEDULE_BACKUP_TIME": "3:05",
        "OTMETKA_ENDPOINT_RATE_PER_ADDRESS_PER_MINUTE": "10",
        "OTMETKA_PATHS_VAR_DIR": "state",
    }
    config = load_config(path, env=env)
    assert config.endpoint.port == 9000
    assert config.site.kdf_iterations == 200000
    assert config.mail.enabled is True
    assert config.schedule.backup_time == "03:05"
    assert config.endpoint.rate_per_address_per_minute == 10
    assert config.paths.var_dir == tmp_path.resolve() / "state"


def test_env_variables_that_name_no_key_are_ignored(tmp_path):
    env = {
        "OTMETKA_UPSTREAM_TOKEN": "secret",
        "OTMETKA_SMTP_PASSWORD": "secret",
        "OTMETKA_SITE_NOPE": "1",
        "otmetka_endpoint_port": "1",
        "HOME": "/root",
    }
    config = load_config(write_config(tmp_path, ""), env=env)
    assert config.endpoint.port == 8080
    assert config.unknown_keys == []


def test_bad_env_value_names_the_variable(tmp_path):
    env = {"OTMETKA_ENDPOINT_PORT": "http", "OTMETKA_SITE_KDF_ITERATIONS": "5"}
    assert errors_of(tmp_path, "", env=env) == [
        "config.yaml: key 'site.kdf_iterations' (from OTMETKA_SITE_KDF_ITERATIONS): "
        "must be >= 100000",
        "config.yaml: key 'endpoint.port' (from OTMETKA_ENDPOINT_PORT): must be a whole number",
    ]


def test_env_defaults_to_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("OTMETKA_ENDPOINT_PORT", "9100")
    assert load_config(write_config(tmp_path, "")).endpoint.port == 9100


# ------------------------------------------------------------------------ path resolution


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "otmetka"
    path = write_config(folder, "site:\n  output_dir: ../www\nprinting:\n  extracts_dir: pdf\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(path, env={})
    base = folder.resolve()
    assert config.base_dir == base
    assert config.site.output_dir == tmp_path.resolve() / "etc" / "www"
    assert config.printing.extracts_dir == base / "pdf"
    assert config.paths.inbox_dir == base / "inbox"
    assert config.database_path() == base / "db" / "otmetka.sqlite3"
    assert config.database.url == f"sqlite:///{base}/db/otmetka.sqlite3"


def test_absolute_paths_stay(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    text = f"paths:\n  backup_dir: {elsewhere}\ndatabase:\n  url: sqlite:///{elsewhere}/j.db\n"
    config = load_config(write_config(tmp_path / "conf", text), env={})
    assert config.paths.backup_dir == elsewhere
    assert config.database_path() == elsewhere / "j.db"


@pytest.mark.parametrize(
    "url", ["postgresql://otmetka@db.local:5432/school7", "postgres://u:p@localhost/otm"]
)
def test_postgres_url_passes_through(tmp_path, url):
    config = load_config(write_config(tmp_path, f"database:\n  url: {url}\n"), env={})
    assert config.database.url == url
    assert config.database_path() is None


def test_in_memory_sqlite_has_no_path(tmp_path):
    config = config_from_dict({"database": {"url": "sqlite:///:memory:"}}, base_dir=tmp_path)
    assert config.database.url == "sqlite:///:memory:"
    assert config.database_path() is None


# ------------------------------------------------------------------------------ leniency


def test_friendly_spellings_are_normalised(tmp_path):
    text = """\
    mail:
      security: STARTTLS
      digest_day: Friday
      digest_time: '8:05'
    school:
      school_id: 12345
      tz: Asia/Yekaterinburg
    """
    config = load_config(write_config(tmp_path, text), env={})
    assert config.mail.security == "starttls"
    assert config.mail.digest_day == "friday"
    assert config.mail.digest_time == "08:05"
    assert config.school.school_id == "12345"
    assert str(config.school.zone()) == "Asia/Yekaterinburg"

"""Configuration, the public face: `Config` (its sections are in config_sections, its value
checks in config_checks), the YAML loader, environment overrides and the translation of
pydantic's errors into one plain line per problem.

The pydantic models are the single source for three things that must agree: what
`load_config` accepts, the default `config.yaml`, and `docs/configuration.md`. Both files
are generated from the models (`python -m otmetka.daemon.core.config_docs yaml|docs`) and
the tests check that the committed copies are up to date.

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
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from otmetka.daemon.core.config_checks import Problems, literal_choices
from otmetka.daemon.core.config_sections import Config
from otmetka.daemon.core.errors import OtmetkaError

log = logging.getLogger("otmetka.config")

DEFAULT_FILE_NAME = "config.yaml"
ENV_PREFIX = "OTMETKA_"


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
    if isinstance(cause, Problems):
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
    return literal_choices(field) if field else []

"""The exchange models' validation with plain dicts for results, for the importer's bulk path.

Building a pydantic model per change (and one more for its `data`) is a third of what
validating a year of records costs; the importer only reads their fields. So the core schema
pydantic generates from the models in `schema` is turned into the same schema with typed
dicts in place of models: the same fields, types, constraints, defaults and refusal of
unknown fields, keyed as in the JSON (a field with an alias, like a membership's `from`,
under its alias). A change comes out as a dict, its `data` as a nested dict.

Three things are not carried over as they are:
- the order of dates (schema.Ordered) runs on the dict, as a function of the typed dict;
- an upsert without `data` (ChangeBase) passes here, and the importer refuses it when it
  takes the change (it reads `data` first anyway), asking the models for the message;
- `updated_at` stays the text it was sent as (see MOMENT_PATTERN), parsed by the importer.
Messages always come from the models: whatever this validator refuses is validated again by
them (validation.py), so a problem reads the same either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic_core import CoreConfig, SchemaValidator, core_schema

from otmetka.daemon.exchange import schema

Node = dict[str, Any]

# A change's `updated_at` stays the text it was sent as, when written the usual way: it is
# a key for the cache of its UTC text (the importer's `utc`), far cheaper than a datetime
# (whose time zone compares slowly), and parsed by `MOMENT`, the models' own rule, once
# per distinct text. A text that fails MOMENT is refused by the models; one written
# another way than the pattern (a space for the T) leaves the block to them.
MOMENT_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?$"
)
_MOMENT_SCHEMA = schema.ChangeBase.__pydantic_core_schema__["schema"]["schema"]["fields"][
    "updated_at"
]["schema"]
MOMENT = SchemaValidator(_MOMENT_SCHEMA)


def _order_check(pairs: tuple[tuple[str, str], ...]) -> Callable[[Node], Node]:
    """The check of schema.Ordered on a dict keyed as in the JSON."""

    def check(data: Node) -> Node:
        for first, second in pairs:
            early, late = data.get(first), data.get(second)
            if early is not None and late is not None and late < early:
                raise ValueError(f"'{second}' ({late}) is before '{first}' ({early})")
        return data

    return check


def _key(name: str, field: Node) -> str:
    alias = field.get("validation_alias")
    if alias is None:
        return name
    if not isinstance(alias, str):
        raise TypeError(f"field {name!r}: only a plain alias is supported, not {alias!r}")
    return alias


def _typed_dict(
    node: Node, check: Callable[[Node], Node] | None, unchecked: frozenset[str]
) -> Node:
    """A model's schema as a typed dict with the same fields (and `check` run after)."""
    inner = node["schema"]
    if inner["type"] != "model-fields" or inner.get("computed_fields"):
        raise TypeError(f"unexpected model schema of {node.get('cls')!r}")
    fields = {
        _key(name, field): core_schema.typed_dict_field(
            _plain(field["schema"], unchecked), required=field["schema"]["type"] != "default"
        )
        for name, field in inner["fields"].items()
    }
    config = {key: value for key, value in node.get("config", {}).items() if key != "title"}
    result = dict(
        core_schema.typed_dict_schema(
            fields,
            extra_behavior=config.get("extra_fields_behavior", "ignore"),
            config=CoreConfig(**config),
        )
    )
    if check is not None:
        result = dict(core_schema.no_info_after_validator_function(check, result))  # type: ignore[arg-type]
    if "ref" in node:
        result["ref"] = node["ref"]
    return result


def _after(node: Node, unchecked: frozenset[str]) -> Node:
    """A model validator of the exchange models, as this schema does it (see the module)."""
    inner = node["schema"]
    function = node["function"]["function"]
    model = inner.get("cls")
    if inner.get("type") != "model" or model is None:
        raise TypeError(f"unexpected validator {function!r}")
    if issubclass(model, schema.ChangeBase) and function is schema.ChangeBase._upsert_needs_data:
        result = _typed_dict(inner, None, unchecked)
    elif issubclass(model, schema.Ordered) and function is schema.Ordered._check_order:
        fields = model.model_fields
        pairs = tuple((fields[a].alias or a, fields[b].alias or b) for a, b in model._ordered)
        result = _typed_dict(inner, _order_check(pairs), unchecked)
    else:
        raise TypeError(f"no plain form of the validator {function!r} of {model.__name__}")
    if "ref" in node:
        result["ref"] = node["ref"]
    return result


def _plain(node: Any, unchecked: frozenset[str] = frozenset()) -> Any:
    """`node` of a core schema with every model a typed dict, and without the string
    patterns in `unchecked`."""
    if isinstance(node, list):
        return [_plain(item, unchecked) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "model":
        return _typed_dict(node, None, unchecked)
    if kind == "function-after":
        return _after(node, unchecked)
    if isinstance(kind, str) and kind.startswith("function"):
        raise TypeError(f"no plain form of a {kind} validator")
    if kind == "datetime":
        if node != _MOMENT_SCHEMA:
            raise TypeError(f"a date-time unlike `updated_at`: {node!r}")
        return core_schema.str_schema(pattern=MOMENT_PATTERN, strip_whitespace=False)
    result = dict(node)
    if kind == "str" and result.get("pattern") in unchecked:
        del result["pattern"]
    if kind == "default" and result.get("default") == []:
        result["default"] = ()  # read only: not worth the copy pydantic makes of a list
    for key in ("schema", "items_schema", "definitions"):
        if key in node:
            result[key] = _plain(node[key], unchecked)
    if isinstance(node.get("choices"), dict):
        result["choices"] = {
            tag: _plain(choice, unchecked) for tag, choice in node["choices"].items()
        }
    elif isinstance(node.get("choices"), list):
        result["choices"] = _plain(node["choices"], unchecked)
    return result


_CHANGE = _plain(schema.CHANGE_ADAPTER.core_schema)
# Not caching strings while parsing: ids rarely repeat, and looking each one up costs more
# than it saves.
_CONFIG = CoreConfig(cache_strings=False)

# One change, and a JSON array of changes (a block of records).
CHANGE = SchemaValidator(_CHANGE, _CONFIG)
CHANGES = SchemaValidator(core_schema.list_schema(_CHANGE), _CONFIG)

# The same array without the character rules of one-line and free text (a fifth of the
# work), for JSON text that cannot hold a character they refuse: see `may_hold_refused`.
_CHARACTER_RULES = frozenset({schema.LINE_PATTERN, schema.TEXT_PATTERN})
CHANGES_OF_PLAIN_TEXT = SchemaValidator(
    core_schema.list_schema(_plain(schema.CHANGE_ADAPTER.core_schema, _CHARACTER_RULES)),
    _CONFIG,
)
# The characters the rules refuse, as they could stand in UTF-8 JSON text: escaped (any
# escape but \" \\ \/ may be one; JSON allows control characters only escaped, and
# the parser refuses them raw), DEL, the C1 controls U+0080-U+009F, and U+2028-U+202E
# (line and paragraph separators, bidirectional embeddings and overrides) and U+2066-U+2069
# (bidirectional isolates).
_C1 = re.compile(rb"\xc2[\x80-\x9f]")
_SEPARATORS_AND_BIDI = re.compile(rb"\xe2(?:\x80[\xa8-\xae]|\x81[\xa6-\xa9])")


def may_hold_refused(text: bytes) -> bool:
    """False when no string of the JSON `text` can hold a character schema.LINE_PATTERN or
    schema.TEXT_PATTERN refuses: it then needs no check of them. Cheap (a few scans of
    the bytes in C); a backslash anywhere says True."""
    if b"\\" in text or b"\x7f" in text:
        return True
    return not text.isascii() and (
        _C1.search(text) is not None or _SEPARATORS_AND_BIDI.search(text) is not None
    )

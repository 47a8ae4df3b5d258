"""pydantic's validation errors in words for the person editing a rules file.

``Input should be a valid tuple`` becomes ``must be a list of tag patterns,
e.g. [latest]``; an unknown key is compared with the keys valid at that place
(``fail_onn`` -> did you mean ``fail_on``?); a bad choice lists the choices.
The schema is walked from the document's model along the error's location,
so suggestions always name keys that exist there.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

#: What the items of a list-valued key are, by key name (for "must be a list of ...").
_ITEMS = {
    "deny": "tag patterns", "allow": "tag patterns", "keys": "public key files",
    "certificate_chains": "certificate files", "identities": "keyless identities",
    "aliases": "environment names", "allowed": "registry prefixes", "images": "image overrides",
    "allowlists": "allowlist files", "exceptions": "exceptions", "conditions": "conditions",
    "one_of": "values",
}


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> X; ``Annotated[X, ...]`` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _type_at(model: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The annotation found by following ``loc`` from ``model`` (``None`` when lost)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict and len(args) == 2:
            current = args[1]
        elif origin in (tuple, list) and args:
            current = args[0]
        else:
            return None
    return _unwrap(current)


def _keys_at(model: type[BaseModel] | None, loc: Sequence[str | int]) -> tuple[str, ...]:
    if model is None:
        return ()
    parent = _type_at(model, loc)
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        return tuple(parent.model_fields)
    return ()


def _choices(annotation: Any) -> tuple[str, ...]:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return tuple(str(m.value) for m in annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    return ()


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def describe(err: ErrorDetails, model: type[BaseModel] | None = None) -> str:
    """One error as a person would say it (without the key path, which the caller adds)."""
    kind = err["type"]
    loc = tuple(err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    name = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        valid = _keys_at(model, loc[:-1])
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.7)
        if close:
            return f"unknown key: did you mean {close[0]!r}?"
        return "unknown key" + (f" (valid here: {', '.join(valid)})" if valid else "")
    if kind in ("tuple_type", "list_type", "set_type"):
        what = _ITEMS.get(name, "values")
        example = f", e.g. [{_shown(value)}]" if isinstance(value, str | int | float) else ""
        return f"must be a list of {what}{example}"
    if kind in ("enum", "literal_error"):
        choices = _choices(_type_at(model, loc)) if model is not None else ()
        listed = ", ".join(choices) if choices else str(ctx.get("expected", ""))
        return f"{_shown(value)!r} is not one of: {listed}" if listed else "not a valid choice"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number, not {_shown(value)!r}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number, not {_shown(value)!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false, not {_shown(value)!r}"
    if kind in ("string_type",):
        return f"must be text, not {_shown(value)!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping of keys to values, not {_shown(value)!r}"
    if kind == "missing":
        return "is required"
    if kind.startswith(("datetime_", "date_", "timezone_")):
        return f"must be an RFC 3339 timestamp (e.g. 2026-01-31T12:00:00Z), not {_shown(value)!r}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, not {_shown(value)}"
    if kind == "greater_than":
        return f"must be more than {ctx.get('gt')}, not {_shown(value)}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}, not {_shown(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} entry"
    return str(err["msg"]).removeprefix("Value error, ")

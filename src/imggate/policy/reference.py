"""``docs/rules-reference.md`` from the rule models: ``python -m imggate.policy.reference``.

Every key of a rules file is a field of a pydantic model in
:mod:`imggate.policy.rules` (and :class:`~imggate.policy.exceptions.ExceptionEntry`);
this module walks those models from :class:`~imggate.policy.rules.RulesDocument`
and writes one table per model, with each key's type, default and description
as the models declare them. Nothing is
written by hand, so the reference cannot drift from what imggate accepts: a
test compares the checked-in file with :func:`render`.
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from imggate.models import Mode, Severity
from imggate.policy import rules

COMMAND = "python -m imggate.policy.reference > docs/rules-reference.md"

_HEADER = f"""# Rules reference

<!-- Generated from src/imggate/policy/rules.py; do not edit. Regenerate with:
     {COMMAND} -->

Every key imggate accepts in a rules file, generated from the models that
validate it (`src/imggate/policy/rules.py`), so this page cannot drift from
the code: a test fails when it is stale. Unknown keys are rejected (exit 2,
naming `file:line`). A key left out inherits from the environment named by
`extends`, then from the defaults shown here. For a guided tour see
`rules/README.md` and `rules/examples/`; `imggate rules explain --env E` prints
what an environment enforces after inheritance.

Rule names (the JUnit test cases and the `rule` of every verdict entry) per
section:

| section | rules it produces |
|---|---|
| `severity` | `severity`, `severity.kev` |
| `tags` | `tags.denied`, `tags.allowed`, `tags.digest-pinning` |
| `signatures` | `signatures` |
| `attestations` | `attestations` |
| `registries` | `registries` |
| `age` | `age` |
| `labels` | `labels` |
| `report_binding` | `report-binding` |

Types: *severity* is one of {", ".join(f"`{s.value}`" for s in Severity)} (any case);
*mode* is {" or ".join(f"`{m.value}`" for m in Mode)}; a *regex* is Python `re` syntax
(each key says whether it must match the whole value or is searched); a
*path* is relative to the rules file; *list* is a YAML sequence; *map* is a
YAML mapping.
"""


def _markers(metadata: list[Any]) -> str | None:
    """The reference's name for an ``Annotated`` type imggate validates specially."""
    for m in metadata:
        func = getattr(m, "func", None)
        name = getattr(func, "__name__", "")
        if isinstance(m, AfterValidator) and name == "check_regex":
            return "regex"
        if isinstance(m, BeforeValidator) and name == "_relative_path":
            return "path"
        if isinstance(m, BeforeValidator) and name == "_severity":
            return "severity"
    return None


def type_name(tp: Any, metadata: list[Any] | None = None) -> str:
    """A reader's name for an annotation: ``list of regex``, ``map of severity to integer``."""
    special = _markers(metadata or [])
    if special:
        return special
    if tp is Any:
        return "any value"
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        return type_name(base, meta)
    if origin in (types.UnionType, typing.Union):
        parts = [type_name(a) for a in get_args(tp) if a is not type(None)]
        return " or ".join(parts)
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in get_args(tp))
    if origin is tuple or origin is list:
        return "list of " + type_name(get_args(tp)[0])
    if origin is dict:
        key, value = get_args(tp)
        return f"map of {type_name(key)} to {type_name(value)}"
    if isinstance(tp, type):
        if issubclass(tp, Severity):
            return "severity"
        if issubclass(tp, Mode):
            return "mode"
        if issubclass(tp, enum.Enum):
            return " or ".join(f"`{m.value}`" for m in tp)
        if issubclass(tp, BaseModel):
            return f"[{tp.__name__}](#{tp.__name__.lower()})"
        return {str: "string", int: "integer", float: "number", bool: "boolean",
                Path: "path"}.get(tp, tp.__name__)
    return str(tp)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is PydanticUndefined or value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "defaults below"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value in ((), {}, []):
        return "empty"
    if isinstance(value, tuple | list) and all(isinstance(v, enum.Enum) for v in value):
        return "`[" + ", ".join(str(v.value) for v in value) + "]`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _models_in(tp: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """Models inside an annotation, each with the path suffix that reaches it."""
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield tp, ""
    elif origin is dict:
        for model, rest in _models_in(get_args(tp)[1]):
            yield model, ".NAME" + rest
    elif origin in (tuple, list):
        for model, rest in _models_in(get_args(tp)[0]):
            yield model, "[]" + rest
    else:
        for arg in get_args(tp):
            yield from _models_in(arg)


def discover(root: type[BaseModel] = rules.RulesDocument) -> list[tuple[type[BaseModel], str]]:
    """Every model reachable from ``root``, breadth first, with where it first appears.

    A new section or nested model added to the rules appears here by itself.
    A subclass of :class:`~imggate.policy.rules.RuleSet` brings RuleSet along.
    """
    found: dict[type[BaseModel], str] = {root: ""}
    queue = [root]
    while queue:
        model = queue.pop(0)
        for name, field in model.model_fields.items():
            for sub, rest in _models_in(field.annotation):
                path = f"{found[model]}.{field.alias or name}{rest}".lstrip(".")
                for m in ((rules.RuleSet, sub) if issubclass(sub, rules.RuleSet) else (sub,)):
                    if m not in found:
                        found[m] = path
                        queue.append(m)
    return list(found.items())


def _own_fields(model: type[BaseModel]) -> Iterator[tuple[str, FieldInfo]]:
    """Fields as the reference lists them: a RuleSet subclass lists only the keys it adds."""
    inherited = (set(rules.RuleSet.model_fields)
                 if issubclass(model, rules.RuleSet) and model is not rules.RuleSet else set())
    yield from ((n, f) for n, f in model.model_fields.items() if n not in inherited)


def _model_section(model: type[BaseModel], where: str) -> str:
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    if model is rules.RulesDocument:
        place = "the top level of a rules file"
    elif model is rules.RuleSet:
        place = "every environment and image override (`environments.NAME`, `images[]`)"
    else:
        place = f"`{where}`"
    lines = [f"## {model.__name__}", "", f"Where: {place}.", ""]
    if doc:
        lines += [" ".join(doc.split()).replace("``", "`"), ""]
    if issubclass(model, rules.RuleSet) and model is not rules.RuleSet:
        lines += ["Also every key of [RuleSet](#ruleset).", ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in _own_fields(model):
        key = field.alias or name
        lines.append(f"| `{key}` | {_cell(type_name(field.annotation, field.metadata))} | "
                     f"{_cell(_default(field))} | {_cell(field.description or '')} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole reference as Markdown (what ``docs/rules-reference.md`` must hold)."""
    return "\n".join([_HEADER] + [_model_section(m, w) for m, w in discover()])


if __name__ == "__main__":
    sys.stdout.write(render())

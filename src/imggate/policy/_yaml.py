"""YAML with line numbers, and pydantic errors turned into ``file:line`` config errors.

PyYAML's composer keeps a mark on every node; we walk the node tree once and
remember the line of every mapping key and sequence item by its path
(``("environments", "prod", "severity", "fail_on")``). A pydantic error's
``loc`` is such a path, so the longest known prefix of it names the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from imggate.errors import ConfigError

if TYPE_CHECKING:
    # Imported where YAML is parsed: the built-in rules need no parser (~10 ms).
    import yaml

PathKey = tuple[str, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"
# More than a handful of errors at once is noise: the user fixes the first ones and reruns.
_MAX_ERRORS = 5

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """A parsed YAML document and the line of every key / item in it."""

    data: Any
    source: str
    lines: Mapping[PathKey, int]

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of the longest prefix of ``loc`` that is in the document (1 if none)."""
        parts = tuple(str(p) for p in loc)
        for n in range(len(parts), 0, -1):
            line = self.lines.get(parts[:n])
            if line is not None:
                return line
        return 1

    def where(self, loc: Sequence[str | int]) -> str:
        """``file:line`` for ``loc``."""
        return f"{self.source}:{self.line_of(loc)}"

    def error(self, loc: Sequence[str | int], message: str, hint: str | None = None) -> ConfigError:
        """A :class:`ConfigError` at ``loc`` naming the key."""
        key = ".".join(str(p) for p in loc)
        text = f"{key}: {message}" if key else message
        return ConfigError(text, location=self.where(loc), hint=hint)


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], source: str,
          seen_nodes: set[int]) -> None:
    import yaml

    # An alias is the anchored node again: walking it once keeps "billion laughs" linear.
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # merged keys keep the parent's line; good enough to point at
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    location=f"{source}:{line}",
                )
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, source, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, str(i))] = item.start_mark.line + 1
            _walk(item, (*path, str(i)), lines, source, seen_nodes)


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document; syntax errors and duplicate keys are :class:`ConfigError`."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        if node is None:
            return YamlDoc(None, source, lines)
        # Walk before constructing: construction flattens merge keys in place.
        _walk(node, (), lines, source, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"invalid YAML: {e.problem or e.context}", location=where) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", location=source) from e
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", location=source) from None
    finally:
        loader.dispose()
    return YamlDoc(data, source, lines)


def read_yaml(path: Path) -> YamlDoc:
    """Read and parse a YAML file; an unreadable file is a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    return parse_yaml(text, str(path))


def validate(model: type[M], doc: YamlDoc, data: Any = None, *, base: Sequence[str | int] = (),
             context: Mapping[str, Any] | None = None) -> M:
    """Validate ``data`` (default: the whole document) as ``model``.

    ``base`` is where ``data`` sits in the document so error locations line up.
    Errors become one :class:`ConfigError` naming file:line and key of each.
    """
    try:
        return model.model_validate(doc.data if data is None else data,
                                    context=dict(context or {}))
    except ValidationError as e:
        raise validation_error(e, doc, base) from None


def validation_error(e: ValidationError, doc: YamlDoc,
                     base: Sequence[str | int] = ()) -> ConfigError:
    """Turn a pydantic error into a :class:`ConfigError` at the first error's line."""
    problems: list[tuple[str, str]] = []
    first_loc: tuple[str | int, ...] = tuple(base)
    for i, err in enumerate(e.errors(include_url=False)):
        loc = (*base, *err["loc"])
        if i == 0:
            first_loc = loc
        key = ".".join(str(p) for p in loc) or "(document)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append((doc.where(loc), f"{key}: {msg}"))
    head = problems[0][1]
    rest = [f"{w}: {m}" for w, m in problems[1:_MAX_ERRORS]]
    if len(problems) > _MAX_ERRORS:
        rest.append(f"... and {len(problems) - _MAX_ERRORS} more")
    message = head + "".join(f"\n  also {r}" for r in rest)
    return ConfigError(message, location=doc.where(first_loc))

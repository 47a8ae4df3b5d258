"""YAML with line numbers, and pydantic errors turned into ``file:line`` config errors.

PyYAML's composer keeps a mark on every node; we walk the node tree once and
remember the line of every mapping key and sequence item by its path
(``("environments", "prod", "severity", "fail_on")``). A pydantic error's
``loc`` is such a path, so the longest known prefix of it names the line.

Hostile input is bounded here, for every YAML file imggate reads: the file is
a regular file (or pipe) of at most :data:`MAX_YAML_BYTES`; aliases may add at
most :data:`MAX_ALIAS_NODES` nodes beyond those written ("billion laughs"), and
may not refer to themselves; control characters, impossible dates and other
unconstructible scalars are :class:`ConfigError` at ``file:line``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Struct
from pydantic import BaseModel, ValidationError

from imggate._files import FileRefused, read_file
from imggate.errors import ConfigError
from imggate.nesting import MAX_DEPTH, yaml_too_deep

if TYPE_CHECKING:
    # Imported where YAML is parsed: the built-in rules need no parser (~10 ms).
    import yaml

PathKey = tuple[str, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: The largest YAML file read (rules and allowlists are kilobytes).
MAX_YAML_BYTES = 32 * 1024 * 1024
#: How many nodes aliases may add to a document beyond the ones written in it.
MAX_ALIAS_NODES = 100_000

M = TypeVar("M", bound=BaseModel)


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class YamlDoc(Struct, frozen=True):
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
    from imggate._pyyaml import yaml

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


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int],
                   source: str) -> int:
    """Nodes in ``node`` once every alias is expanded (memoised: linear in the nodes written)."""
    from imggate._pyyaml import yaml

    known = sizes.get(id(node))
    if known is not None:
        return known
    if id(node) in open_nodes:
        raise ConfigError("invalid YAML: an alias refers to the node that contains it",
                          location=f"{source}:{node.start_mark.line + 1}")
    size = 1
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        open_nodes.add(id(node))
        children = ([n for pair in node.value for n in pair]
                    if isinstance(node, yaml.MappingNode) else node.value)
        for child in children:
            size += _expanded_size(child, sizes, open_nodes, source)
        open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def _check_aliases(node: yaml.Node, source: str) -> None:
    """Refuse documents whose aliases expand to more than :data:`MAX_ALIAS_NODES` extra nodes."""
    sizes: dict[int, int] = {}
    expanded = _expanded_size(node, sizes, set(), source)
    written = len(sizes)  # each distinct node once
    if expanded - written > MAX_ALIAS_NODES:
        raise ConfigError(
            f"invalid YAML: aliases expand to {expanded:,} nodes from {written:,} written "
            f"(more than {MAX_ALIAS_NODES:,} extra): refusing a possible alias bomb",
            location=source)


@cache
def _loader_class() -> type[yaml.SafeLoader]:
    """The safe loader whose unconstructible scalars (``2026-02-30``) are marked errors:
    libyaml's when PyYAML is built with it (parsing the repository's rules: ~4M
    instructions instead of ~49M in Python), else PyYAML's own."""
    from imggate._pyyaml import yaml

    base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[valid-type,misc]
        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except (ValueError, OverflowError) as e:
                value = node.value if isinstance(node, yaml.ScalarNode) else node.tag
                raise yaml.constructor.ConstructorError(
                    None, None, f"{str(value)[:80]!r} is not a valid {_tag_name(node.tag)}: {e}",
                    node.start_mark) from None

    return Loader


def _tag_name(tag: str) -> str:
    return tag.rsplit(":", 1)[-1].replace("timestamp", "date")


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document; syntax errors and duplicate keys are :class:`ConfigError`."""
    from imggate._pyyaml import yaml

    loader: yaml.SafeLoader | None = None
    try:
        # Measured before composing: libyaml's composer recurses in C.
        deep = yaml_too_deep(text)
        if deep is not None:
            raise ConfigError(f"invalid YAML: nested more than {MAX_DEPTH} deep",
                              location=f"{source}:{deep}")
        # PyYAML's reader checks every character as soon as it is built (inside the try);
        # its refusal is worded below, whichever parser reads the text then.
        yaml.reader.Reader(text)
        loader = _loader_class()(text)
        node = loader.get_single_node()
        lines: dict[PathKey, int] = {}
        if node is None:
            return YamlDoc(None, source, lines)
        _check_aliases(node, source)
        # Walk before constructing: construction flattens merge keys in place.
        _walk(node, (), lines, source, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"invalid YAML: {e.problem or e.context}", location=where) from e
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, max(e.position, 0)) + 1
        raise ConfigError(f"invalid YAML: character U+{e.character:04X} at column "
                          f"{e.position - text.rfind(chr(10), 0, e.position)} is not allowed "
                          "(control characters must be escaped in a quoted string)",
                          location=f"{source}:{line}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", location=source) from e
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", location=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDoc(data, source, lines)


def read_yaml(path: Path) -> YamlDoc:
    """Read and parse a YAML file; an unreadable file is a :class:`ConfigError`."""
    return parse_yaml(read_text(path, MAX_YAML_BYTES), str(path))


def read_text(path: Path, limit: int, what: str = "") -> str:
    """A user's UTF-8 file (regular file or pipe, at most ``limit`` bytes) as text.

    Anything else (a directory, a device, a larger file) is a :class:`ConfigError`.
    """
    name = f"{what} {path}" if what else str(path)
    try:
        data = read_file(path, limit, allow_pipes=True)
        return data.decode("utf-8")
    except FileRefused as e:
        raise ConfigError(f"cannot read {name}: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {name}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"cannot read {name}: not UTF-8 ({e.reason} at byte {e.start})") from None


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
        raise validation_error(e, doc, base, model) from None


def validation_problems(e: ValidationError, doc: YamlDoc, base: Sequence[str | int] = (),
                        model: type[BaseModel] | None = None
                        ) -> list[tuple[int, str, tuple[str | int, ...]]]:
    """Every problem of a pydantic error as ``(line, "key: what is wrong", location)``,
    in file order (see :mod:`imggate.policy._wording` for the words)."""
    from imggate.policy._wording import describe

    problems: list[tuple[int, str, tuple[str | int, ...]]] = []
    for err in e.errors(include_url=False):
        loc = (*base, *err["loc"])
        key = ".".join(str(p) for p in loc) or "(document)"
        problems.append((doc.line_of(loc), f"{key}: {describe(err, model)}", loc))
    problems.sort(key=lambda p: p[0])
    return problems


def validation_error(e: ValidationError, doc: YamlDoc, base: Sequence[str | int] = (),
                     model: type[BaseModel] | None = None) -> ConfigError:
    """Turn a pydantic error into one :class:`ConfigError` listing every problem.

    Problems are in file order, each as ``file:line: key: what is wrong`` in
    words (see :mod:`imggate.policy._wording`); the error's location is the first.
    """
    problems = validation_problems(e, doc, base, model)
    first = problems[0]
    if len(problems) == 1:
        return ConfigError(first[1], location=doc.where(first[2]))
    rest = "".join(f"\n  {doc.source}:{line}: {text}" for line, text, _ in problems[1:])
    return ConfigError(f"{first[1]}{rest}\n  ({len(problems)} problems)",
                       location=doc.where(first[2]))

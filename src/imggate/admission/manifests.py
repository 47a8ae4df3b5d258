"""``imggate check -f``: the images of rendered Kubernetes manifests, where they are written.

A deploy job renders its manifests (``helm template``, ``kubectl kustomize``,
plain multi-document YAML) and gates them before ``kubectl apply``. This
module reads such a file the way the webhook reads an AdmissionReview: the
same :mod:`~imggate.admission.workloads` extraction, each image placed at its
``file:line`` (and, for Helm output, the template its ``# Source:`` comment
names). :mod:`~imggate.admission.manifest_gate` turns them into gate runs.

Reading is bounded: a size cap per input, alias expansion capped, no
recursion over the document (an explicit stack walks it once to refuse
duplicate keys, which ``kubectl`` refuses too: reading the last of two
``image:`` keys while the cluster got the first would let an image through
ungated). ``List`` kinds (``kind: List`` or ``...List`` with ``items``) are
read item by item.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from imggate import nesting
from imggate.admission.workloads import WorkloadImage, extract_images, is_workload, pointer
from imggate.errors import ManifestError, UsageError

if TYPE_CHECKING:
    import yaml

#: Largest manifest input read (a rendered chart of a few hundred objects is ~1 MB).
MAX_MANIFEST_BYTES: Final = 32 * 1024 * 1024
#: Extra nodes aliases may add once expanded (rendered manifests use none).
MAX_ALIAS_NODES: Final = 100_000
#: Deepest nesting read (a Kubernetes object is a few dozen levels deep at most).
MAX_DEPTH: Final = nesting.MAX_DEPTH
#: Objects read from one input (documents plus List items).
MAX_OBJECTS: Final = 100_000
STDIN: Final = "-"

_SOURCE_COMMENT = re.compile(r"^# Source: (\S.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ManifestImage:
    """One image in a manifest file: where it is written and what asks for it."""

    source: str
    line: int
    image: WorkloadImage
    template: str | None = None

    @property
    def location(self) -> str:
        """``file:line`` of the image field."""
        return f"{self.source}:{self.line}"

    def describe(self) -> str:
        """``deploy.yaml:12 Deployment shop/web container app`` (plus the Helm template)."""
        text = f"{self.location} {self.image.describe()}"
        return f"{text} ({self.template})" if self.template else text


@dataclass(frozen=True, slots=True)
class OtherObject:
    """An object that is not a workload: listed, not gated."""

    source: str
    line: int
    kind: str
    name: str | None


@dataclass(frozen=True, slots=True)
class ManifestScan:
    """What one input holds: every image, and the objects that carry none."""

    source: str
    images: tuple[ManifestImage, ...]
    others: tuple[OtherObject, ...]
    objects: int


def read_manifests(path: str) -> ManifestScan:
    """Read ``path`` (``-``: standard input) and extract every image."""
    if path == STDIN:
        data = sys.stdin.buffer.read(MAX_MANIFEST_BYTES + 1)
        name = "<stdin>"
    else:
        name = path
        data = _read_file(Path(path))
    if len(data) > MAX_MANIFEST_BYTES:
        raise UsageError(f"-f {name}: larger than {MAX_MANIFEST_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"-f {name}: not UTF-8 ({e.reason} at byte {e.start})") from None
    return parse_manifests(text, name)


def _read_file(path: Path) -> bytes:
    import os
    import stat

    try:
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            # A pipe (<(helm template ...)) is fine; a directory or device is not.
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                raise UsageError(f"-f {path}: not a regular file")
            return f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as e:
        raise UsageError(f"-f {path}: cannot read it ({e.strerror or e})") from None


def parse_manifests(text: str, source: str) -> ManifestScan:
    """Every image in the YAML (or JSON) stream ``text``; ``source`` names it in locations."""
    helm_sources = _source_comments(text)
    images: list[ManifestImage] = []
    others: list[OtherObject] = []
    objects = 0
    previous_end = 0
    for node, data in _documents(text, source):
        start = node.start_mark.line + 1
        template = _template_for(helm_sources, previous_end, start)
        previous_end = node.end_mark.line + 1
        for obj_node, obj, path in _objects(node, data, source):
            objects += 1
            if objects > MAX_OBJECTS:
                raise UsageError(f"{source}: more than {MAX_OBJECTS} objects")
            line = obj_node.start_mark.line + 1
            if not is_workload(obj):
                kind = obj.get("kind")
                if not isinstance(kind, str) or not isinstance(obj.get("apiVersion"), str):
                    raise ManifestError("an object needs a string apiVersion and kind",
                                        path=pointer(path) or "/", location=f"{source}:{line}")
                meta = obj.get("metadata")
                name = meta.get("name") if isinstance(meta, Mapping) else None
                others.append(OtherObject(source, line, kind,
                                          name if isinstance(name, str) else None))
                continue
            try:
                found = extract_images(obj)
            except ManifestError as e:
                inner = tuple(_token(p) for p in e.path.split("/")[1:]) if e.path != "/" else ()
                full = (*path, *inner)
                raise ManifestError(e.detail, path=pointer(full),
                                    location=f"{source}:{_line_of(node, full, line)}") from None
            for image in found:
                at = _line_of(node, (*path, *image.path), line)
                images.append(ManifestImage(source, at, image, template))
    return ManifestScan(source, tuple(images), tuple(others), objects)


def _source_comments(text: str) -> list[tuple[int, str]]:
    """``(line, template)`` of every Helm ``# Source:`` comment, counting lines once."""
    found = []
    line, pos = 1, 0
    for m in _SOURCE_COMMENT.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        found.append((line, m.group(1)))
    return found


def _token(text: str) -> str | int:
    from imggate.admission.workloads import unescape

    return int(text) if text.isdigit() else unescape(text)


def _template_for(sources: Sequence[tuple[int, str]], after: int, before: int) -> str | None:
    """The last ``# Source:`` comment between the previous document and this one."""
    import bisect

    i = bisect.bisect_right(sources, before, key=lambda s: s[0]) - 1
    return sources[i][1] if i >= 0 and sources[i][0] >= after else None


def _objects(node: yaml.Node, data: Any, source: str
             ) -> Iterator[tuple[yaml.Node, Mapping[str, Any], tuple[str | int, ...]]]:
    """The object a document holds, or the items of a ``List`` (one level: as kubectl)."""
    from imggate._pyyaml import yaml

    line = node.start_mark.line + 1
    if not isinstance(data, Mapping):
        raise ManifestError("a document must be a Kubernetes object (a mapping)", path="/",
                            location=f"{source}:{line}")
    kind = data.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in data:
        items = data["items"]
        if items is None:
            return
        if not isinstance(items, list):
            raise ManifestError("must be a list", path="/items", location=f"{source}:{line}")
        items_node = _child(node, "items")
        for i, item in enumerate(items):
            item_node = (items_node.value[i] if isinstance(items_node, yaml.SequenceNode)
                         else node)
            if not isinstance(item, Mapping):
                raise ManifestError("a List item must be a Kubernetes object",
                                    path=f"/items/{i}",
                                    location=f"{source}:{item_node.start_mark.line + 1}")
            yield item_node, item, ("items", i)
        return
    yield node, data, ()


def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
    from imggate._pyyaml import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                found: yaml.Node = v
                return found
    elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        item: yaml.Node = node.value[key]
        return item
    return None


def _line_of(node: yaml.Node, path: Sequence[str | int], fallback: int) -> int:
    """The line of ``path`` in the node tree, else of the deepest part of it that is there."""
    line = fallback
    current: yaml.Node | None = node
    for key in path:
        current = _child(current, key) if current is not None else None
        if current is None:
            break
        line = current.start_mark.line + 1
    return line


def _documents(text: str, source: str) -> Iterator[tuple[yaml.Node, Any]]:
    """Each non-empty document as (node tree, data); YAML problems are ``file:line`` errors."""
    from imggate._pyyaml import yaml

    loader: Any = None
    try:
        loader_class = _loader_class()
        _check_depth(text, source)
        # The reader checks every character when it is built: inside the try.
        loader = loader_class(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check_tree(node, source)
            data = loader.construct_document(node)
            if data is not None:
                yield node, data
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise UsageError(f"{where}: invalid YAML: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:
        position = e.position if isinstance(e.position, int) else 0
        line = text.count("\n", 0, max(position, 0)) + 1
        char = (f"U+{e.character:04X}" if isinstance(e.character, int)
                else repr(e.character)[:20])
        raise UsageError(f"{source}:{line}: invalid YAML: character {char} is "
                         "not allowed") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{source}: invalid YAML: {e}") from None
    except RecursionError:
        raise UsageError(f"{source}: invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` before libyaml composes the document.

    libyaml's composer recurses in C: ``[[[[…`` a million deep would overflow the
    stack and kill the process, where the pure-Python one raises RecursionError.
    """
    line = nesting.yaml_too_deep(text, MAX_DEPTH)
    if line is not None:
        raise UsageError(f"{source}:{line}: invalid YAML: nested more than {MAX_DEPTH} deep")


def _loader_class() -> type[yaml.SafeLoader]:
    """libyaml's safe loader when PyYAML is built with it (about ten times faster on a
    rendered chart; the same nodes, marks and constructors), else the pure-Python one."""
    from imggate._pyyaml import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


def _check_tree(root: yaml.Node, source: str) -> None:
    """Refuse duplicate keys and alias bombs, walking the tree once with an explicit stack.

    A node that aliases point at is walked again at each alias, as a consumer
    of the data would see it; the walk stops once that adds more than
    :data:`MAX_ALIAS_NODES` nodes (a cycle, too, ends there).
    """
    from imggate._pyyaml import yaml

    visits = 0
    seen: set[int] = set()
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        visits += 1
        if visits - len(seen) > MAX_ALIAS_NODES:
            raise UsageError(f"{source}:{root.start_mark.line + 1}: invalid YAML: aliases "
                             f"expand to more than {MAX_ALIAS_NODES:,} extra nodes")
        first = id(node) not in seen
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            if first:
                _check_keys(node, source)
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _check_keys(node: yaml.MappingNode, source: str) -> None:
    from imggate._pyyaml import yaml

    keys: dict[str, int] = {}
    for k, _ in node.value:
        if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
            line = k.start_mark.line + 1
            if k.value in keys:
                raise UsageError(f"{source}:{line}: duplicate key {k.value[:80]!r} (first at "
                                 f"line {keys[k.value]}): kubectl refuses it")
            keys[k.value] = line

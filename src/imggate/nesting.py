"""How deep a JSON or YAML document nests, measured by imggate before a parser builds it.

Parsers bound nesting each in their own way and word it each in their own way, and
both change between releases (orjson 3.13 stopped saying "recursion"; PyYAML 6.0.4's
libyaml refuses 1,000 levels while scanning ahead). Measuring first makes the refusal
imggate's, at imggate's bound, with imggate's words, whatever release is installed.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Final

#: Deepest nesting imggate reads in a document from outside (a Kubernetes object is a
#: few dozen levels deep, a scanner report or rules file fewer): below every parser's own.
MAX_DEPTH: Final = 256

# A JSON string, or an unterminated one to the end of the input (possessive: one pass,
# never re-scanned from a later quote, so no input makes this quadratic).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
# Openers count +1 and closers -1 as signed bytes.
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data`` (0 for a scalar).

    Brackets inside strings do not count; malformed input gets a number too (the
    parser says what else is wrong with it). Linear, in C-speed passes.
    """
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    steps = memoryview(brackets.translate(_STEP)).cast("b")
    return max(accumulate(steps), default=0)


def yaml_too_deep(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line of the first YAML collection nested deeper than ``limit``, else ``None``.

    One pass over the parser's events (the event parser is a loop: it never recurses,
    unlike the composer). A document the parser refuses for any other reason is not
    too deep by this measure: the caller's parse then reports what is wrong with it.
    """
    from imggate._pyyaml import yaml

    fast: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
    starts: list[int] = [0]
    try:
        return _measure(fast or yaml.SafeLoader, text, limit, starts)
    except yaml.YAMLError:
        if fast is None:
            return None
    # libyaml refused the text. Its scanner reads up to a simple key's length ahead of
    # the events and, in some releases, bounds nesting there itself, so its refusal may
    # come before the events reach ``limit``. The pure-Python parser has no such bound:
    # it measures again from the start of the document that failed.
    offset = _line_offset(text, starts[-1])
    try:
        found = _measure(yaml.SafeLoader, text[offset:], limit, [])
    except yaml.YAMLError:
        return None
    return found + starts[-1] if found is not None else None


def _measure(loader_class: type, text: str, limit: int, starts: list[int]) -> int | None:
    """Walk the events; the 1-based line of the first collection beyond ``limit``."""
    from imggate._pyyaml import yaml

    parser = loader_class(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limit:
                    return event.start_mark.line + 1 if event.start_mark else 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.DocumentStartEvent) and event.start_mark:
                starts.append(event.start_mark.line)
    finally:
        parser.dispose()
    return None


def _line_offset(text: str, line: int) -> int:
    """Offset in ``text`` of the start of 0-based ``line``."""
    offset = 0
    for _ in range(line):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset

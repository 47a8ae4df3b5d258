"""Hypothesis strategies that mutate real inputs, and the fuzz settings.

Every fuzz target starts from real files (``tests/fixtures``, the shipped
rules) and mutates them: bytes flipped, inserted, deleted, duplicated or cut
(``mutated_bytes``), or a JSON/YAML value somewhere in the document replaced
by a hostile one (``mutated_json``). The rule each target checks: nothing but
an :class:`imggate.errors.Error` escapes (or, for verifiers documented as never
raising, nothing at all).

How many examples each target runs: ``IMGGATE_FUZZ_EXAMPLES`` (default 60,
the whole set under a minute in CI). A longer local run::

    IMGGATE_FUZZ_EXAMPLES=5000 python -m pytest tests/fuzz tests/signatures/test_fuzz.py -q \
        -p no:randomly

Hypothesis keeps failing examples in ``.hypothesis/`` and replays them first.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("IMGGATE_FUZZ_EXAMPLES", "60"))

#: Settings for every fuzz target (no deadline: the machine is shared and loaded).
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

#: Values that have broken parsers somewhere: wrong types, extremes, control characters,
#: lone surrogates, deep nesting, long strings.
HOSTILE: list[Any] = [
    None, True, 0, -1, 2**63, 10**400, 1e308, -0.0, "", " ", "\x00", "\n", "\r\n",
    "a\u202eb", "\ud800", "\udfff", "x" * 100_000, "sha256:" + "a" * 64 + "\n", "../../etc",
    "CVE-2024-0001", "Critical", "pkg:", "2026-02-30", "9" * 5000, [], {}, [None],
    {"": None}, json.loads("[" * 200 + "]" * 200), ["x"] * 500, {"a": {"b": {"c": []}}},
]


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    """One of ``seeds`` with 1 to 6 byte-level edits."""
    seeds = list(seeds)
    data = bytearray(seeds[draw(st.integers(0, len(seeds) - 1))])  # an index: a short repr
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut", "dup", "byte"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "cut":
            del data[pos:]
        elif op == "dup" and data:
            end = min(len(data), pos + draw(st.integers(1, 256)))
            data[pos:pos] = data[pos:end]
        elif data:
            data[pos] = draw(st.sampled_from(b"\x00\n\r\"'{}[]:,#&*!|>%@`\\\xff\xc3"))
    return bytes(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:50]):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, seeds: Sequence[Any],
                 dump: Callable[[Any], bytes] = lambda v: json.dumps(v).encode()) -> bytes:
    """One of ``seeds`` (parsed documents) with 1 to 3 values replaced or removed."""
    # A deep copy (YAML dates become strings: only the shape matters here).
    seeds = list(seeds)
    doc = json.loads(json.dumps(seeds[draw(st.integers(0, len(seeds) - 1))], default=str))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        # A copy: a later edit in this example must not change HOSTILE itself.
        new = copy.deepcopy(draw(st.sampled_from(HOSTILE) | st.text(max_size=20) | st.integers()))
        if not path:
            doc = new
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = new
    try:
        return dump(doc)
    except (ValueError, TypeError, UnicodeEncodeError):
        return json.dumps(doc, ensure_ascii=True, default=str).encode()

"""Nesting measured by imggate before any parser sees the text (same answer on every release)."""

from __future__ import annotations

import time

import pytest
import yaml

from imggate.nesting import MAX_DEPTH, json_depth, yaml_too_deep
from registry_harness import missing_component


@pytest.mark.parametrize(("data", "depth"), [
    (b"1", 0),
    (b"[]", 1),
    (b'{"a": [1, {"b": []}]}', 4),
    (b'{"a": "[[[[[{{{{"}', 1),                 # brackets inside a string do not count
    (b'{"a": "\\"[[[", "b": [[]]}', 3),          # nor after an escaped quote
    (b'["\\\\", [[]]]', 3),                        # an escaped backslash ends before the quote
    (b"[" * 5000 + b"]" * 5000, 5000),
    (b'[[["unterminated [[[[', 3),                # the rest of an open string is string
])
def test_json_depth(data: bytes, depth: int) -> None:
    assert json_depth(data) == depth


@pytest.mark.parametrize("hostile", [
    b'"\\"' * 2_000_000,                          # quotes that each start an unterminated string
    b"[" * 8_000_000,
    b'"' + b"a" * 8_000_000,
])
def test_json_depth_is_linear_on_hostile_bodies(hostile: bytes) -> None:
    started = time.perf_counter()
    json_depth(hostile)
    assert time.perf_counter() - started < 5


@pytest.fixture(params=["libyaml", "pure-python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "pure-python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    elif not hasattr(yaml, "CSafeLoader"):
        missing_component("PyYAML built with libyaml (its wheels are)")
    return str(request.param)


@pytest.mark.parametrize(("start", "opener"), [("x: ", "["), ("x: ", "{a: "), ("x:\n", "- ")])
def test_yaml_too_deep_names_the_line(loader: str, start: str, opener: str) -> None:
    # 200,000 levels: past libyaml's own bound (1,000 in PyYAML 6.0.4) and its scan-ahead.
    text = "a: 1\n---\nb: 2\nc: 3\n" + start + opener * 200_000 + "a\n"
    line = yaml_too_deep(text)
    assert line is not None and line >= 5


def test_yaml_within_the_bound_and_broken_yaml_are_not_too_deep(loader: str) -> None:
    # The mapping holding x is the first level.
    inner = MAX_DEPTH - 1
    assert yaml_too_deep("x: " + "[" * inner + "]" * inner) is None
    assert yaml_too_deep("x: " + "[" * (inner + 1) + "]" * (inner + 1)) == 1
    assert yaml_too_deep("x: [1, 2\ny: }") is None

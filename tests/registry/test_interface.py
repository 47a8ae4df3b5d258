"""What every image source shares: documents read as ``json.loads`` reads them."""

from __future__ import annotations

import json

import pytest

from imggate.registry.interface import load_json

DOCUMENTS = [
    b'{"schemaVersion": 2, "config": {"size": 7, "digest": "sha256:00"}, "layers": []}',
    b'{"a": 1, "a": 2}',  # the last of a duplicated key
    b'{"n": 123456789012345678901234567890, "f": 0.1, "e": 1E2, "z": -0.0, "t": 1e-400}',
    b'["\\u00e9\\ud83d\\ude00", "\xc3\xa9", "\\/", "\\u0000"]',
    b' \n{"a" : [true, false, null, {}, []]} \r\n',
    # Refused by msgspec, read by json.loads: the same document either way.
    b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e400}',
    b'\xef\xbb\xbf{"bom": 1}',
    '{"utf16": 1}'.encode("utf-16"),
    b'["\\ud800"]',  # a lone surrogate
]

REFUSED = [b'{"a": ', b'{"a": "\xff"}', b"[" * 50_000, b"[1,]", b'{"a":"x\ty"}', b"", b"[1] x"]


@pytest.mark.parametrize("raw", DOCUMENTS)
def test_a_document_is_what_json_loads_makes_of_it(raw: bytes) -> None:
    expected = json.loads(raw)
    got = load_json(raw)
    assert repr(got) == repr(expected)  # repr: NaN, -0.0 and int against float told apart


@pytest.mark.parametrize("raw", REFUSED)
def test_a_refused_document_raises_what_json_loads_raises(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)) as theirs:
        json.loads(raw)
    with pytest.raises((ValueError, RecursionError)) as ours:
        load_json(raw)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)

"""PyYAML imported through imggate._pyyaml: its reader refuses exactly the characters
its own pattern refuses, from a pattern that compiles ~30x cheaper."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from imggate import _pyyaml
from imggate._pyyaml import yaml

EVERY_CODE_POINT = "".join(map(chr, range(0x110000)))


def test_the_listed_class_refuses_exactly_what_pyyaml_refuses() -> None:
    # "(?:...)": not the cached key, so PyYAML's own pattern is compiled here as written.
    theirs = re.compile(f"(?:{_pyyaml.PYYAML_NON_PRINTABLE})")
    ours = re.compile(_pyyaml.NON_PRINTABLE)
    refused = theirs.findall(EVERY_CODE_POINT)
    assert ours.findall(EVERY_CODE_POINT) == refused
    assert len(refused) == 9 + 2 + 18 + 6 + 26 + 2048 + 2  # C0, DEL+C1, surrogates, FFFE/F


def test_pyyaml_reads_with_the_listed_class() -> None:
    # PyYAML's pattern is the one _pyyaml knows: the cheap compile is the one it uses (in a
    # fresh interpreter: this one may have imported yaml before, the usual way).
    probe = ("from imggate._pyyaml import NON_PRINTABLE, yaml; "
             "print(yaml.reader.Reader.NON_PRINTABLE.pattern == NON_PRINTABLE)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip() == "True"
    with pytest.raises(yaml.reader.ReaderError) as refused:
        yaml.reader.Reader("key: value\x85ok\x86")
    assert refused.value.character == 0x86
    yaml.reader.Reader("tab\there, NEL\x85, \u00e9, \U0001f600")

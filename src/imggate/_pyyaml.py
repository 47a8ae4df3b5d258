"""PyYAML, imported with its costliest import-time step done the cheap way.

Importing ``yaml`` compiles ``yaml.reader.Reader.NON_PRINTABLE``: the class of
characters it refuses, written as the negation of the ones it allows, up to
U+10FFFF. The ``re`` module compiles that negation by building a map of every
code point: ~58M instructions, two thirds of the whole import and ~3% of a
``check`` of 10,000 findings, on its critical path (issue 22). The same class
written as what it refuses is a few ranges below U+10000 and compiles in ~2M.

So the compiled positive class is put in ``re``'s cache under PyYAML's own
pattern before ``yaml`` is imported, and PyYAML's ``re.compile`` finds it
there: the same matches (``tests/test_pyyaml.py`` compares the two classes
over every code point). Where ``re`` keeps no such cache, or PyYAML writes
another pattern, nothing changes but the time.

Every use of PyYAML in imggate imports it from here.
"""

from __future__ import annotations

import re

#: ``yaml.reader.Reader.NON_PRINTABLE``'s pattern, as PyYAML 6 writes it.
PYYAML_NON_PRINTABLE = ("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD"
                        "\U00010000-\U0010ffff]")
#: The same characters, listed: C0 controls but tab and line ends, DEL and C1 controls
#: but NEL, surrogates, U+FFFE and U+FFFF.
NON_PRINTABLE = ("[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F\uD800-\uDFFF"
                 "\uFFFE\uFFFF]")


def _prime() -> None:
    cache = getattr(re, "_cache", None)
    if isinstance(cache, dict):
        cache.setdefault((str, PYYAML_NON_PRINTABLE, 0), re.compile(NON_PRINTABLE))


_prime()

import yaml  # noqa: E402 - after _prime(), which is the point of this module

__all__ = ["yaml"]

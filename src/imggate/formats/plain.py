"""Which of many texts an escaping would change, found for all of them at once.

The reports' writers escape each value a scanner wrote (HTML, JSON), and most values
need nothing: a text that holds none of the characters the escaping changes is written
as it is. Looking for those characters one text at a time costs a call per text and,
with a regular expression, ~60 instructions a character; :func:`marked` looks at all
the texts joined, with :meth:`bytes.translate` (~10 a character), and names the few
that hold one (or are not ASCII): those are escaped as before, one by one.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate


def marks(chars: bytes) -> bytes:
    """A table for :func:`marked` that marks ``chars`` (ASCII): each of them 0 in it,
    any other byte 1."""
    return bytes(0 if b in chars else 1 for b in range(256))


def marked(texts: list[str], table: bytes) -> set[int]:
    """The places in ``texts`` of those that hold a character ``table`` marks (see
    :func:`marks`), or that are not ASCII: every other text holds only ASCII characters
    ``table`` does not mark."""
    odd: set[int] = set()
    if not "".join(texts).isascii():
        odd = {n for n, t in enumerate(texts) if not t.isascii()}
        texts = ["" if n in odd else t for n, t in enumerate(texts)]
    found = "".join(texts).encode("ascii").translate(table)
    at = found.find(0)
    if at >= 0:  # (the texts' ends in the joined one: only where something is found)
        ends = list(accumulate(map(len, texts)))
        while at >= 0:
            n = bisect_right(ends, at)
            odd.add(n)
            at = found.find(0, ends[n])
    return odd

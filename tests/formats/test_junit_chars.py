"""junit's invalid-character pattern is exactly the complement of XML 1.0's Char (less DEL/C1)."""

from __future__ import annotations

import re

from imggate.formats import junit

_ALLOWED = re.compile("[\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def test_not_xml_is_the_complement_of_the_allowed_characters() -> None:
    points = [*range(0x10000), 0x10000, 0x1F4A5, 0x10FFFF]
    wrong = [hex(c) for c in points
             if bool(junit._NOT_XML.match(chr(c))) == bool(_ALLOWED.match(chr(c)))]
    assert wrong == []


def test_printable_text_has_nothing_the_pattern_changes() -> None:
    # xml_text returns printable text as it is, without the pattern (or CR) looked for.
    printable = "".join(chr(c) for c in range(0x110000) if chr(c).isprintable())
    assert "\r" not in printable
    assert junit._NOT_XML.search(printable) is None

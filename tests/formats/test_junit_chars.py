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

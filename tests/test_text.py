"""Remote text is printed on one line with every control character visible."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imggate.text import printable, printable_lines


def test_forged_log_lines_are_shown_not_obeyed() -> None:
    forged = "denied\r\x1b[2K\x1b[32mResult: ALLOW (exit code 0)\x1b[0m\nnext\u202e"
    out = printable(forged)
    assert out == ("denied\\r\\x1b[2K\\x1b[32mResult: ALLOW (exit code 0)\\x1b[0m\\nnext"
                   "\\u202e")


def test_lines_keep_their_own_breaks() -> None:
    assert printable_lines("a\x07\nb\r") == "a\\x07\nb\\r"


@given(st.text())
def test_no_control_character_survives(text: str) -> None:
    out = printable(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
    assert out == text or "\\" in out

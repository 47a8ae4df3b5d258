"""plain.marked: which of many texts hold a marked character, looked at all at once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imggate.formats import plain

_TABLE = plain.marks(b"&<\x00\x7f")


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet=st.sampled_from("ab&<\x00\x7f\x80é\ud800 "),
                              max_size=5), max_size=10))
def test_marked_names_each_text_with_a_marked_or_non_ascii_character(texts: list[str]) -> None:
    assert plain.marked(texts, _TABLE) == {
        n for n, t in enumerate(texts) if not t.isascii() or any(c in t for c in "&<\x00\x7f")}


def test_marks_is_a_table_of_the_characters_marked() -> None:
    assert [b for b in range(256) if not _TABLE[b]] == [0x00, 0x26, 0x3C, 0x7F]
    assert len(_TABLE) == 256

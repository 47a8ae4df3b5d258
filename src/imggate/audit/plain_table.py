"""The audit's table as rich prints it off a terminal, written without rich's layout.

rich lays out every cell of a table through its general pipeline (measuring, padding,
splitting into segments, cropping each line): for the 1,002 rows of an audit that was
~3.4G instructions, more than the whole rest of the audit (listing, judging, every
report). Off a terminal nothing is styled and nothing wraps (the console is
:data:`~imggate.formats.console.PIPE_WIDTH` wide), so each line is the cells padded to
their column's width between the box characters of rich's default box (``HEAVY_HEAD``),
and that is what :func:`render` writes. Where rich could say something else it says
``None`` and rich prints the table: text rich measures otherwise (anything but printable
ASCII), a table wider than the console, a title wider than the table or with space
at either end (or none), no rows.
``tests/audit/test_plain_table.py`` holds the two to the same text.
"""

from __future__ import annotations

from collections.abc import Sequence


def render(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
           width: int) -> str | None:
    """The table (its title above it, left-justified) as rich's ``Console.print`` writes
    it to a file that is not a terminal, ``width`` columns wide; ``None`` where that is
    left to rich (see the module docstring)."""
    if not rows or any(len(r) != len(headers) for r in rows):
        return None
    if not title or title.strip() != title:  # no title line, or one rich may trim
        return None
    if not all(_plain(t) for t in (title, *headers)) or not all(
            _plain(c) for r in rows for c in r):
        return None
    # Each column as wide as its widest cell, with one space of padding on each side.
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers)]
    total = sum(widths) + len(widths) + 1
    if total > width or len(title) > total:
        return None

    def line(left: str, middle: str, right: str, cells: Sequence[str]) -> str:
        return left + middle.join(f" {c:<{w - 2}} " for c, w in zip(cells, widths,
                                                                     strict=True)) + right

    lines = [title.ljust(total),
             "┏" + "┳".join("━" * w for w in widths) + "┓",
             line("┃", "┃", "┃", headers),
             "┡" + "╇".join("━" * w for w in widths) + "┩",
             *(line("│", "│", "│", r) for r in rows),
             "└" + "┴".join("─" * w for w in widths) + "┘"]
    return "\n".join(lines) + "\n"


def _plain(text: str) -> bool:
    # Printable ASCII: one cell per character, nothing rich would escape or fold.
    return text.isascii() and text.isprintable()

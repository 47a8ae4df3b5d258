"""The audit's table off a terminal (``imggate.audit.plain_table``): the text rich prints,
without rich laying it out."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime

import pytest
from rich.console import Console

from imggate.audit import plain_table, summary
from imggate.audit.cleanup import CleanupOutcome
from imggate.audit.run import AuditResult, TagRow
from imggate.formats.console import PIPE_WIDTH, make_console
from imggate.models import Decision, Digest


def _rich(title: str, headers: list[str], rows: list[list[str]], width: int) -> str:
    """What rich prints for the audit's table (as summary.table builds it) off a terminal."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for name in headers[:-1]:
        t.add_column(name, no_wrap=True)
    t.add_column(headers[-1], overflow="fold")
    for r in rows:
        t.add_row(*(Text(c) for c in r))
    out = io.StringIO()
    Console(file=out, width=width, markup=False, emoji=False, highlight=False).print(t)
    return out.getvalue()


_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_, +"


def _word(rng: random.Random, longest: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, longest)))


@pytest.mark.parametrize("seed", range(40))
def test_the_plain_table_is_what_rich_prints(seed: int) -> None:
    rng = random.Random(seed)
    headers = ["Tag", "Digest", "Created", "Cleanup",
               *(f"env{i}" for i in range(rng.randint(1, 3))), "Signed", "Same image as"]
    rows = [[_word(rng, rng.choice((3, 12, 40))) for _ in headers]
            for _ in range(rng.randint(1, 30))]
    title = f"r{_word(rng, rng.choice((10, 60)))}: {len(rows)} tags"
    text = plain_table.render(title, headers, rows, PIPE_WIDTH)
    assert text is not None
    assert text == _rich(title, headers, rows, PIPE_WIDTH)


@pytest.mark.parametrize(("title", "rows", "width"), [
    ("t", [["v1", "sha256:abc"]], 10),  # wider than the console: rich folds and crops
    ("a title much wider than its table", [["v1", "x"]], PIPE_WIDTH),  # rich wraps it
    ("t", [["t\u00e4g", "x"]], PIPE_WIDTH),  # not ASCII: rich measures cells
    ("t", [["\u6f22\u5b57", "x"]], PIPE_WIDTH),  # wide characters
    ("t", [["a\tb", "x"]], PIPE_WIDTH),  # a control character
    ("t", [], PIPE_WIDTH),  # no rows
    ("", [["v1", "x"]], PIPE_WIDTH),  # no title: no title line
    ("t ", [["v1", "x"]], PIPE_WIDTH),  # space at its end: rich may trim it
], ids=["too-wide", "long-title", "non-ascii", "wide-chars", "control", "empty", "no-title",
        "title-space"])
def test_what_rich_may_lay_out_otherwise_is_left_to_rich(
        title: str, rows: list[list[str]], width: int) -> None:
    assert plain_table.render(title, ["Tag", "Same image as"], rows, width) is None


def _result(n: int) -> AuditResult:
    digest = Digest.parse("sha256:" + "ab" * 32)
    rows = tuple(TagRow(f"v1.0.{i}", digest, datetime(2026, 1, 1 + i % 28, tzinfo=UTC),
                        CleanupOutcome(i % 3 != 0, "kept"), {"dev": Decision.ALLOW},
                        same_digest=tuple(f"v1.0.{j}" for j in range(n) if j != i)[:5])
                 for i in range(n))
    return AuditResult("registry.example/team/app", rows, {})


def test_the_summary_off_a_terminal_is_printed_without_rich_laying_out_the_table(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = _result(12)
    out = io.StringIO()
    summary.print_summary(result, make_console(out), [])
    expected = io.StringIO()
    make_console(expected).print(summary.table(result))
    assert out.getvalue().startswith(expected.getvalue())

    # rich's table layout (~3.4G instructions for 1,002 rows) is not asked at all.
    from rich.table import Table

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rich laid the table out")

    monkeypatch.setattr(Table, "__rich_console__", refuse)
    again = io.StringIO()
    summary.print_summary(result, make_console(again), [])
    assert again.getvalue() == out.getvalue()


def test_on_a_terminal_rich_prints_the_table() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=200)
    summary.print_summary(_result(3), console, [])
    assert "\x1b[" in out.getvalue() and "v1.0.2" in out.getvalue()

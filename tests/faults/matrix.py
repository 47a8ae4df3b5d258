"""The fault matrix's tally: one row per fault, the totals printed at the end of the run.

``tests/conftest.py``'s ``pytest_terminal_summary`` prints :func:`table` when
the matrix ran, and the matrix writes it to ``fault-matrix.txt`` in its
temporary directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS = ("runs", "false allows", "crashes", "hangs", "leaks", "injections", "unexpected")


@dataclass
class Row:
    """What the runs of one fault did."""

    fault: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    notes: list[str] = field(default_factory=list)


ROWS: dict[str, Row] = {}


def row(fault: str) -> Row:
    """The row of ``fault`` (created on first use)."""
    return ROWS.setdefault(fault, Row(fault))


def table() -> str:
    """The totals, then every fault with a problem (an empty list when there is none)."""
    totals = dict.fromkeys(COLUMNS, 0)
    for r in ROWS.values():
        for k, v in r.counts.items():
            totals[k] += v
    head = ["faults", *COLUMNS]
    values = [str(len(ROWS)), *(str(totals[c]) for c in COLUMNS)]
    widths = [max(len(h), len(v)) for h, v in zip(head, values, strict=True)]
    lines = ["fault matrix (hostile registry on loopback):",
             "  " + " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)),
             "  " + " | ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))]
    for r in ROWS.values():
        for note in r.notes:
            lines.append(f"  {r.fault}: {note}")
    return "\n".join(lines)

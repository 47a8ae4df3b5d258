"""The fault matrix's tally: one row per fault, the totals printed at the end of the run.

Each fault's test hands its row over in its report (:data:`PROPERTY`, a user property);
``tests/conftest.py`` adds the rows of the reports it sees to :data:`ROWS`, then prints
:func:`table` and writes it to ``fault-matrix.txt`` in the run's temporary directory. The
rows travel in the reports because under pytest-xdist the tests run in worker processes
and only their reports reach the process that prints the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COLUMNS = ("runs", "false allows", "crashes", "hangs", "leaks", "injections", "unexpected")


@dataclass
class Row:
    """What the runs of one fault did."""

    fault: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))
    notes: list[str] = field(default_factory=list)


#: The name of the user property a fault's test report carries its row in.
PROPERTY = "fault_matrix_row"

ROWS: dict[str, Row] = {}


def as_property(r: Row) -> dict[str, Any]:
    """``r`` as plain data, the value of the :data:`PROPERTY` its test records."""
    return {"fault": r.fault, "counts": dict(r.counts), "notes": list(r.notes)}


def add(value: dict[str, Any]) -> None:
    """Count one test's row (an :func:`as_property` value) in :data:`ROWS`."""
    r = ROWS.setdefault(value["fault"], Row(value["fault"]))
    for k, v in value["counts"].items():
        r.counts[k] += v
    r.notes.extend(value["notes"])


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

"""The audit summary: a table for people, ``imggate-audit.json`` for tools.

One row per tag: digest, creation date, what the cleanup policy does with it,
the decision in each environment, the other tags naming the same image
(checked once), and whether a trusted signature was found. Tags come from a
registry: they are checked against docker's tag grammar before they get here,
and error texts are escaped before they are printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from imggate.audit.run import AuditResult, TagRow
from imggate.formats.verdict_json import indented_json, write_text
from imggate.text import printable

if TYPE_CHECKING:
    # rich only for the console (~25 ms of import): ``audit -q`` writes the JSON alone.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

FILENAME = "imggate-audit.json"
_STYLE = {"allow": "green", "deny": "red", "error": "yellow"}


def _ordered(result: AuditResult) -> list[TagRow]:
    """Newest image first, undated and unresolved last, then by tag."""
    return sorted(result.rows, key=lambda r: (r.created is None,
                                              -(r.created.timestamp() if r.created else 0),
                                              r.tag))


def _signed(row: TagRow) -> str:
    return {None: "-", True: "yes", False: "no"}[row.signed]


def document(result: AuditResult) -> dict[str, Any]:
    """The JSON form of the summary."""
    envs = list(result.verdicts)
    return {
        "repository": result.repository,
        "environments": envs,
        "tags": len(result.rows),
        "distinct_digests": result.distinct_digests,
        "exit_code": result.exit_code,
        "skipped_tags": [printable(t) for t in result.skipped],
        "rows": [{
            "tag": r.tag,
            "digest": str(r.digest) if r.digest else None,
            "created": r.created.isoformat() if r.created else None,
            "kept_by_cleanup": r.cleanup.kept,
            "cleanup_reason": r.cleanup.reason,
            "checked": r.checked,
            "decisions": {e: d.value for e, d in r.decisions.items()},
            "same_digest_as": list(r.same_digest),
            "signed": r.signed,
            "error": r.error,
            # Per environment that denies the tag (or could not decide it): why.
            "reasons": {e: list(why) for e, why in r.reasons.items()},
        } for r in _ordered(result)],
    }


def write(result: AuditResult, directory: Path) -> Path:
    """Write ``imggate-audit.json`` into ``directory``."""
    # No float in it: msgspec's C encoder writes what json.dumps(indent=2) would.
    return write_text(directory / FILENAME, indented_json(document(result)) + "\n")


def _cells(result: AuditResult) -> tuple[str, list[str], list[list[tuple[str, str]]]]:
    """The table's title, headers and rows (each cell's text and rich style)."""
    envs = list(result.verdicts)
    title = f"{result.repository}: {len(result.rows)} tags, {result.distinct_digests} " \
            "distinct images"
    headers = ["Tag", "Digest", "Created", "Cleanup", *envs, "Signed", "Same image as"]
    rows = []
    for r in _ordered(result):
        cells = [(r.tag, ""), (r.digest.hex[:12] if r.digest else "-", ""),
                 (r.created.date().isoformat() if r.created else "-", ""),
                 ("keep" if r.cleanup.kept else "remove", "" if r.cleanup.kept else "dim")]
        for env in envs:
            d = r.decisions.get(env)
            label = d.value.upper() if d else ("ERROR" if r.error else "-")
            cells.append((label, _STYLE.get(label.lower(), "")))
        same = ", ".join(r.same_digest[:3]) + (f" +{len(r.same_digest) - 3}"
                                                if len(r.same_digest) > 3 else "")
        cells += [(_signed(r), ""), (same, "")]
        rows.append(cells)
    return title, headers, rows


def table(result: AuditResult) -> Table:
    """The summary as a rich table (cells are Text: nothing in them is markup)."""
    from rich.table import Table
    from rich.text import Text

    title, headers, rows = _cells(result)
    t = Table(title=title, title_justify="left")
    # A tag or digest cut in two cannot be searched for: those columns never wrap (off a
    # terminal nothing does: see print_summary); the list of other tags may.
    for name in headers[:-1]:
        t.add_column(name, no_wrap=True)
    t.add_column(headers[-1], overflow="fold")
    for cells in rows:
        t.add_row(*(Text(text, style=style) for text, style in cells))
    return t


def _print_table(result: AuditResult, console: Console) -> None:
    """The table: off a terminal as plain text where that is rich's text too
    (:mod:`imggate.audit.plain_table`), else by rich."""
    if not console.is_terminal:
        from imggate.audit import plain_table

        title, headers, rows = _cells(result)
        text = plain_table.render(title, headers, [[c for c, _ in r] for r in rows],
                                  console.width)
        if text is not None:
            console.file.write(text)
            console.file.flush()
            return
    console.print(table(result))


#: Denied or undecided tags whose reasons the console lists, and reasons per tag and
#: environment (imggate-audit.json has them all).
MAX_TAGS_WITH_REASONS = 20
TOP_REASONS = 3


def reason_lines(result: AuditResult) -> list[Text]:
    """``DENY tag (env): rule: message; ...`` for each tag an environment denies or could
    not decide, kept tags first: the top reasons, then how many more."""
    from rich.text import Text

    rows = [r for r in _ordered(result) if r.reasons]
    rows.sort(key=lambda r: not r.cleanup.kept)
    out = []
    for r in rows[:MAX_TAGS_WITH_REASONS]:
        for env, why in r.reasons.items():
            label = r.decisions[env].value.upper() if env in r.decisions else "ERROR"
            line = Text(label, style=_STYLE.get(label.lower(), ""))
            more = f" (+{len(why) - TOP_REASONS} more)" if len(why) > TOP_REASONS else ""
            line.append(f" {r.tag} ({env}): "
                        + "; ".join(printable(w) for w in why[:TOP_REASONS]) + more)
            out.append(line)
    if len(rows) > MAX_TAGS_WITH_REASONS:
        out.append(Text(f"... and {len(rows) - MAX_TAGS_WITH_REASONS} more tags denied or "
                        f"undecided: every reason is in {FILENAME}", style="dim"))
    return out


def prepare_console() -> None:
    """Import now what printing the table imports on first use (rich's console, table
    and text: ~100M instructions), for a caller with a thread to spare meanwhile (an
    audit's rules thread while the tags are listed): not after the reports, where the
    run does nothing else."""
    import rich.console
    import rich.table
    import rich.text  # noqa: F401 - imported ahead


def print_summary(result: AuditResult, console: Console, written: list[Path]) -> None:
    """The table, the rows that could not be resolved, and where the reports are."""
    from rich.text import Text

    _print_table(result, console)
    for r in result.rows:
        if r.error:
            console.print(Text(f"ERROR {r.tag}: {printable(r.error)}", style="yellow"),
                          soft_wrap=True)
    for line in reason_lines(result):
        console.print(line, soft_wrap=True)
    if result.skipped:
        console.print(Text(f"skipped {len(result.skipped)} listed names that are not tags: "
                           + ", ".join(printable(t) for t in result.skipped[:5])))
    removed = sum(1 for r in result.rows if not r.cleanup.kept)
    kept_denied = sum(1 for r in result.rows if r.cleanup.kept and any(
        d.value == "deny" for d in r.decisions.values()))
    console.print(Text(f"cleanup keeps {len(result.rows) - removed} of {len(result.rows)} tags; "
                       f"{kept_denied} kept tag(s) denied in some environment"))
    for p in written:
        console.print(Text(f"  report: {p}"))

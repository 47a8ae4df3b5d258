"""``imggate-cluster.html``: the cluster audit for people, one section per namespace.

Each namespace is a section with a table of its containers (pod, container,
spec image, the reference judged, environment, decision, the reasons), and
any column sorts on a click (a few lines of script, no external file: the page
works offline and from an artifact viewer). Sections with a denial or an
undecided container come first. Every text from the cluster or a registry is
HTML-escaped; the page loads nothing from anywhere.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TextIO

from imggate.audit.cluster import ClusterResult, ContainerResult
from imggate.models import Decision

FILENAME = "imggate-cluster.html"
_ORDER = {Decision.DENY: 0, Decision.ERROR: 1, Decision.ALLOW: 2}
_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (o) { o.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    var i = th.cellIndex;
    rows.sort(function (a, b) {
      var x = a.cells[i].textContent, y = b.cells[i].textContent;
      return up ? x.localeCompare(y) : y.localeCompare(x);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left;
         vertical-align: top; word-break: break-all; }
th { cursor: pointer; background: #f3f3f3; }
.deny { color: #b00020; font-weight: bold; }
.error { color: #a36b00; font-weight: bold; }
.allow { color: #1b7f3b; }
"""


def _reasons(r: ContainerResult) -> str:
    parts = [f"{rule.rule}: {'; '.join(rule.messages[:2])}" for rule in r.verdict.violations]
    parts += [f"{rule.rule} (warn): {'; '.join(rule.messages[:1])}"
              for rule in r.verdict.warnings]
    if r.verdict.error:
        parts.append(f"not checked: {r.verdict.error}")
    if r.drift is not None:
        parts.append(f"image-drift: {'; '.join(r.drift.messages)}")
    return " | ".join(parts)


def render(result: ClusterResult) -> str:
    """The page (see the module docstring)."""
    import io

    buf = io.StringIO()
    _write(result, buf)
    return buf.getvalue()


def _write(result: ClusterResult, f: TextIO) -> None:
    """The page, written to ``f`` a row at a time (10,000 pods never make one string)."""
    e = html.escape
    # Each namespace's worst decision, in one pass; its rows are made again when written.
    worst_of: dict[str, int] = dict.fromkeys(result.namespaces, 3)
    for r in result.results:
        ns = r.row.namespace
        worst_of[ns] = min(worst_of.get(ns, 3), _ORDER[r.decision])

    def worst(ns: str) -> tuple[int, str]:
        return (worst_of[ns], ns)

    counts = result.counts
    out = f
    out.write("\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>imggate: what the cluster runs</title>", f"<style>{_STYLE}</style>",
           "</head><body>", "<h1>imggate audit --cluster</h1>",
           f"<p>{result.pods} pods, {len(result.results)} containers in "
           f"{len(result.namespaces)} namespaces: {counts[Decision.ALLOW]} allowed, "
           f"{counts[Decision.DENY]} denied, {counts[Decision.ERROR]} could not be decided."
           "</p>", "<nav><ul>"]) + "\n")
    ordered = sorted(worst_of, key=worst)
    for n, ns in enumerate(ordered):
        out.write(f'<li><a href="#ns-{n}">{e(ns)}</a></li>\n')
    out.write("</ul></nav>\n")
    for n, ns in enumerate(ordered):
        rows = sorted(result.results.in_namespace(ns), key=lambda r: (
            _ORDER[r.decision], r.row.pod, r.row.container))
        out.write(f'<section id="ns-{n}"><h2>{e(ns)}</h2>\n')
        if not rows:
            out.write("<p>No pod runs here.</p></section>\n")
            continue
        out.write('<table class="sortable"><thead><tr><th>Decision</th><th>Pod</th>'
                  "<th>Container</th><th>Spec image</th><th>Judged</th>"
                  "<th>Environment</th><th>Reasons</th></tr></thead><tbody>\n")
        for r in rows:
            d = r.decision.value
            out.write(f'<tr><td class="{d}">{d.upper()}</td><td>{e(r.row.pod)}</td>'
                      f"<td>{e(r.row.container)} ({e(r.row.kind)})</td>"
                      f"<td>{e(r.row.image)}</td><td>{e(r.judged)}</td>"
                      f"<td>{e(r.env)}</td><td>{e(_reasons(r))}</td></tr>\n")
        out.write("</tbody></table></section>\n")
    out.write(f"<script>{_SCRIPT}</script></body></html>\n")


def write(result: ClusterResult, directory: Path) -> Path:
    """Write ``imggate-cluster.html`` into ``directory``."""
    from imggate.errors import Error

    path = directory / FILENAME
    try:
        with path.open("w", encoding="utf-8") as f:
            _write(result, f)
    except OSError as e:
        raise Error(f"cannot write {path}: {e.strerror}") from None
    return path

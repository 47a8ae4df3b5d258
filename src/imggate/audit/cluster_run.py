"""Running ``imggate audit --cluster`` for the command: audit, reports, console, exit code.

The usual imggate reports (verdict JSON, HTML, JUnit, GitLab) are written for
the distinct images judged, plus ``imggate-cluster.json`` with one row per
container and ``imggate-cluster.html`` with one section per namespace; then
the PolicyReports are applied (or, with ``--dry-run``, printed as YAML on
stdout); then a console summary with the top reasons.
The exit code is ``check``'s: 1 when any container is denied, else 3 when any
could not be decided, else 0. Reports are applied whatever the decision, but
never from a run that could not read every pod (that raises before).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from imggate.audit.cluster import ClusterRequest, ClusterResult, ContainerResult
from imggate.audit.policyreport import ReportFormat
from imggate.errors import UsageError
from imggate.models import Decision, Mode
from imggate.text import printable

FILENAME = "imggate-cluster.json"


def _row(r: ContainerResult) -> dict[str, Any]:
    return {
        "namespace": r.row.namespace, "pod": r.row.pod, "container": r.row.container,
        "kind": r.row.kind, "image": r.row.image, "running": r.row.running,
        "judged": r.judged, "environment": r.env, "mapped_by": r.mapped_by,
        "decision": r.decision.value, "image_drift": r.drift is not None,
        "error": r.verdict.error, "note": r.row.note,
    }


def document(result: ClusterResult) -> dict[str, Any]:
    """``imggate-cluster.json``: every container, what it runs and its decision."""
    return {**_head(result), "rows": [_row(r) for r in result.results]}


def _head(result: ClusterResult) -> dict[str, Any]:
    return {
        "pods": result.pods,
        "containers": len(result.results),
        "namespaces": list(result.namespaces),
        "distinct_images": result.distinct_images,
        "registry_resolutions": result.resolutions,
        "verdict_cache": result.cache.document() if result.cache is not None else None,
        "seconds": dict(result.seconds),
        "exit_code": result.exit_code,
    }


def write_document(result: ClusterResult, out: Path) -> Path:
    """Write :func:`document` row by row (a row's dict lives only while it is written)."""
    path = out / FILENAME
    try:
        with path.open("w", encoding="utf-8") as f:
            head = json.dumps(_head(result), indent=2)
            f.write(head[:-2] + ',\n  "rows": [')
            for n, r in enumerate(result.results):
                f.write(("," if n else "") + "\n    " + json.dumps(_row(r)))
            f.write("\n  ]\n}\n")
    except OSError as e:
        from imggate.errors import Error

        raise Error(f"cannot write {path}: {e.strerror}") from None
    return path


SUMMARY = "imggate-cluster-summary.json"


def summary(result: ClusterResult) -> dict[str, Any]:
    """``imggate-cluster-summary.json``: containers per namespace and decision, and per
    violated enforced rule (what ``serve --audit-every`` exports as gauges)."""
    images: Counter[tuple[str, str]] = Counter()
    violations: Counter[str] = Counter()
    for r in result.results:
        images[(r.row.namespace, r.decision.value)] += 1
        for rule in {v.rule for v in r.verdict.violations}:
            violations[rule] += 1
        if r.drift is not None:
            violations[r.drift.rule] += 1
    return {"pods": result.pods, "containers": len(result.results),
            "exit_code": result.exit_code,
            "images": [{"namespace": ns, "decision": d, "count": n}
                       for (ns, d), n in sorted(images.items())],
            "violations": dict(sorted(violations.items()))}


def top_reasons(result: ClusterResult, n: int = 5) -> list[tuple[str, int]]:
    """The rules that deny or warn most containers, with how many."""
    seen: Counter[str] = Counter()
    for r in result.results:
        for rule in r.verdict.rules:
            if not rule.passed:
                mode = "denied" if rule.mode is Mode.ENFORCE else "warned"
                seen[f"{rule.rule} ({mode})"] += 1
        if r.verdict.error is not None:
            seen["evidence could not be gathered (error)"] += 1
        if r.drift is not None:
            seen["image-drift (denied)"] += 1
    return seen.most_common(n)


def summary_lines(result: ClusterResult) -> list[str]:
    """The console's summary of the cluster."""
    counts = result.counts
    lines = [f"{result.pods} pods, {len(result.results)} containers in "
             f"{len(result.namespaces)} namespaces; {result.distinct_images} distinct images "
             f"judged, {result.resolutions} registry resolutions",
             f"containers: {counts[Decision.ALLOW]} allowed, {counts[Decision.DENY]} denied, "
             f"{counts[Decision.ERROR]} could not be decided"]
    if result.cache is not None:
        lines.append(result.cache.line())
    reasons = top_reasons(result)
    if reasons:
        lines.append("top reasons: " + ", ".join(f"{why}: {k}" for why, k in reasons))
    for r in result.results:
        if r.decision is not Decision.ALLOW:
            why = r.verdict.error or "; ".join(
                m for rule in (*r.verdict.violations, *((r.drift,) if r.drift else ()))
                for m in rule.messages[:1])
            lines.append(printable(f"{r.decision.value.upper()} {r.row.where}: {r.judged}: "
                                   f"{why}"[:400]))
    return lines


def run_and_publish(request: ClusterRequest, out: Path, *, fmt: ReportFormat,
                    dry_run: bool, quiet: bool) -> int:
    """Audit the cluster, write the reports, apply or print the PolicyReports."""
    from imggate._aio import run
    from imggate.audit import cluster_html, policyreport
    from imggate.audit.cluster import run_cluster_audit
    from imggate.audit.pods import open_client
    from imggate.formats.outputs import write_outputs

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--output-dir {out}: cannot create it ({e.strerror})") from None
    result = run_cluster_audit(request)
    try:
        written = write_outputs(result.verdict, out, started=request.now)
        written.append(write_document(result, out))
        from imggate.formats.verdict_json import write_text

        written.append(write_text(out / SUMMARY, json.dumps(summary(result), indent=2) + "\n"))
        written.append(cluster_html.write(result, out))
        objects = policyreport.reports(result, request.now, fmt)
        if dry_run:
            policyreport.write_yaml(objects, sys.stdout)
        else:
            async def apply() -> policyreport.Applied:
                client = open_client(request.source)
                try:
                    return await policyreport.apply_reports(client, objects, fmt=fmt,
                                                            only=request.namespaces)
                finally:
                    await client.close()

            applied = run(apply())
            if not quiet:
                sys.stderr.write(f"imggate: {fmt.api[2]} {policyreport.REPORT_NAME} applied in "
                                 f"{len(applied.written)} namespace(s)"
                                 + (f", emptied in {len(applied.emptied)}" if applied.emptied
                                    else "") + "\n")
        if not quiet:
            out_stream = sys.stderr if dry_run else sys.stdout
            for line in summary_lines(result):
                out_stream.write(line + "\n")
            for p in written:
                out_stream.write(f"  report: {p}\n")
    finally:
        result.close()
    return result.exit_code

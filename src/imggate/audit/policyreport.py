"""PolicyReports from a cluster audit: one per namespace, applied with server-side apply.

The format is the Policy WG's ``wgpolicyk8s.io/v1alpha2`` ``PolicyReport``
(what Kyverno's background scan writes and its tools read), or with
``--report-format openreports`` the ``openreports.io/v1alpha1`` ``Report`` that
Kyverno moved to (same results, another group and kind).

Each container gets one result per rule that ran for the image it runs
(``pass``, ``fail`` for an enforced violation, ``warn`` for a warn-only one),
``error`` when evidence could not be gathered (the container's decision is
then "could not decide"), ``skip`` for an exempt namespace or image, and a
``fail`` for ``image-drift``. ``properties`` carry the container, the spec's
image, the reference judged, the digest, the environment and the container's
decision, so a reader can repeat it with ``imggate check``.

Every run applies each namespace's whole report with server-side apply (a
``PATCH`` of ``application/apply-patch+yaml`` under the field manager
``imggate``, forced): the API server replaces the results this manager owned,
so results of pods that are gone disappear and the object is updated in
place. A namespace whose report imggate wrote before and that has no pod left
gets an empty report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TextIO

from imggate.audit.cluster import DRIFT_RULE, EXEMPT_ENV, ClusterResult, ContainerResult
from imggate.audit.pods import api_failure
from imggate.models import Mode

#: The name of imggate's report in every namespace.
REPORT_NAME = "imggate"
FIELD_MANAGER = "imggate"
SOURCE = "imggate"
POLICY = "imggate"
MANAGED_BY = {"app.kubernetes.io/managed-by": "imggate"}
#: The longest message a result carries (the rest is in imggate's own reports).
MAX_MESSAGE = 1024
RESULTS = ("pass", "fail", "warn", "error", "skip")
#: Reports asked for per request when imggate's existing reports are listed.
REPORT_PAGE = 50

# How bad a failure of each rule is, in the report's severity words.
_SEVERITY = {"severity": "high", "severity.kev": "high", "signatures": "high",
             "attestations": "high", DRIFT_RULE: "high", "evidence": "high", "namespace": "medium",
             "registries": "medium", "tags.denied": "medium", "tags.digest-pinning": "medium",
             "tags.allowed": "medium", "report_binding": "medium"}


class ReportFormat(str, Enum):
    """Which report kind is written."""

    POLICYREPORT = "policyreport"
    OPENREPORTS = "openreports"

    @property
    def api(self) -> tuple[str, str, str, str]:
        """``(group, version, kind, plural)`` of the kind."""
        if self is ReportFormat.POLICYREPORT:
            return ("wgpolicyk8s.io", "v1alpha2", "PolicyReport", "policyreports")
        if self is ReportFormat.OPENREPORTS:
            return ("openreports.io", "v1alpha1", "Report", "reports")
        raise AssertionError(self)


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying the reports did."""

    written: tuple[str, ...]
    emptied: tuple[str, ...]


def _message(messages: Iterable[str]) -> str:
    text = "; ".join(messages)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def _result(r: ContainerResult, rule: str, result: str, message: str, *, scored: bool,
            when: datetime) -> dict[str, Any]:
    row = r.row
    props = {"container": row.container, "containerKind": row.kind, "image": row.image,
             "judged": r.judged, "environment": r.env, "decision": r.decision.value}
    if r.digest is not None:
        props["digest"] = r.digest
    return {
        "source": SOURCE,
        "policy": POLICY,
        "rule": rule,
        "result": result,
        # The schema's words: critical, high, medium, low, info.
        "severity": "info" if result == "skip" else _SEVERITY.get(rule, "low"),
        "scored": scored,
        "message": _message([message]) if message else "",
        "timestamp": {"seconds": int(when.timestamp()), "nanos": 0},
        "resources": [{"apiVersion": "v1", "kind": "Pod", "name": row.pod,
                       "namespace": row.namespace, "uid": row.uid}],
        "properties": props,
    }


def container_results(r: ContainerResult, when: datetime) -> list[dict[str, Any]]:
    """The report results of one container (see the module docstring)."""
    out = []
    iv = r.verdict
    for rule in iv.rules:
        if r.env == EXEMPT_ENV:
            kind = "skip"
        elif rule.passed:
            kind = "pass"
        else:
            kind = "fail" if rule.mode is Mode.ENFORCE else "warn"
        out.append(_result(r, rule.rule, kind, _message(rule.messages),
                           scored=rule.mode is Mode.ENFORCE, when=when))
    if iv.error is not None:
        out.append(_result(r, "evidence", "error", iv.error, scored=True, when=when))
    if r.drift is not None:
        out.append(_result(r, DRIFT_RULE, "fail", _message(r.drift.messages), scored=True,
                           when=when))
    return out


def report(namespace: str, results: Sequence[ContainerResult], when: datetime,
           fmt: ReportFormat = ReportFormat.POLICYREPORT) -> dict[str, Any]:
    """The report object of one namespace (``results``: its containers)."""
    group, version, kind, _ = fmt.api
    items = [x for r in sorted(
        results, key=lambda c: (c.row.pod, c.row.kind, c.row.container))
        for x in container_results(r, when)]
    summary = dict.fromkeys(RESULTS, 0)
    for x in items:
        summary[x["result"]] += 1
    return {
        "apiVersion": f"{group}/{version}",
        "kind": kind,
        "metadata": {"name": REPORT_NAME, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "summary": summary,
        "results": items,
    }


def reports(result: ClusterResult, when: datetime,
            fmt: ReportFormat = ReportFormat.POLICYREPORT) -> Iterator[dict[str, Any]]:
    """One report per namespace read (an empty one where no pod runs), made one at a time:
    a namespace's result objects are built when it is applied and dropped after, so the
    audit never holds every namespace's report at once."""
    for ns in sorted({*result.namespaces, *result.results.namespaces()}):
        yield report(ns, list(result.results.in_namespace(ns)), when, fmt)


def write_yaml(objects: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    """The reports as a YAML stream (``--dry-run``), written one by one."""
    from imggate._pyyaml import yaml

    for n, obj in enumerate(objects):
        if n:
            out.write("---\n")
        out.write(yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False))


def _resource(fmt: ReportFormat) -> Any:
    from lightkube.generic_resource import create_namespaced_resource

    group, version, kind, plural = fmt.api
    return create_namespaced_resource(group, version, kind, plural)


async def apply_reports(client: Any, objects: Iterable[Mapping[str, Any]], *,
                        fmt: ReportFormat = ReportFormat.POLICYREPORT,
                        only: Sequence[str] = ()) -> Applied:
    """Apply every report with server-side apply, then empty imggate's reports in
    namespaces that no longer have pods (all namespaces, or those of ``only``)."""
    import httpx2
    from lightkube import ApiError

    resource = _resource(fmt)
    written: list[str] = []
    for obj in objects:
        ns = obj["metadata"]["namespace"]
        try:
            await client.apply(resource(dict(obj)), namespace=ns, field_manager=FIELD_MANAGER,
                               force=True)
        except (ApiError, httpx2.HTTPError) as e:
            raise api_failure(e, f"applying {fmt.api[2]} {ns}/{REPORT_NAME}") from None
        written.append(ns)
    done = set(written)
    emptied: list[str] = []
    labels = dict(MANAGED_BY)
    try:
        stale = []
        for scope in only or ("*",):
            # A page at a time: every namespace's report, results and all, would otherwise
            # arrive as one response (tens of MB in a large cluster).
            async for old in client.list(resource, namespace=scope, labels=labels,
                                         chunk_size=REPORT_PAGE):
                ns = old.metadata.namespace if old.metadata is not None else None
                name = old.metadata.name if old.metadata is not None else None
                if ns and name == REPORT_NAME and ns not in done:
                    stale.append(ns)
        for ns in stale:
            empty = {"apiVersion": "/".join(fmt.api[:2]), "kind": fmt.api[2],
                     "metadata": {"name": REPORT_NAME, "namespace": ns, "labels": labels},
                     "summary": dict.fromkeys(RESULTS, 0), "results": []}
            await client.apply(resource(empty), namespace=ns, field_manager=FIELD_MANAGER,
                               force=True)
            emptied.append(ns)
    except (ApiError, httpx2.HTTPError) as e:
        raise api_failure(e, f"emptying imggate's {fmt.api[2]}s of namespaces without "
                             "pods") from None
    return Applied(tuple(written), tuple(emptied))

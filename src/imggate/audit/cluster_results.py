"""The containers of a cluster audit, made again from their spooled rows when asked for.

:class:`ContainerResults` is what :class:`~imggate.audit.cluster.ClusterResult` holds
instead of a tuple of every container: each container is one JSON line in a
:class:`~imggate.audit.spool.ContainerSpool` (:func:`record`), and its
:class:`~imggate.audit.cluster.ContainerResult` is made again from it on each pass
(:class:`Results`), a namespace at a time, with the verdicts of the distinct images, which
alone stay in memory. The reports read it a namespace at a time, so an audit's memory does
not grow with its pods beyond a page of them and one namespace's results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from sys import intern
from typing import TYPE_CHECKING, Any

from imggate import values
from imggate.audit.cluster import (
    ContainerResult,
    fixed_verdict,
    gated,
    plan_row,
    text_of,
)
from imggate.audit.pods import ContainerRow
from imggate.models import ImageVerdict

if TYPE_CHECKING:
    from imggate.admission.policies import PolicySet
    from imggate.audit.cluster_judge import Combo
    from imggate.audit.spool import ContainerSpool


class ContainerResults:
    """Every container's result, made when asked for, a namespace at a time.

    Each container is one record in a :class:`~imggate.audit.spool.ContainerSpool` (its
    row, and why its pull secrets could not be read); its :class:`ContainerResult` is made
    again from it on each pass, with the verdicts of the distinct images, which alone stay
    in memory. :meth:`listed` keeps results in memory instead (a handful, in tests).
    """

    def __init__(self, make: Callable[[list[Any]], ContainerResult] | None = None,
                 spool: ContainerSpool | None = None,
                 listed: Mapping[str, Sequence[ContainerResult]] | None = None) -> None:
        self._make = make
        self._spool = spool
        self._listed = listed or {}

    @classmethod
    def listed(cls, results: Iterable[ContainerResult]) -> ContainerResults:
        """Results held in memory, grouped by namespace."""
        by_ns: dict[str, list[ContainerResult]] = {}
        for r in results:
            by_ns.setdefault(r.row.namespace, []).append(r)
        return cls(listed=by_ns)

    def namespaces(self) -> list[str]:
        """The namespaces with a container, in the order read."""
        return self._spool.namespaces() if self._spool is not None else list(self._listed)

    def in_namespace(self, namespace: str) -> Iterator[ContainerResult]:
        """The containers of ``namespace``, in the order read."""
        if self._spool is None:
            yield from self._listed.get(namespace, ())
            return
        assert self._make is not None
        for record in self._spool.records(namespace):
            yield self._make(record)

    def __iter__(self) -> Iterator[ContainerResult]:
        for ns in self.namespaces():
            yield from self.in_namespace(ns)

    def __len__(self) -> int:
        if self._spool is not None:
            return len(self._spool)
        return sum(map(len, self._listed.values()))

    def close(self) -> None:
        """Remove the spool."""
        if self._spool is not None:
            self._spool.close()


def record(row: ContainerRow, why: str | None) -> list[Any]:
    return [row.namespace, row.pod, row.uid, row.container, row.kind, row.image, row.running,
            row.note, list(row.pull_secrets), row.account, why]


def row_of(record: list[Any]) -> tuple[ContainerRow, str | None]:
    ns, pod, uid, container, kind, image, running, note, pulls, account, why = record
    # One copy of each repeated string, as pod_rows keeps them.
    return ContainerRow(intern(ns), pod, uid, intern(container), kind, intern(image),
                        intern(running) if running else None, note,
                        tuple(map(intern, pulls)), intern(account)), why


class Results:
    """Makes each container's result from its record, and keeps the distinct verdicts
    (the images judged, and the fixed verdicts of containers not judged) for the reports."""

    def __init__(self, policies: PolicySet, judged: Mapping[Combo, ImageVerdict]) -> None:
        self._policies = policies
        self._judged = judged
        self.distinct: dict[tuple[str, str], ImageVerdict] = {}
        for (env, spec_text, text), iv in judged.items():
            # The same image run under another spec (a tag, a digest) has its own verdict.
            self.distinct[(env, text) if (env, text) not in self.distinct else
                          (env, f"{spec_text} running {text}")] = iv
        self.drifted: dict[tuple[str, str, str], ImageVerdict] = {}

    def make(self, record: list[Any]) -> ContainerResult:
        """The result of one spooled container."""
        from imggate.policy.decision import decide

        row, why = row_of(record)
        p = plan_row(self._policies, row)
        if why is not None:
            p = values.replace(p, why=why)
        text = text_of(p.judged) if p.judged is not None else p.row.image
        spec = text_of(p.spec) if p.spec is not None else text
        found = self._judged.get((p.env, spec, text)) if gated(p) else None
        if found is not None:
            iv = found
        else:
            # One verdict per distinct image and reason, however many pods share it.
            key = (p.env, text if p.why is None else f"{text}: {p.why}")
            iv = self.distinct.get(key) or self.distinct.setdefault(key, fixed_verdict(p))
        if p.drift is not None:
            drift_key = (p.env, p.row.image, p.row.running or "")
            if drift_key not in self.drifted:
                self.drifted[drift_key] = ImageVerdict(
                    reference=f"{p.row.image} running {p.row.running}", env=p.env,
                    decision=decide([p.drift]), rules=(p.drift,))
        return ContainerResult(p.row, p.env, p.mapped_by, text, iv, p.drift)

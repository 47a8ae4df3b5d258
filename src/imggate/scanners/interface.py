"""What every scanner adapter provides.

An adapter turns one already-decoded JSON document into a validated
:class:`~imggate.models.ScanReport` (:meth:`ReportParser.parse`) and says
whether a document looks like its format (:meth:`ReportParser.detect`).
Adapters never do I/O: :mod:`imggate.scanners.detect` reads files and picks
the adapter; :mod:`imggate.scanners.trivy_runner` runs Trivy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from imggate.models import Digest, Finding, ScanReport
from imggate.scanners._doc import Invalid, report_error


class ReportParser(ABC):
    """Parses one report format."""

    #: The name users pass to ``--kind`` (``trivy``, ``grype``...).
    kind: ClassVar[str]
    #: A human name for messages (``Trivy JSON``).
    title: ClassVar[str]

    @abstractmethod
    def detect(self, doc: Any) -> bool:
        """Whether ``doc`` (decoded JSON) is in this format. Cheap; never raises."""

    @abstractmethod
    def _parse(self, doc: Any, source: str) -> ScanReport:
        """Parse ``doc``; raise :class:`~imggate.scanners._doc.Invalid` on bad input."""

    def parse(self, doc: Any, *, source: str) -> ScanReport:
        """Parse ``doc`` read from ``source``; :class:`~imggate.errors.ReportError` if malformed."""
        try:
            return self._parse(doc, source)
        except Invalid as e:
            raise report_error(source, e, self.title) from None


def parse_digests(texts: Iterable[str]) -> tuple[Digest, ...]:
    """Digests named in ``texts`` (``sha256:…`` or ``name@sha256:…``), without repeats.

    A string that is not a well-formed digest (reporters redact them, e.g.
    ``sha256:07a3eb7aaaa…`` with too few digits) is skipped rather than
    failing the report: it cannot bind the report to any image, which is
    the same as not naming one.
    """
    out: dict[Digest, None] = {}
    for text in texts:
        _, _, tail = text.rpartition("@")
        try:
            out[Digest.parse(tail.strip())] = None
        except ValueError:
            continue
    return tuple(out)


def dedupe(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """One finding per (id, package, version) within one report, first kept.

    Scanners repeat an entry when the same package sits at two paths; the
    repeats add nothing a gate needs.
    """
    seen: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        seen.setdefault((f.id, f.package, f.version), f)
    return tuple(seen.values())

"""Where the webhook finds scanner evidence for a digest. Admission never runs a scanner.

An :class:`EvidenceSource` gives the reports it holds for one resolved
image: :class:`ReportsDir` (``--reports-dir``), reports named by digest. Any
other store of reports is a class with the same method, added to the tuple
the server builds (:func:`sources_from_options`), with nothing else to
change. Signed vulnerability attestations in the registry need no source
here: the gate's own evidence step (:func:`imggate.gate.image_evidence`),
which the webhook calls, reads them as ``severity.evidence`` says.

No source means no report, and an environment whose rules require one
denies the image as "not scanned".
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from imggate.models import Digest, ResolvedImage, ScanReport

if TYPE_CHECKING:
    from imggate.registry.client import RegistryClient

#: A reports directory entry larger than this is not read (scanner reports of big images
#: reach tens of MB; more is not a report).
MAX_REPORT_FILE_BYTES = 256 * 1024 * 1024


class EvidenceSource(Protocol):
    """Something that holds scanner reports for images, found by digest."""

    async def reports_for(self, image: ResolvedImage,
                          client: RegistryClient) -> tuple[ScanReport, ...]:
        """Every report this source holds for ``image``; raises an imggate ``Error`` when it
        cannot be read (the review is then denied, never allowed)."""
        ...


def _names(digest: Digest) -> tuple[str, ...]:
    # ':' is not portable in file names (and not allowed in a ConfigMap key): sha256-<hex>.
    return (digest.tag_form, str(digest))


class ReportsDir:
    """Reports in a directory, named by the digest of the image they are about.

    For an image (index digest, platform manifest digest), every regular
    file ``<algo>-<hex>*.json`` and every file in a directory ``<algo>-<hex>/``
    is read as a scanner report of any supported kind. The report must still
    name the image (report binding), as in ``imggate check``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def paths_for(self, image: ResolvedImage) -> tuple[Path, ...]:
        """The report files for ``image``, sorted (regular files only, symlinks resolved)."""
        found: list[Path] = []
        for digest in dict.fromkeys((image.digest, image.manifest_digest)):
            for name in _names(digest):
                folder = self.directory / name
                if folder.is_dir():
                    found += sorted(p for p in folder.iterdir() if p.is_file())
                found += sorted(p for p in self.directory.glob(f"{name}*.json") if p.is_file())
        return tuple(dict.fromkeys(found))

    def _load(self, image: ResolvedImage) -> tuple[ScanReport, ...]:
        from imggate.scanners.detect import load_report

        return tuple(load_report(str(p)) for p in self.paths_for(image))

    async def reports_for(self, image: ResolvedImage,
                          client: RegistryClient) -> tuple[ScanReport, ...]:
        """Every report for ``image`` (parsed in a thread: large reports take a while)."""
        if not self.paths_for(image):
            return ()
        return await asyncio.to_thread(self._load, image)


def sources_from_options(reports_dir: Path | None) -> tuple[EvidenceSource, ...]:
    """The evidence sources ``imggate serve`` uses, from its options."""
    sources: list[EvidenceSource] = []
    if reports_dir is not None:
        sources.append(ReportsDir(reports_dir))
    return tuple(sources)

"""OCI image layout directories as an offline image source.

What ``skopeo copy … oci:DIR``, umoci, buildah, kaniko and ``cosign save``
write: ``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>``. Every blob
read is hashed and compared with its name before it is parsed, exactly as
for a registry: a layout on disk is no more trusted than a registry. Every
file is read only if it is a regular file under its size cap (a blob linked
to ``/dev/zero`` or a FIFO is refused, not read forever; see ``_files``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from imggate._files import FileRefused, read_file
from imggate.errors import DigestMismatch, LayoutError, NotFound
from imggate.models import Digest
from imggate.registry.interface import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    Manifest,
    Repository,
    json_problem,
)

REF_NAME = "org.opencontainers.image.ref.name"
# cosign save marks what each top-level entry is instead of naming it.
_COSIGN_KIND = "kind"
_COSIGN_IMAGE_KINDS = {"dev.cosignproject.cosign/image", "dev.cosignproject.cosign/imageIndex"}
_COSIGN_TAG_KINDS = {
    ".sig": "dev.cosignproject.cosign/sigs",
    ".att": "dev.cosignproject.cosign/atts",
}
#: ``oci-layout`` holds one short JSON object.
_MAX_MARKER_BYTES = 64 * 1024
_COSIGN_TAG = re.compile(r"sha256-[a-f0-9]{64}\.(sig|att)")  # fullmatch: no final "\n"


class OciLayout:
    """An OCI image layout directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._index: tuple[Descriptor, ...] | None = None

    def repository(self) -> LayoutRepository:
        """The layout as a :class:`Repository`."""
        return LayoutRepository(self)

    def index(self) -> tuple[Descriptor, ...]:
        """The entries of ``index.json`` (validated once)."""
        if self._index is None:
            self._index = self._load_index()
        return self._index

    def _load_index(self) -> tuple[Descriptor, ...]:
        where = f"oci:{self.path}"
        try:
            is_dir = self.path.is_dir()
        except OSError as e:  # a name too long (ENAMETOOLONG), a loop of links...
            raise LayoutError(f"{where}: unusable path: {e.strerror or e}") from None
        if not is_dir:
            raise LayoutError(f"{where}: not a directory")
        try:
            layout = json.loads(self._read("oci-layout", _MAX_MARKER_BYTES))
        except FileNotFoundError:
            raise LayoutError(f"{where}: no oci-layout file: not an OCI image layout") from None
        except (ValueError, RecursionError) as e:
            raise LayoutError(f"{where}/oci-layout: not JSON ({json_problem(e)})") from None
        if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
            raise LayoutError(f"{where}/oci-layout: imageLayoutVersion missing")
        try:
            raw = self._read("index.json", MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise LayoutError(f"{where}/index.json: missing: not an OCI image layout") from None
        try:
            index = Manifest.parse(raw, Digest.of(raw), None, f"{where}/index.json")
            return index.manifests
        except ValueError as e:
            raise LayoutError(str(e)) from None

    def _read(self, name: str, limit: int) -> bytes:
        """``name`` in the layout: a regular file of at most ``limit`` bytes, else LayoutError.

        ``FileNotFoundError`` propagates for the caller to say what is missing.
        """
        try:
            return read_file(self.path / name, limit)
        except FileRefused as e:
            raise LayoutError(f"oci:{self.path}/{name}: refused: {e}") from None
        except FileNotFoundError:
            raise
        except OSError as e:
            raise LayoutError(f"oci:{self.path}/{name}: unreadable: {e.strerror or e}") from None

    def read_blob(self, digest: Digest, max_size: int) -> bytes:
        """Read and verify one blob (a regular file of at most ``max_size`` bytes)."""
        try:
            data = self._read(f"blobs/{digest.algorithm}/{digest.hex}", max_size)
        except FileNotFoundError:
            raise NotFound(f"oci:{self.path}: blob {digest} is not in the layout") from None
        if not digest.matches(data):
            raise DigestMismatch(
                f"oci:{self.path}: blob {digest} does not match its digest "
                f"(content hashes to {Digest.of(data, digest.algorithm)}): refusing it")
        return data


class LayoutRepository(Repository):
    """:class:`Repository` over an :class:`OciLayout`."""

    def __init__(self, layout: OciLayout) -> None:
        self.layout = layout
        self.name = f"oci:{layout.path}"

    async def resolve(self, reference: str | Digest) -> Manifest:
        """Resolve ``reference``; ``""`` means the layout's only image."""
        if isinstance(reference, Digest):
            return await self.manifest(reference)
        found = await self.try_resolve_tag(reference) if reference else self._default()
        if found is None:
            raise NotFound(f"{self.name}: no image tagged {reference!r} "
                           f"(tags: {', '.join(self._tags()) or 'none'})")
        return found

    def _default(self) -> Manifest:
        entries = self.layout.index()
        images = [d for d in entries if d.annotations.get(_COSIGN_KIND) in _COSIGN_IMAGE_KINDS]
        if not images:
            images = [d for d in entries if _COSIGN_KIND not in d.annotations]
        if len(images) != 1:
            raise LayoutError(
                f"{self.name}: holds {len(images)} images; name one with "
                f"oci:PATH:TAG or oci:PATH@DIGEST (tags: {', '.join(self._tags()) or 'none'})")
        return self._manifest_sync(images[0].digest, images[0].media_type)

    def _tags(self) -> tuple[str, ...]:
        return tuple(d.annotations[REF_NAME] for d in self.layout.index()
                     if REF_NAME in d.annotations)

    async def try_resolve_tag(self, tag: str) -> Manifest | None:
        """The manifest named ``tag`` in index.json (cosign's ``kind`` for .sig/.att)."""
        entries = self.layout.index()
        for d in entries:
            if d.annotations.get(REF_NAME) == tag:
                return self._manifest_sync(d.digest, d.media_type)
        m = _COSIGN_TAG.fullmatch(tag)
        if m:
            kind = _COSIGN_TAG_KINDS["." + m.group(1)]
            hits = [d for d in entries if d.annotations.get(_COSIGN_KIND) == kind]
            if hits:
                return self._manifest_sync(hits[0].digest, hits[0].media_type)
        return None

    async def manifest(self, digest: Digest) -> Manifest:
        """A verified manifest by digest."""
        return self._manifest_sync(digest, None)

    def _manifest_sync(self, digest: Digest, media_type: str | None) -> Manifest:
        raw = self.layout.read_blob(digest, MAX_MANIFEST_BYTES)
        try:
            return Manifest.parse(raw, digest, media_type, f"{self.name}@{digest}")
        except ValueError as e:
            raise LayoutError(str(e)) from None

    async def blob(self, digest: Digest, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        """A verified blob by digest."""
        return self.layout.read_blob(digest, max_size)

    async def tags(self) -> tuple[str, ...]:
        """Every ``org.opencontainers.image.ref.name`` in index.json."""
        return self._tags()

    async def referrers(
        self, digest: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...]:
        """Manifests in the layout whose ``subject`` is ``digest``."""
        out = []
        for d in self.layout.index():
            if d.media_type.endswith("index.v1+json") and d.digest == digest:
                continue
            try:
                m = self._manifest_sync(d.digest, d.media_type)
            except NotFound:
                continue
            if m.subject is not None and m.subject.digest == digest:
                at = m.artifact_type
                if artifact_type is None or at == artifact_type:
                    out.append(Descriptor(d.media_type, d.digest, d.size,
                                          dict(m.annotations), at))
        return tuple(out)

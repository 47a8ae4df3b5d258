"""Find an image's signatures, attestations and Sigstore bundles, fetching each once.

Where cosign puts them:

* ``<repo>:sha256-<hex>.sig`` / ``.att``: an OCI manifest whose layers are the
  signatures (simple-signing payloads) or attestations (DSSE envelopes). The
  repository may be another one (``COSIGN_REPOSITORY``,
  ``--signature-repository``); an OCI layout written by ``cosign save`` marks
  them with a ``kind`` annotation, which the layout source maps to these tags.
* OCI 1.1 referrers of the image with artifact type
  ``application/vnd.dev.sigstore.bundle.v0.3+json`` (cosign v3's default), via
  the referrers API or its ``sha256-<hex>`` tag fallback (the registry
  client's concern).

Every manifest and payload blob is fetched once per discovery, whatever the
number of trust anchors, and layers that share a payload blob share the fetch.
A blob that is missing, too large or does not match its digest becomes an
:class:`Attachment` with an ``error`` (a failed check), never a crash; a
registry that cannot answer at all is a :class:`SignatureError` (exit 3).
"""

from __future__ import annotations

from collections.abc import Iterable

from imggate.errors import DigestMismatch, LayoutError, NotFound, RegistryError, SignatureError
from imggate.models import Digest
from imggate.registry.interface import Descriptor, Manifest, Repository
from imggate.signatures.interface import (
    BUNDLE_MEDIA_TYPE,
    DSSE_MEDIA_TYPE,
    SIMPLESIGNING_MEDIA_TYPE,
    Attachment,
    AttachmentKind,
    TrustConfig,
)

#: Largest payload fetched per attachment kind; a bigger layer is refused unread.
MAX_BLOB = {
    AttachmentKind.SIGNATURE: 1024 * 1024,
    AttachmentKind.ATTESTATION: 16 * 1024 * 1024,
    AttachmentKind.BUNDLE: 16 * 1024 * 1024,
}
#: Most layers read from one signature manifest (or referrer).
MAX_LAYERS = 256
_EXPECTED_TYPE = {
    AttachmentKind.SIGNATURE: SIMPLESIGNING_MEDIA_TYPE,
    AttachmentKind.ATTESTATION: DSSE_MEDIA_TYPE,
    AttachmentKind.BUNDLE: BUNDLE_MEDIA_TYPE,
}


def _unavailable(repo: Repository, subject: Digest, e: RegistryError | LayoutError) -> \
        SignatureError:
    return SignatureError(f"could not fetch signatures of {subject} from {repo.name}: "
                          f"{e.message}")


class _BlobCache:
    """Payload blobs by digest: bytes, or the reason they cannot be used."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.items: dict[Digest, bytes | str] = {}
        self.fetches = 0

    async def get(self, desc: Descriptor, limit: int) -> bytes | str:
        if desc.size > limit:
            # Refuse before downloading: a 50 MB "signature" is not a signature.
            return f"layer is {desc.size} bytes, over the {limit} byte limit for its kind"
        if desc.digest not in self.items:
            self.fetches += 1
            try:
                self.items[desc.digest] = await self.repo.blob(desc.digest, max_size=limit)
            except DigestMismatch:
                self.items[desc.digest] = f"payload blob does not match its digest {desc.digest}"
            except NotFound:
                self.items[desc.digest] = f"payload blob {desc.digest} is missing"
        return self.items[desc.digest]


async def _layers(kind: AttachmentKind, manifest: Manifest, where: str, subject: Digest,
                  blobs: _BlobCache, wanted: tuple[str, ...] = ()) -> list[Attachment]:
    layers = manifest.layers
    if len(layers) > MAX_LAYERS:
        # Each layer costs a fetch and a verification per anchor: refuse a flood.
        return [Attachment(kind, where, subject, manifest.media_type, {}, None,
                           f"{len(layers)} layers, over the limit of {MAX_LAYERS}")]
    out = []
    for i, layer in enumerate(layers):
        loc = f"{where} layers[{i}]"
        if layer.media_type != _EXPECTED_TYPE[kind]:
            # Other attachment types share these manifests; they are not ours to judge.
            out.append(Attachment(kind, loc, subject, layer.media_type, layer.annotations,
                                  None, f"not a {kind.value} layer (mediaType "
                                        f"{layer.media_type[:80]!r}): ignored", layer.digest))
            continue
        claimed = layer.annotations.get("predicateType")
        if (kind is AttachmentKind.ATTESTATION and wanted and claimed is not None
                and claimed not in wanted):
            # The annotation is unsigned, so it may only ever save a fetch (an SBOM can
            # be megabytes), never admit anything: skipped layers are failed checks.
            out.append(Attachment(kind, loc, subject, layer.media_type, layer.annotations,
                                  None, f"predicate type {claimed[:120]} (layer annotation) "
                                        "was not requested: not fetched", layer.digest))
            continue
        got = await blobs.get(layer, MAX_BLOB[kind])
        payload, error = (got, None) if isinstance(got, bytes) else (None, got)
        out.append(Attachment(kind, loc, subject, layer.media_type, layer.annotations,
                              payload, error, layer.digest))
    return out


async def _tagged(kind: AttachmentKind, suffix: str, sig_repo: Repository, subject: Digest,
                  blobs: _BlobCache, wanted: tuple[str, ...] = ()) -> list[Attachment]:
    tag = f"{subject.tag_form}.{suffix}"
    where = f"{sig_repo.name}:{tag}"
    try:
        manifest = await sig_repo.try_resolve_tag(tag)
    except DigestMismatch:
        return [Attachment(kind, where, subject, "", {}, None,
                           "signature manifest does not match its digest")]
    except NotFound:
        return []
    if manifest is None:
        return []
    if manifest.is_index:
        return [Attachment(kind, where, subject, manifest.media_type, {}, None,
                           "signature tag holds an index, not a manifest")]
    return await _layers(kind, manifest, where, subject, blobs, wanted)


async def _bundles(repo: Repository, subject: Digest, blobs: _BlobCache) -> list[Attachment]:
    kind = AttachmentKind.BUNDLE
    out: list[Attachment] = []
    try:
        refs = await repo.referrers(subject, BUNDLE_MEDIA_TYPE)
    except NotFound:
        return []
    for desc in refs:
        if desc.artifact_type not in (None, BUNDLE_MEDIA_TYPE):
            continue
        where = f"{repo.name}@{desc.digest} (referrer)"
        try:
            manifest = await repo.manifest(desc.digest)
        except (DigestMismatch, NotFound) as e:
            out.append(Attachment(kind, where, subject, desc.media_type, {}, None,
                                  f"referrer manifest unusable: {e.message}"))
            continue
        if manifest.is_index or (manifest.subject is not None
                                 and manifest.subject.digest != subject):
            out.append(Attachment(kind, where, subject, manifest.media_type, {}, None,
                                  "referrer manifest does not refer to this image"))
            continue
        out.extend(await _layers(kind, manifest, where, subject, blobs))
    return out


async def discover(repo: Repository, subject: Digest, trust: TrustConfig, *,
                   signature_repo: Repository | None = None) -> tuple[Attachment, ...]:
    """Every attachment of ``subject`` that ``trust`` asks about, payloads fetched.

    ``signature_repo`` is where ``.sig``/``.att``/referrers live when not beside
    the image (cosign's ``COSIGN_REPOSITORY``).
    """
    sig_repo = signature_repo or repo
    blobs = _BlobCache(sig_repo)
    found: list[Attachment] = []
    try:
        if trust.check_signatures:
            found += await _tagged(AttachmentKind.SIGNATURE, "sig", sig_repo, subject, blobs)
        if trust.check_attestations:
            found += await _tagged(AttachmentKind.ATTESTATION, "att", sig_repo, subject, blobs,
                                   trust.attestation_types)
        # Bundles are verified against keys and keyless identities only: with
        # neither, asking the registry for referrers could not change the outcome.
        if trust.check_bundles and (trust.identities or trust.keys):
            found += await _bundles(sig_repo, subject, blobs)
    except (RegistryError, LayoutError) as e:
        raise _unavailable(sig_repo, subject, e) from e
    return tuple(found)


def describe(attachments: Iterable[Attachment]) -> str:
    """A short count for logs: ``2 signature, 1 bundle``."""
    counts: dict[str, int] = {}
    for a in attachments:
        counts[a.kind.value] = counts.get(a.kind.value, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"

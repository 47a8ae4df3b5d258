"""Find an image's signatures, attestations and Sigstore bundles, fetching each once.

Where cosign puts them:

* ``<repo>:sha256-<hex>.sig`` / ``.att``: an OCI manifest whose layers are the
  signatures (simple-signing payloads) or attestations (DSSE envelopes). The
  repository may be another one (``COSIGN_REPOSITORY``,
  ``--signature-repository``); an OCI layout written by ``cosign save`` marks
  them with a ``kind`` annotation, which the layout source maps to these tags.
* OCI 1.1 referrers of the image (cosign v3's bundles, GitHub's
  ``actions/attest-build-provenance``, cosign's ``oci-1-1`` mode), via the
  referrers API or its ``sha256-<hex>`` tag fallback (the registry client's
  concern).

A referrer is classified by its own content, never by the label its index
entry carries: the manifest's ``artifactType``, else its config media type,
else its layers' media types (Sigstore bundle, DSSE envelope, simple-signing).
GHCR's fallback indexes say ``application/vnd.oci.empty.v1+json`` for every
entry (cosign#4641), and a fallback index is a tag anyone with push access can
rewrite, so its labels neither hide nor promote anything. Annotations
(``predicateType`` on a ``.att`` layer, ``dev.sigstore.bundle.predicateType``
on a referrer) are unsigned too: what an attestation is, is read from its
verified statement only.

Every manifest and payload blob is fetched once per discovery, whatever the
number of trust anchors, and layers that share a payload blob share the fetch.
A blob that is missing, too large or does not match its digest becomes an
:class:`Attachment` with an ``error`` (a failed check), never a crash; a
registry that cannot answer at all is a :class:`SignatureError` (exit 3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from imggate._aio import settle, settled
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
#: Most referrer manifests read for one image (each costs a fetch).
MAX_REFERRERS = 128
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
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
    """Payload blobs by digest: bytes, or the reason they cannot be used. The places are
    read at once: a blob two of them name is fetched once, the second waiting for the
    first's answer.

    A blob is used only when it is as long as the descriptor naming it says (as the OCI
    image spec requires): the limit each kind of layer has is checked against that
    size before the fetch, so a blob a larger kind fetched first (an ``.att`` layer's
    16 MiB) never reaches a layer with a smaller one (a ``.sig`` layer's 1 MiB) under
    a descriptor that understates its size.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.items: dict[Digest, asyncio.Future[bytes | str]] = {}

    async def get(self, desc: Descriptor, limit: int) -> bytes | str:
        if desc.size > limit:
            # Refuse before downloading: a 50 MB "signature" is not a signature.
            return f"layer is {desc.size} bytes, over the {limit} byte limit for its kind"
        fetching = self.items.get(desc.digest)
        if fetching is None:
            fetching = self.items[desc.digest] = asyncio.ensure_future(
                self._fetch(desc.digest, limit))
        # Shielded: a place stopped (its discovery failing elsewhere) leaves the fetch to
        # the others; :func:`discover` settles what is left when it ends.
        got = await asyncio.shield(fetching)
        if isinstance(got, bytes) and len(got) != desc.size:
            return (f"payload blob {desc.digest} is {len(got)} bytes where its descriptor "
                    f"says {desc.size}")
        return got

    async def _fetch(self, digest: Digest, limit: int) -> bytes | str:
        try:
            return await self.repo.blob(digest, max_size=limit)
        except DigestMismatch:
            return f"payload blob does not match its digest {digest}"
        except NotFound:
            return f"payload blob {digest} is missing"

    def settle(self) -> None:
        """Stop the fetches nobody waits for any more (their outcome taken)."""
        for fetching in self.items.values():
            settle(fetching)


async def _layers(kind: AttachmentKind, manifest: Manifest, where: str, subject: Digest,
                  blobs: _BlobCache) -> list[Attachment]:
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
        got = await blobs.get(layer, MAX_BLOB[kind])
        payload, error = (got, None) if isinstance(got, bytes) else (None, got)
        out.append(Attachment(kind, loc, subject, layer.media_type, layer.annotations,
                              payload, error, layer.digest))
    return out


#: What a tag lookup answers when the manifest's bytes do not match their digest.
_MISMATCH = "signature manifest does not match its digest"


async def _look_up_tag(sig_repo: Repository, subject: Digest, suffix: str
                       ) -> Manifest | str | None:
    """The manifest behind ``subject``'s ``.sig``/``.att`` tag; why it cannot be used (its
    bytes do not match their digest: a failed check, not an unreachable registry);
    ``None`` when there is none."""
    try:
        return await sig_repo.try_resolve_tag(f"{subject.tag_form}.{suffix}")
    except DigestMismatch:
        return _MISMATCH
    except NotFound:
        return None


async def _tagged(kind: AttachmentKind, suffix: str, sig_repo: Repository, subject: Digest,
                  manifest: Manifest | str | None, blobs: _BlobCache) -> list[Attachment]:
    where = f"{sig_repo.name}:{subject.tag_form}.{suffix}"
    if isinstance(manifest, str):
        return [Attachment(kind, where, subject, "", {}, None, manifest)]
    if manifest is None:
        return []
    if manifest.is_index:
        return [Attachment(kind, where, subject, manifest.media_type, {}, None,
                           "signature tag holds an index, not a manifest")]
    return await _layers(kind, manifest, where, subject, blobs)


def media_kind(media_type: str | None) -> AttachmentKind | None:
    """The attachment kind a media type names (bundle, DSSE, simple-signing), else ``None``.

    Bundles are recognised by prefix: v0.1 to v0.3 and the ``+json;version=`` spelling.
    """
    if not media_type:
        return None
    base = media_type.split(";", 1)[0].strip().lower()
    if base.startswith(BUNDLE_MEDIA_PREFIX):
        return AttachmentKind.BUNDLE
    if base == DSSE_MEDIA_TYPE:
        return AttachmentKind.ATTESTATION
    if base == SIMPLESIGNING_MEDIA_TYPE:
        return AttachmentKind.SIGNATURE
    return None


def classify(manifest: Manifest) -> AttachmentKind | None:
    """What a referrer manifest holds, from its content: ``artifactType``, else the config
    media type, else the layers' media types; ``None`` when it is none of imggate's kinds."""
    at = manifest.data.get("artifactType")
    kind = media_kind(at if isinstance(at, str) and at != EMPTY_MEDIA_TYPE else None)
    if kind is None and manifest.config is not None:
        kind = media_kind(manifest.config.media_type)
    if kind is None:
        kinds = [k for k in (media_kind(x.media_type) for x in manifest.layers) if k]
        kind = kinds[0] if kinds else None
    return kind


def _wanted(trust: TrustConfig) -> frozenset[AttachmentKind]:
    out = {AttachmentKind.BUNDLE}
    if trust.check_signatures:
        out.add(AttachmentKind.SIGNATURE)
    if trust.check_attestations:
        out.add(AttachmentKind.ATTESTATION)
    return frozenset(out)


def _order(desc: Descriptor) -> int:
    # Entries labelled as ours (or not labelled) first, so a flood of other artifacts cannot
    # push them past the limit; the label only orders the reading, it never skips one.
    at = desc.artifact_type
    return 0 if not at or at == EMPTY_MEDIA_TYPE or media_kind(at) is not None else 1


async def _look_up_referrers(repo: Repository, subject: Digest) -> Sequence[Descriptor]:
    """``subject``'s referrers (the API, else the fallback tag); none when there are none."""
    try:
        return await repo.referrers(subject)
    except NotFound:
        return ()


async def _referrers(repo: Repository, subject: Digest, refs: Sequence[Descriptor],
                     blobs: _BlobCache, seen: set[Digest],
                     wanted: frozenset[AttachmentKind]) -> list[Attachment]:
    out: list[Attachment] = []
    unique = list({d.digest: d for d in refs if d.digest not in seen}.values())
    unique.sort(key=_order)
    if len(unique) > MAX_REFERRERS:
        out.append(Attachment(AttachmentKind.BUNDLE, f"{repo.name} referrers of {subject}",
                              subject, "", {}, None,
                              f"{len(unique)} referrers, over the limit of {MAX_REFERRERS}: "
                              f"{len(unique) - MAX_REFERRERS} not read"))
        unique = unique[:MAX_REFERRERS]
    # Each referrer is a manifest and then its payloads: read at once, put together in the
    # order of the list, so that N referrers cost two round trips, not 2N.
    read = await asyncio.gather(*(_referrer(repo, subject, d, blobs, wanted) for d in unique),
                                return_exceptions=True)
    for one in read:
        out += settled(one)
    return out


async def _referrer(repo: Repository, subject: Digest, desc: Descriptor, blobs: _BlobCache,
                    wanted: frozenset[AttachmentKind]) -> list[Attachment]:
    """The attachments of one referrer manifest that ``wanted`` asks about."""
    where = f"{repo.name}@{desc.digest} (referrer)"
    try:
        manifest = await repo.manifest(desc.digest)
    except (DigestMismatch, NotFound) as e:
        return [Attachment(AttachmentKind.BUNDLE, where, subject, desc.media_type, {},
                           None, f"referrer manifest unusable: {e.message}")]
    if manifest.is_index or (manifest.subject is not None
                             and manifest.subject.digest != subject):
        return [Attachment(AttachmentKind.BUNDLE, where, subject, manifest.media_type,
                           {}, None, "referrer manifest does not refer to this image")]
    kind = classify(manifest)
    if kind is None:
        return []  # an SBOM or other artifact attached as such: nothing signed to check
    layers = manifest.layers
    if len(layers) > MAX_LAYERS:
        return [Attachment(kind, where, subject, manifest.media_type, {}, None,
                           f"{len(layers)} layers, over the limit of {MAX_LAYERS}")]
    out: list[Attachment] = []
    for i, layer in enumerate(layers):
        # A layer says what it is; a generic one takes the manifest's kind.
        lkind = media_kind(layer.media_type) or kind
        if lkind not in wanted:
            continue
        media = layer.media_type if media_kind(layer.media_type) else _EXPECTED_TYPE[lkind]
        got = await blobs.get(layer, MAX_BLOB[lkind])
        payload, error = (got, None) if isinstance(got, bytes) else (None, got)
        out.append(Attachment(lkind, f"{where} layers[{i}]", subject, media,
                              layer.annotations, payload, error, layer.digest))
    return out


async def discover(repo: Repository, subject: Digest, trust: TrustConfig, *,
                   signature_repo: Repository | None = None) -> tuple[Attachment, ...]:
    """Every attachment of ``subject`` that ``trust`` asks about, payloads fetched.

    ``signature_repo`` is where ``.sig``/``.att``/referrers live when not beside
    the image (cosign's ``COSIGN_REPOSITORY``).
    """
    sig_repo = signature_repo or repo
    blobs = _BlobCache(sig_repo)
    # Bundles are verified against keys and keyless identities only: with neither,
    # asking the registry for referrers could not change the outcome.
    bundles = trust.check_bundles and bool(trust.identities or trust.keys)
    # The three places are read at once, each as soon as its lookup answers (each lookup
    # and each fetch is a round trip, and most images have nothing in two of them): a
    # .sig tag's payload is fetched while the referrers' fallback tag is still asked for.
    # What they hold is put together in a fixed order, so that the attachments and their
    # de-duplication do not depend on which answered first.
    sig = asyncio.ensure_future(_look_up_tag(sig_repo, subject, "sig")
                                if trust.check_signatures else _none())
    att = asyncio.ensure_future(_look_up_tag(sig_repo, subject, "att")
                                if trust.check_attestations else _none())

    async def tagged(kind: AttachmentKind, suffix: str,
                     looking: asyncio.Future[Manifest | str | None]) -> list[Attachment]:
        return await _tagged(kind, suffix, sig_repo, subject, await looking, blobs)

    async def referred() -> list[Attachment]:
        refs = await _look_up_referrers(sig_repo, subject) if bundles else ()
        if not refs:
            return []
        # A manifest a tag holds is read there, not again as a referrer (cosign's
        # oci-1-1 mode puts one manifest in both places).
        seen = {m.digest for m in await asyncio.gather(sig, att)
                if isinstance(m, Manifest) and not m.is_index}
        return await _referrers(sig_repo, subject, refs, blobs, seen, _wanted(trust))

    places = [asyncio.ensure_future(tagged(AttachmentKind.SIGNATURE, "sig", sig)),
              asyncio.ensure_future(tagged(AttachmentKind.ATTESTATION, "att", att)),
              asyncio.ensure_future(referred())]
    try:
        read = await asyncio.gather(*places, return_exceptions=True)
        # The first failure in that order is the one reported (each place ran to its end).
        return tuple(a for place in read for a in settled(place))
    except (RegistryError, LayoutError) as e:
        raise _unavailable(sig_repo, subject, e) from e
    finally:
        for task in (sig, att, *places):
            settle(task)
        blobs.settle()


async def _none() -> None:
    return None



def describe(attachments: Iterable[Attachment]) -> str:
    """A short count for logs: ``2 signature, 1 bundle``."""
    counts: dict[str, int] = {}
    for a in attachments:
        counts[a.kind.value] = counts.get(a.kind.value, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"

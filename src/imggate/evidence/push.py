"""Storing attestations the way cosign v2 stores them: layers of the ``sha256-<hex>.att`` tag.

The ``.att`` tag holds an OCI image manifest (config
``application/vnd.oci.image.config.v1+json``) with one layer per attestation:
the DSSE envelope blob, media type ``application/vnd.dsse.envelope.v1+json``,
annotations ``dev.cosignproject.cosign/signature`` (empty: the signature is
inside the envelope) and ``predicateType``. Attesting again *appends* layers
to the existing manifest and keeps every existing one (byte for byte); a layer
whose blob is already there is not added twice (cosign's dupe detector). The
config is go-containerregistry's empty image config with one ``diff_id`` per
layer, which is what cosign writes.

JSON key order follows Go: struct fields in declaration order, map keys sorted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from imggate.errors import RegistryError
from imggate.models import Digest
from imggate.registry.interface import MAX_MANIFEST_BYTES, OCI_MANIFEST
from imggate.registry.repository import RegistryRepository
from imggate.signatures.interface import ANN_SIGNATURE, DSSE_MEDIA_TYPE

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ANN_PREDICATE_TYPE = "predicateType"


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def att_layer(envelope: bytes, predicate_type: str) -> dict[str, Any]:
    """The layer descriptor cosign writes for one DSSE envelope."""
    annotations = {ANN_SIGNATURE: "", ANN_PREDICATE_TYPE: predicate_type}
    return {"mediaType": DSSE_MEDIA_TYPE, "size": len(envelope),
            "digest": str(Digest.of(envelope)),
            "annotations": dict(sorted(annotations.items()))}


def att_config(layers: Sequence[Mapping[str, Any]]) -> bytes:
    """go-containerregistry's empty image config over ``layers`` (diff_ids = layer digests)."""
    return _compact({"architecture": "", "created": "0001-01-01T00:00:00Z",
                     "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                     "rootfs": {"type": "layers",
                                "diff_ids": [str(layer["digest"]) for layer in layers]},
                     "config": {}})


def att_manifest(layers: Sequence[Mapping[str, Any]], config: bytes) -> bytes:
    """The ``.att`` OCI manifest over ``layers`` and ``config``."""
    return _compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": {"mediaType": OCI_CONFIG, "size": len(config),
                                "digest": str(Digest.of(config))},
                     "layers": [dict(layer) for layer in layers]})


def appended(existing: Sequence[Mapping[str, Any]],
             envelopes: Sequence[tuple[bytes, str]]) -> list[dict[str, Any]]:
    """Existing layers, unchanged, then one new layer per envelope not already stored."""
    layers = [dict(layer) for layer in existing]
    seen = {str(layer.get("digest")) for layer in layers}
    for env, ptype in envelopes:
        layer = att_layer(env, ptype)
        if layer["digest"] not in seen:
            seen.add(layer["digest"])
            layers.append(layer)
    return layers


class PushError(RegistryError):
    """An attestation could not be stored (exit 3): the run's evidence did not travel."""


async def push_attestations(repo: RegistryRepository, subject: Digest,
                            envelopes: Sequence[tuple[bytes, str]]) -> Digest:
    """Append ``(envelope, predicate type)`` layers to ``subject``'s ``.att`` tag in ``repo``.

    Returns the new ``.att`` manifest digest. Raises :class:`PushError` (or
    another :class:`~imggate.errors.RegistryError`) when the registry refuses.
    """
    tag = f"{subject.tag_form}.att"
    current = await repo.try_resolve_tag(tag)
    existing: list[Mapping[str, Any]] = []
    if current is not None:
        if current.is_index:
            raise PushError(f"{tag} holds an index, not an attestation manifest",
                            registry=repo.registry, repository=repo.repository)
        raw_layers = current.data.get("layers")
        existing = [x for x in raw_layers if isinstance(x, dict)] \
            if isinstance(raw_layers, list) else []
    layers = appended(existing, envelopes)
    config = att_config(layers)
    manifest = att_manifest(layers, config)
    if len(manifest) > MAX_MANIFEST_BYTES:
        raise PushError(f"{tag} would exceed {MAX_MANIFEST_BYTES} bytes",
                        registry=repo.registry, repository=repo.repository)
    for env, _ in envelopes:
        await repo.push_blob(env)
    await repo.push_blob(config)
    return await repo.push_manifest(tag, manifest, OCI_MANIFEST)

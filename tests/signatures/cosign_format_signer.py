"""A stand-in for ``cosign sign --key`` / ``cosign attest --key``: no cosign binary exists here.

It writes the same objects cosign writes to a registry, in the same format:
a ``sha256-<hex>.sig`` OCI manifest whose layers are simple-signing payload
blobs (``application/vnd.dev.cosign.simplesigning.v1+json``) with the
signature in ``dev.cosignproject.cosign/signature`` (std base64 of an ASN.1
ECDSA signature over the payload bytes); ``.att`` manifests whose layers are
DSSE envelopes (``application/vnd.dsse.envelope.v1+json``, empty signature
annotation, ``predicateType`` annotation). Signing again appends a layer to the
existing manifest, as cosign does. The real cosign output in
``tests/fixtures/cosign`` checks that this format is the real one.

Objects go into an :class:`InMemoryRepository`; tests that need a real
registry push that repository's contents with :func:`push_repository`.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from imggate.models import Digest
from imggate.signatures.keys import TrustedKey, parse_public_key
from signatures.inmemory import InMemoryRepository

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def simple_signing_payload(digest: Digest | str, docker_reference: str = "mem.example/repo",
                           optional: Mapping[str, Any] | None = None) -> bytes:
    """The payload ``cosign sign`` writes (key order and compact form as cosign's)."""
    return _compact({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": str(digest)},
            "type": "cosign container image signature",
        },
        "optional": dict(optional) if optional is not None else None,
    })


def in_toto_statement(digest: Digest, predicate_type: str, predicate: Mapping[str, Any],
                      name: str = "mem.example/repo") -> bytes:
    """An in-toto v0.1 statement about ``digest``."""
    return _compact({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{"name": name, "digest": {digest.algorithm: digest.hex}}],
        "predicate": dict(predicate),
    })


class CosignFormatSigner:
    """One signing key; writes cosign-format signatures and attestations."""

    def __init__(self, kind: str = "ecdsa-p256") -> None:
        self.kind = kind
        self.private: PrivateKey
        if kind == "ecdsa-p256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif kind == "ecdsa-p384":
            self.private = ec.generate_private_key(ec.SECP384R1())
        elif kind in ("rsa", "rsa-pss"):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "ed25519":
            self.private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(kind)

    @property
    def public_pem(self) -> bytes:
        """What ``cosign public-key`` prints."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def trusted(self, label: str) -> TrustedKey:
        """This key as a trust anchor."""
        return parse_public_key(self.public_pem, label)

    def sign(self, data: bytes) -> bytes:
        """A raw signature over ``data`` as cosign makes it."""
        k = self.private
        if isinstance(k, ec.EllipticCurvePrivateKey):
            algo = hashes.SHA384() if isinstance(k.curve, ec.SECP384R1) else hashes.SHA256()
            return k.sign(data, ec.ECDSA(algo))
        if isinstance(k, rsa.RSAPrivateKey):
            if self.kind == "rsa-pss":
                return k.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()),
                                                padding.PSS.DIGEST_LENGTH), hashes.SHA256())
            return k.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return k.sign(data)

    # ----------------------------------------------------------------- writing

    def sign_image(self, repo: InMemoryRepository, digest: Digest, *,
                   payload: bytes | None = None, signature: bytes | str | None = None,
                   annotations: Mapping[str, str] | None = None,
                   docker_reference: str | None = None,
                   optional: Mapping[str, Any] | None = None,
                   media_type: str = SIMPLESIGNING,
                   signed_payload: bytes | None = None,
                   tag_digest: Digest | None = None) -> Digest:
        """``cosign sign --key``: append one signature layer to ``sha256-<hex>.sig``.

        ``payload`` replaces the stored payload; ``signed_payload`` is what gets
        signed (default: the stored payload) so tests can tamper with either
        side; ``signature`` overrides the annotation value outright;
        ``tag_digest`` files it under another image's tag.
        """
        stored = payload if payload is not None else simple_signing_payload(
            digest, docker_reference or repo.name, optional)
        sig = signature if signature is not None else self.sign(
            signed_payload if signed_payload is not None else stored)
        sig_text = sig if isinstance(sig, str) else base64.b64encode(sig).decode()
        ann = {"dev.cosignproject.cosign/signature": sig_text, **(annotations or {})}
        return append_layer(repo, tag_digest or digest, "sig", stored, media_type, ann)

    def attest_image(self, repo: InMemoryRepository, digest: Digest, predicate_type: str,
                     predicate: Mapping[str, Any], *, statement: bytes | None = None,
                     signed_statement: bytes | None = None) -> Digest:
        """``cosign attest --key``: append a DSSE envelope layer to ``sha256-<hex>.att``."""
        body = statement if statement is not None else in_toto_statement(
            digest, predicate_type, predicate, repo.name)
        ptype = "application/vnd.in-toto+json"
        signed = signed_statement if signed_statement is not None else body
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(signed), signed)
        envelope = _compact({
            "payloadType": ptype,
            "payload": base64.b64encode(body).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(self.sign(pae)).decode()}],
        })
        ann = {"dev.cosignproject.cosign/signature": "", "predicateType": predicate_type}
        return append_layer(repo, digest, "att", envelope, DSSE, ann)


def append_layer(repo: InMemoryRepository, digest: Digest, suffix: str, blob: bytes,
                 media_type: str, annotations: Mapping[str, str],
                 blob_digest: Digest | None = None) -> Digest:
    """Add a layer to the ``.sig``/``.att`` manifest of ``digest`` (creating it); return its digest."""
    tag = f"{digest.tag_form}.{suffix}"
    layers: list[dict[str, Any]] = []
    if tag in repo.tag_map:
        layers = json.loads(repo.manifests[repo.tag_map[tag]])["layers"]
    bd = repo.put_blob(blob, blob_digest)
    layers.append({"mediaType": media_type, "size": len(blob), "digest": str(bd),
                   "annotations": dict(annotations)})
    config = _compact({"architecture": "", "created": "0001-01-01T00:00:00Z",
                       "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                       "rootfs": {"type": "layers",
                                  "diff_ids": [layer["digest"] for layer in layers]},
                       "config": {}})
    cd = repo.put_blob(config)
    manifest = _compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                         "config": {"mediaType": OCI_CONFIG, "size": len(config),
                                    "digest": str(cd)},
                         "layers": layers})
    return repo.put_manifest(manifest, tag)


def make_image(repo: InMemoryRepository, tag: str | None = None, content: bytes | None = None
               ) -> Digest:
    """A small (fake-layer) OCI image; unique unless ``content`` is given."""
    content = content if content is not None else secrets.token_bytes(16)
    layer = repo.put_blob(content)
    config = _compact({"architecture": "amd64", "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": [str(layer)]}, "config": {}})
    cd = repo.put_blob(config)
    manifest = _compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                         "config": {"mediaType": OCI_CONFIG, "size": len(config),
                                    "digest": str(cd)},
                         "layers": [{"mediaType": LAYER_GZIP, "size": len(content),
                                     "digest": str(layer)}]})
    return repo.put_manifest(manifest, tag)


def make_index(repo: InMemoryRepository, children: Sequence[tuple[Digest, str]],
               tag: str | None = None) -> Digest:
    """An OCI index over ``(digest, "os/arch")`` children already in ``repo``."""
    manifests = []
    for d, plat in children:
        os_, arch = plat.split("/")
        manifests.append({"mediaType": OCI_MANIFEST, "digest": str(d),
                          "size": len(repo.manifests[d]),
                          "platform": {"os": os_, "architecture": arch}})
    return repo.put_manifest(_compact({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                       "manifests": manifests}), tag)


# --------------------------------------------------------------------- real registries


def _http(method: str, url: str, data: bytes | None = None,
          headers: Mapping[str, str] | None = None) -> tuple[int, Mapping[str, str]]:
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, dict(resp.headers)


def push_repository(repo: InMemoryRepository, base_url: str, repository: str,
                    auth: Mapping[str, str] | None = None) -> None:
    """Push every blob, manifest and tag of ``repo`` to a Distribution registry.

    Image manifests go first, then indexes and referrers, then tags, so the
    registry's "referenced content exists" checks pass. ``auth`` is sent with
    every request (an ``Authorization`` header for a Basic-auth registry).
    """
    for d, blob in repo.blobs.items():
        _, hdrs = _http("POST", f"{base_url}/v2/{repository}/blobs/uploads/", headers=auth)
        location = hdrs.get("Location") or hdrs.get("location") or ""
        if location.startswith("/"):
            location = base_url + location
        sep = "&" if "?" in location else "?"
        _http("PUT", f"{location}{sep}digest={d}", blob,
              {"Content-Type": "application/octet-stream", **(auth or {})})

    def order(item: tuple[Digest, bytes]) -> int:
        doc = json.loads(item[1])
        return 1 if "manifests" in doc else 0

    for d, raw in sorted(repo.manifests.items(), key=order):
        mt = json.loads(raw).get("mediaType") or OCI_MANIFEST
        _http("PUT", f"{base_url}/v2/{repository}/manifests/{d}", raw,
              {"Content-Type": mt, **(auth or {})})
    for tag, d in repo.tag_map.items():
        raw = repo.manifests[d]
        mt = json.loads(raw).get("mediaType") or OCI_MANIFEST
        _http("PUT", f"{base_url}/v2/{repository}/manifests/{tag}", raw,
              {"Content-Type": mt, **(auth or {})})


_COSIGN_SAVE_KINDS = {".sig": "dev.cosignproject.cosign/sigs",
                      ".att": "dev.cosignproject.cosign/atts"}


def write_layout(repo: InMemoryRepository, path: Path, *, cosign_save: bool = False) -> Path:
    """Write ``repo`` as an OCI image layout.

    Tags become ``org.opencontainers.image.ref.name``; with ``cosign_save`` the
    entries carry cosign save's ``kind`` annotations instead (image/sigs/atts).
    """
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for d, raw in (*repo.blobs.items(), *repo.manifests.items()):
        (blobs / d.hex).write_bytes(raw)
    entries = []
    for tag, d in repo.tag_map.items():
        raw = repo.manifests[d]
        ann = {"org.opencontainers.image.ref.name": tag}
        if cosign_save:
            suffix = tag[-4:]
            kind = _COSIGN_SAVE_KINDS.get(suffix, "dev.cosignproject.cosign/image")
            ann = {"kind": kind}
        entries.append({"mediaType": json.loads(raw).get("mediaType") or OCI_MANIFEST,
                        "digest": str(d), "size": len(raw), "annotations": ann})
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                 "manifests": entries}))
    return path

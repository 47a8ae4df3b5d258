"""A private Sigstore made in memory: Fulcio-like CA, CT log, Rekor key, trusted_root.json.

A stand-in for a private Sigstore deployment (``--trusted-root FILE``), so
keyless signatures can be made fresh, including the broken ones real
services never issue: a leaf without SAN, a certificate expired at signing
time, a missing SCT, a log entry for another payload. The formats are the
real ones (RFC 6962 SCTs embedded in the certificate, Rekor SETs over the
canonical entry, the Sigstore trusted-root JSON), checked against the real
fixtures' shapes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from imggate.models import Digest
from imggate.signatures.trustroot import SigstoreTrustRoot, parse_trusted_root
from signatures.cosign_format_signer import SIMPLESIGNING, append_layer, simple_signing_payload
from signatures.inmemory import InMemoryRepository

OID_SCT_LIST = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class PrivateSigstore:
    """One CA (root + intermediate), one CT log and one Rekor log, all ECDSA P-256."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.start = start or dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca("private-root", self.root_key, None)
        self.intermediate = self._ca("private-intermediate", self.inter_key, self.root)
        self.log_index = 1000

    # ------------------------------------------------------------------ CA

    def _ca(self, cn: str, key: ec.EllipticCurvePrivateKey,
            parent: x509.Certificate | None) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "private.example"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        issuer = parent.subject if parent else name
        signer = self.root_key if parent else key
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(self.start).not_valid_after(self.start + dt.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None
                                                  else 0), critical=True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False))
        if parent is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.root_key.public_key()), critical=False)
        return b.sign(signer, hashes.SHA256())

    def issue(self, *, email: str | None = "dev@private.example",
              uri: str | None = None, issuer: str | None = "https://oidc.private.example",
              at: dt.datetime | None = None, sct: bool = True,
              key: ec.EllipticCurvePrivateKey | None = None
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A Fulcio-style leaf valid for ten minutes from ``at``, with an embedded SCT."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        at = at or self.start + dt.timedelta(days=1)
        b = (x509.CertificateBuilder().subject_name(x509.Name([]))
             .issuer_name(self.intermediate.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(at).not_valid_after(at + dt.timedelta(minutes=10))
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                            critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.inter_key.public_key()), critical=False))
        names: list[x509.GeneralName] = []
        if email:
            names.append(x509.RFC822Name(email))
        if uri:
            names.append(x509.UniformResourceIdentifier(uri))
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=True)
        if issuer:
            raw = issuer.encode()
            b = b.add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, raw), critical=False)
            b = b.add_extension(x509.UnrecognizedExtension(
                OID_ISSUER_V2, b"\x0c" + _der_len(len(raw)) + raw), critical=False)
        if not sct:
            return b.sign(self.inter_key, hashes.SHA256()), key
        # The SCT signs the TBS *without* the SCT list: sign that first, then embed.
        pre = b.sign(self.inter_key, hashes.SHA256())
        ts = int(at.timestamp() * 1000)
        issuer_hash = hashlib.sha256(_spki(self.inter_key.public_key())).digest()
        tbs = pre.tbs_certificate_bytes
        signed = (struct.pack(">BBQH", 0, 0, ts, 1) + issuer_hash
                  + len(tbs).to_bytes(3, "big") + tbs + struct.pack(">H", 0))
        sig = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = hashlib.sha256(_spki(self.ct_key.public_key())).digest()
        one = (b"\x00" + log_id + struct.pack(">Q", ts) + struct.pack(">H", 0)
               + b"\x04\x03" + struct.pack(">H", len(sig)) + sig)
        lst = struct.pack(">H", len(one)) + one
        tls = struct.pack(">H", len(lst)) + lst
        b = b.add_extension(x509.UnrecognizedExtension(
            OID_SCT_LIST, b"\x04" + _der_len(len(tls)) + tls), critical=False)
        cert = b.sign(self.inter_key, hashes.SHA256())
        assert cert.tbs_precertificate_bytes == tbs
        return cert, key

    @property
    def chain_pem(self) -> str:
        """cosign's chain annotation: intermediate then root, no final newline."""
        return (_pem(self.intermediate) + _pem(self.root)).rstrip("\n")

    # ------------------------------------------------------------------ Rekor

    def set_bundle(self, body: dict[str, Any], integrated: dt.datetime,
                   rekor_key: ec.EllipticCurvePrivateKey | None = None) -> str:
        """A ``dev.sigstore.cosign/bundle`` annotation for ``body`` logged at ``integrated``."""
        self.log_index += 1
        body_b64 = base64.b64encode(json.dumps(body, separators=(",", ":"),
                                               sort_keys=True).encode()).decode()
        log_id = hashlib.sha256(_spki(self.rekor_key.public_key())).hexdigest()
        payload = {"body": body_b64, "integratedTime": int(integrated.timestamp()),
                   "logID": log_id, "logIndex": self.log_index}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        set_sig = (rekor_key or self.rekor_key).sign(canonical, ec.ECDSA(hashes.SHA256()))
        return json.dumps({"SignedEntryTimestamp": base64.b64encode(set_sig).decode(),
                           "Payload": payload})

    @staticmethod
    def hashedrekord(payload: bytes, signature: bytes, signer_pem: str) -> dict[str, Any]:
        """A hashedrekord 0.0.1 body (``signer_pem``: the cert or public key PEM)."""
        return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256",
                              "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {"content": base64.b64encode(signature).decode(),
                          "publicKey": {"content": base64.b64encode(
                              signer_pem.encode()).decode()}}}}

    @staticmethod
    def dsse_body(envelope: bytes, payload: bytes, signature: bytes,
                  cert_pem: str) -> dict[str, Any]:
        """A dsse 0.0.1 body for a DSSE envelope."""
        return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(envelope).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": base64.b64encode(signature).decode(),
                            "verifier": base64.b64encode(cert_pem.encode()).decode()}]}}

    # ------------------------------------------------------------------ trusted root

    def trusted_root_json(self) -> bytes:
        """This instance as a Sigstore ``trusted_root.json``."""
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            spki = _spki(key.public_key())
            return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": b64(spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                  "validFor": {"start": self.start.isoformat()
                                               .replace("+00:00", "Z")}},
                    "logId": {"keyId": b64(hashlib.sha256(spki).digest())}}

        der = serialization.Encoding.DER
        return json.dumps({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key, "https://rekor.private.example")],
            "certificateAuthorities": [{
                "subject": {"organization": "private.example", "commonName": "private-root"},
                "uri": "https://fulcio.private.example",
                "certChain": {"certificates": [
                    {"rawBytes": b64(self.intermediate.public_bytes(der))},
                    {"rawBytes": b64(self.root.public_bytes(der))}]},
                "validFor": {"start": self.start.isoformat().replace("+00:00", "Z")}}],
            "ctlogs": [log(self.ct_key, "https://ct.private.example")],
            "timestampAuthorities": [],
        }, indent=1).encode()

    def trust_root(self) -> SigstoreTrustRoot:
        """Parsed through imggate's own trusted-root reader."""
        return parse_trusted_root(self.trusted_root_json(), "private-sigstore")

    def write(self, path: Path) -> Path:
        """Write ``trusted_root.json`` to ``path``."""
        path.write_bytes(self.trusted_root_json())
        return path


def keyless_sign(ps: PrivateSigstore, repo: InMemoryRepository, digest: Digest, *,
                 log_delay: dt.timedelta = dt.timedelta(seconds=1),
                 body_payload: bytes | None = None,
                 rekor_key: ec.EllipticCurvePrivateKey | None = None,
                 **issue: object) -> None:
    """``cosign sign`` keyless against ``ps``: a ``.sig`` layer with certificate, chain and
    a Rekor SET ``log_delay`` after the certificate's start (over ``body_payload`` if given,
    signed by ``rekor_key`` if given: the broken variants)."""
    payload = simple_signing_payload(digest, repo.name)
    cert, key = ps.issue(**issue)  # type: ignore[arg-type]
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    when = cert.not_valid_before_utc + log_delay
    body = ps.hashedrekord(body_payload or payload, sig, _pem(cert))
    append_layer(repo, digest, "sig", payload, SIMPLESIGNING, {
        "dev.cosignproject.cosign/signature": base64.b64encode(sig).decode(),
        "dev.sigstore.cosign/certificate": _pem(cert),
        "dev.sigstore.cosign/chain": ps.chain_pem,
        "dev.sigstore.cosign/bundle": ps.set_bundle(body, when, rekor_key),
    })

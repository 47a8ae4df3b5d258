"""Fuzz targets for the signature parsers and verifiers, seeded from real cosign output.

Parsers may raise only imggate's own exceptions (an :class:`~imggate.errors.Error`,
or the reason-carrying ``StatementError``/``PayloadError``/``BadSignature``/
``CertificateError`` that the verifiers turn into failed checks). The verifiers
are documented as never raising: whatever the attachment, they return a check,
and a mutated attachment never verifies.
"""

from __future__ import annotations

import contextlib
import json
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixture_paths import FIXTURES
from fuzz.mutate import FUZZ, mutated_bytes, mutated_json
from imggate.errors import Error
from imggate.models import Digest
from imggate.signatures import Identity, TrustConfig, verify_attachment
from imggate.signatures.attestations import StatementError, parse_envelope, parse_statement
from imggate.signatures.cosign import PayloadError, parse_simple_signing
from imggate.signatures.interface import (
    ANN_BUNDLE,
    ANN_CERTIFICATE,
    ANN_CHAIN,
    ANN_SIGNATURE,
    BUNDLE_MEDIA_TYPE,
    DSSE_MEDIA_TYPE,
    SIMPLESIGNING_MEDIA_TYPE,
    Attachment,
    AttachmentKind,
)
from imggate.signatures.keyless import CertificateError, load_certificates
from imggate.signatures.keys import BadSignature, parse_public_key

COSIGN = FIXTURES / "cosign"
OWN = (Error, StatementError, PayloadError, BadSignature, CertificateError)
SUBJECT = Digest.parse("sha256:" + "ab" * 32)


@cache
def _trust() -> TrustConfig:
    keys = tuple(parse_public_key(p.read_bytes(), f"{p.parent.parent.name}/{p.name}") for p in sorted(COSIGN.glob("*/keys/*.pub"))
                 if p.read_bytes().startswith(b"-----BEGIN PUBLIC KEY"))
    return TrustConfig(keys=keys, identities=(Identity(identity_regexp=".*", issuer_regexp=".*"),))


def _seeds(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(COSIGN.glob(f"*/{name}"))]


def _docs(name: str) -> list[object]:
    return [json.loads(b) for b in _seeds(name)]


def _mutants(name: str) -> st.SearchStrategy[bytes]:
    return mutated_bytes(_seeds(name)) | mutated_json(_docs(name))


@FUZZ
@given(raw=_mutants("dsse-envelope.json"))
def test_dsse_envelope_parser(raw: bytes) -> None:
    with contextlib.suppress(OWN):
        parse_envelope(raw)


@FUZZ
@given(raw=_mutants("statement.json"))
def test_in_toto_statement_parser(raw: bytes) -> None:
    with contextlib.suppress(OWN):
        parse_statement(raw)


@FUZZ
@given(raw=_mutants("payload.json"))
def test_simple_signing_parser(raw: bytes) -> None:
    with contextlib.suppress(OWN):
        parse_simple_signing(raw)


@FUZZ
@given(pem=mutated_bytes(_seeds("keys/*.pub")))
def test_public_key_parser(pem: bytes) -> None:
    with contextlib.suppress(OWN):
        parse_public_key(pem, "fuzz.pub")


@FUZZ
@given(pem=mutated_bytes(_seeds("certificate.pem") + _seeds("chain.pem")))
def test_certificate_parser(pem: bytes) -> None:
    with contextlib.suppress(OWN):
        load_certificates(pem, "fuzz certificate")


def _annotations(case: str) -> dict[str, str]:
    path = COSIGN / case / "layer-annotations.json"
    return json.loads(path.read_text()) if path.exists() else {}


@FUZZ
@pytest.mark.parametrize("case", ["key-cimage-single-sample", "key-cimage-rekor-set",
                                  "cert-stackrox-byo-pki"])
@given(data=st.data())
def test_signature_verifier_never_raises(case: str, data: st.DataObject) -> None:
    payload = (COSIGN / case / "payload.json").read_bytes()
    ann = _annotations(case)
    for name, key in (("certificate.pem", ANN_CERTIFICATE), ("chain.pem", ANN_CHAIN),
                      ("rekor-bundle.json", ANN_BUNDLE)):
        if (COSIGN / case / name).exists():
            ann[key] = (COSIGN / case / name).read_text()
    if (COSIGN / case / "signature.b64").exists():
        ann.setdefault(ANN_SIGNATURE, (COSIGN / case / "signature.b64").read_text().strip())
    which = data.draw(st.sampled_from(["payload", *sorted(ann)]))
    if which == "payload":
        payload = data.draw(mutated_bytes([payload]) | mutated_json([json.loads(payload)]))
    else:
        ann[which] = data.draw(mutated_bytes([ann[which].encode()])).decode("utf-8", "replace")
    check = verify_attachment(Attachment(AttachmentKind.SIGNATURE, "fuzz", SUBJECT,
                                         SIMPLESIGNING_MEDIA_TYPE, ann, payload), _trust())
    assert check.verified is False  # SUBJECT is no fixture's digest: nothing may pass
    assert check.reason


@FUZZ
@given(raw=_mutants("dsse-envelope.json"))
def test_attestation_verifier_never_raises(raw: bytes) -> None:
    att = Attachment(AttachmentKind.ATTESTATION, "fuzz", SUBJECT, DSSE_MEDIA_TYPE, {}, raw)
    check = verify_attachment(att, _trust())
    assert check.verified is False and check.reason


@FUZZ
@given(raw=_mutants("bundle.sigstore.json"))
def test_bundle_verifier_never_raises(raw: bytes) -> None:
    att = Attachment(AttachmentKind.BUNDLE, "fuzz", SUBJECT, BUNDLE_MEDIA_TYPE, {}, raw)
    check = verify_attachment(att, _trust())
    assert check.verified is False and check.reason

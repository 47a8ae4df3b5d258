"""Fuzz targets for the signature parsers and verifiers.

Two kinds: mutations of real cosign output (``tests/fixtures/cosign``, through
:mod:`fuzz.mutate`'s strategies and settings, ``IMGGATE_FUZZ_EXAMPLES`` each), and
wholly random attachments (any kind, media type, payload and annotations, real
certificates among them).

Parsers may raise only imggate's own exceptions (an :class:`~imggate.errors.Error`,
or the reason-carrying ``StatementError``/``PayloadError``/``BadSignature``/
``CertificateError`` that the verifiers turn into failed checks). The verifiers
are documented as never raising: whatever the attachment, they return a check
with a reason, and neither a mutated nor a random attachment ever verifies.
"""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from signatures.cosign_format_signer import CosignFormatSigner, simple_signing_payload
from signatures.fixture_cases import FIXTURES as COSIGN
from signatures.fixture_cases import annotations, case_dir

OWN = (Error, StatementError, PayloadError, BadSignature, CertificateError)
#: No fixture's digest and no signed image's: nothing may verify for it.
SUBJECT = Digest.parse("sha256:" + "ab" * 32)
SIGNER = CosignFormatSigner()


@cache
def _trust() -> TrustConfig:
    """Every fixture public key, a key of our own that signs the random payloads, and any
    keyless identity: as much trust as there is, so that a pass could happen if it could."""
    keys = tuple(parse_public_key(p.read_bytes(), f"{p.parent.parent.name}/{p.name}")
                 for p in sorted(COSIGN.glob("*/keys/*.pub"))
                 if p.read_bytes().startswith(b"-----BEGIN PUBLIC KEY"))
    return TrustConfig(keys=(*keys, SIGNER.trusted("k")),
                       identities=(Identity(identity_regexp=".*", issuer_regexp=".*"),))


# -- mutations of real cosign output ---------------------------------------------------------


def _seeds(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(COSIGN.glob(f"*/{name}"))]


def _docs(name: str) -> list[object]:
    return [json.loads(b) for b in _seeds(name)]


@cache
def _mutants(name: str) -> st.SearchStrategy[bytes]:
    return mutated_bytes(_seeds(name)) | mutated_json(_docs(name))


@FUZZ
@pytest.mark.parametrize(("seed", "parse"), [
    ("dsse-envelope.json", parse_envelope),
    ("statement.json", parse_statement),
    ("payload.json", parse_simple_signing),
], ids=["dsse-envelope", "in-toto-statement", "simple-signing"])
@given(data=st.data())
def test_document_parser(seed: str, parse: Callable[[bytes], object],
                         data: st.DataObject) -> None:
    raw = data.draw(_mutants(seed))
    with contextlib.suppress(OWN):
        parse(raw)


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


def _layer_annotations(case: str) -> dict[str, str]:
    """A case's recorded layer annotations, then its certificate, chain and bundle files;
    its signature file only where no recorded annotation holds the signature."""
    path = case_dir(case) / "layer-annotations.json"
    ann: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    ann.update(annotations(case, drop=("signature.b64",)))
    if (case_dir(case) / "signature.b64").exists():
        ann.setdefault(ANN_SIGNATURE, (case_dir(case) / "signature.b64").read_text().strip())
    return ann


@FUZZ
@pytest.mark.parametrize("case", ["key-cimage-single-sample", "key-cimage-rekor-set",
                                  "cert-stackrox-byo-pki"])
@given(data=st.data())
def test_signature_verifier_never_raises(case: str, data: st.DataObject) -> None:
    payload = (case_dir(case) / "payload.json").read_bytes()
    ann = _layer_annotations(case)
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
@pytest.mark.parametrize(("seed", "kind", "media"), [
    ("dsse-envelope.json", AttachmentKind.ATTESTATION, DSSE_MEDIA_TYPE),
    ("bundle.sigstore.json", AttachmentKind.BUNDLE, BUNDLE_MEDIA_TYPE),
], ids=["attestation", "bundle"])
@given(data=st.data())
def test_envelope_verifier_never_raises(seed: str, kind: AttachmentKind, media: str,
                                        data: st.DataObject) -> None:
    att = Attachment(kind, "fuzz", SUBJECT, media, {}, data.draw(_mutants(seed)))
    check = verify_attachment(att, _trust())
    assert check.verified is False and check.reason


# -- wholly random attachments ---------------------------------------------------------------

KEYLESS = "keyless-cimage-fulcio-rekor"
REAL = {
    ANN_CERTIFICATE: (case_dir(KEYLESS) / "certificate.pem").read_text(),
    ANN_CHAIN: (case_dir(KEYLESS) / "chain.pem").read_text(),
    ANN_BUNDLE: (case_dir(KEYLESS) / "rekor-bundle.json").read_text(),
}

text = st.text(alphabet=string.printable, max_size=300)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
).map(lambda v: json.dumps(v).encode())
payloads = st.binary(max_size=400) | json_like | st.just(simple_signing_payload(SUBJECT))
random_annotations = st.dictionaries(
    st.sampled_from([ANN_SIGNATURE, ANN_CERTIFICATE, ANN_CHAIN, ANN_BUNDLE]),
    text | st.sampled_from(list(REAL.values())), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(AttachmentKind)), payload=payloads, ann=random_annotations,
       media=st.sampled_from([SIMPLESIGNING_MEDIA_TYPE, DSSE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE,
                              "text/plain"]))
def test_random_attachments_never_crash_or_pass(kind: AttachmentKind, payload: bytes,
                                                ann: dict[str, str], media: str) -> None:
    att = Attachment(kind, "fuzz", SUBJECT, media, ann, payload)
    check = verify_attachment(att, _trust())
    assert check.verified is False
    assert check.reason

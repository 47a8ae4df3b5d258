"""DSSE envelopes, statements and bundles with JSON that is valid but hostile.

Each failed before: a ``_type`` that is a list raised ``TypeError`` out of the
statement parser, and a ``payloadType`` holding a lone surrogate raised
``UnicodeEncodeError`` out of ``verify_bundle`` (documented as never raising).
"""

from __future__ import annotations

import base64
import json

import pytest

from fixture_paths import FIXTURES
from imggate.models import Digest
from imggate.signatures import TrustConfig
from imggate.signatures.attestations import (
    StatementError,
    parse_envelope,
    parse_statement,
    verify_attestation,
)
from imggate.signatures.bundle import verify_bundle
from imggate.signatures.interface import (
    BUNDLE_MEDIA_TYPE,
    DSSE_MEDIA_TYPE,
    Attachment,
    AttachmentKind,
)
from signatures.cosign_format_signer import CosignFormatSigner

SUBJECT = Digest.parse("sha256:" + "ab" * 32)
SIGNER = CosignFormatSigner()
TRUST = TrustConfig(keys=(SIGNER.trusted("k"),), ignore_tlog=True)
BUNDLE = json.loads((FIXTURES / "cosign" / "bundle-cosign-oci-attestation"
                     / "bundle.sigstore.json").read_text())


@pytest.mark.parametrize("value", [[], ["https://in-toto.io/Statement/v1"], {}, 1, None, 1.5])
def test_statement_type_that_is_not_a_string(value: object) -> None:
    payload = json.dumps({"_type": value, "predicateType": "x", "subject": []}).encode()
    with pytest.raises(StatementError, match="not an in-toto statement"):
        parse_statement(payload)


def _envelope(payload_type: str) -> dict[str, object]:
    body = json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": "x",
                       "subject": [{"digest": {"sha256": SUBJECT.hex}}]}).encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type.encode("utf-8", "surrogatepass")),
                                   payload_type.encode("utf-8", "surrogatepass"),
                                   len(body), body)
    return {"payloadType": payload_type, "payload": base64.b64encode(body).decode(),
            "signatures": [{"sig": base64.b64encode(SIGNER.sign(pae)).decode()}]}


@pytest.mark.parametrize("ptype", ["\ud800", "application/vnd.in-toto+json\udfff", "é"])
def test_payload_type_that_cannot_be_encoded_is_a_statement_error(ptype: str) -> None:
    with pytest.raises(StatementError, match="is not a media type"):
        parse_envelope(json.dumps(_envelope(ptype)).encode())


@pytest.mark.parametrize("ptype", ["\ud800", "application/vnd.in-toto+json\udfff"])
def test_bundle_with_surrogate_payload_type_is_a_failed_check(ptype: str) -> None:
    doc = dict(BUNDLE, dsseEnvelope=_envelope(ptype))
    att = Attachment(AttachmentKind.BUNDLE, "fuzz", SUBJECT, BUNDLE_MEDIA_TYPE, {},
                     json.dumps(doc).encode())
    check = verify_bundle(att, TRUST)
    assert check.verified is False
    assert "is not a media type" in check.reason


def test_dsse_layer_with_surrogate_payload_type_is_a_failed_check() -> None:
    att = Attachment(AttachmentKind.ATTESTATION, "fuzz", SUBJECT, DSSE_MEDIA_TYPE, {},
                     json.dumps(_envelope("\ud800")).encode())
    check = verify_attestation(att, TRUST)
    assert check.verified is False and "is not a media type" in check.reason

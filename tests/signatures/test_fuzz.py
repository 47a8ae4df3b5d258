"""Arbitrary attachment content is a failed check with a reason: never a crash, never a pass."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imggate.models import Digest
from imggate.signatures import Identity, TrustConfig, verify_attachment
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
from signatures.cosign_format_signer import CosignFormatSigner, simple_signing_payload
from signatures.fixture_cases import case_dir

SUBJECT = Digest.parse("sha256:" + "ab" * 32)
SIGNER = CosignFormatSigner()
TRUST = TrustConfig(keys=(SIGNER.trusted("k"),),
                    identities=(Identity(identity_regexp=".*", issuer_regexp=".*"),))
REAL = {
    ANN_CERTIFICATE: (case_dir("keyless-cimage-fulcio-rekor") / "certificate.pem").read_text(),
    ANN_CHAIN: (case_dir("keyless-cimage-fulcio-rekor") / "chain.pem").read_text(),
    ANN_BUNDLE: (case_dir("keyless-cimage-fulcio-rekor") / "rekor-bundle.json").read_text(),
}

text = st.text(alphabet=string.printable, max_size=300)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
).map(lambda v: __import__("json").dumps(v).encode())
payloads = st.binary(max_size=400) | json_like | st.just(simple_signing_payload(SUBJECT))
annotations = st.dictionaries(
    st.sampled_from([ANN_SIGNATURE, ANN_CERTIFICATE, ANN_CHAIN, ANN_BUNDLE]),
    text | st.sampled_from(list(REAL.values())), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(AttachmentKind)), payload=payloads, ann=annotations,
       media=st.sampled_from([SIMPLESIGNING_MEDIA_TYPE, DSSE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE,
                              "text/plain"]))
def test_random_attachments_never_crash_or_pass(kind: AttachmentKind, payload: bytes,
                                                ann: dict[str, str], media: str) -> None:
    att = Attachment(kind, "fuzz", SUBJECT, media, ann, payload)
    check = verify_attachment(att, TRUST)
    assert check.verified is False
    assert check.reason

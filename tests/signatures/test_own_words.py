"""Failure reasons are imggate's words: no sigstore-python or cryptography message text.

Real failing inputs: the public-good v0.3 bundle fixture with one byte of its
DSSE signature, inclusion proof or certificate changed (not re-signed), and
fresh private-Sigstore leaves that are expired or issued by another CA.
"""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from imggate.models import Digest
from imggate.signatures import Identity, TrustConfig
from imggate.signatures.keyless import CertificateError, verify_fulcio_chain
from imggate.signatures.sigstore_failures import sigstore_failure
from imggate.signatures.trustroot import parse_trusted_root
from signatures.fixture_cases import case_dir, case_json, run
from signatures.private_sigstore import PrivateSigstore
from signatures.test_fixture_keyless import BUNDLE, bundle_repo

# Openings of the libraries' own messages for these failures (sigstore-python 4,
# cryptography's X.509 verifier): none may reach a reason.
LIBRARY_TEXT = ("DSSE: invalid signature", "invalid log entry", "inclusion proof contains",
                "failed to build timestamp certificate chain", "validation failed",
                "candidates exhausted", "signature does not match",
                "cert is not valid at validation time", "encountered processing",
                "root_hash=", "Expecting value")


def _flip(b64: str, at: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[at] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _tampered(part: str) -> bytes:
    """The fixture bundle with one byte of ``part`` changed, nothing re-signed."""
    doc = json.loads((case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes())
    material = doc["verificationMaterial"]
    if part == "signature":
        sig = doc["dsseEnvelope"]["signatures"][0]
        sig["sig"] = _flip(sig["sig"], -3)
    elif part == "inclusion-proof":
        proof = material["tlogEntries"][0]["inclusionProof"]
        proof["hashes"][0] = _flip(proof["hashes"][0], 0)
    else:  # the certificate's own signature, so its names and extensions still parse
        material["certificate"]["rawBytes"] = _flip(material["certificate"]["rawBytes"], -5)
    return json.dumps(doc).encode()


def assert_own_words(reason: str, phrase: str) -> None:
    assert phrase in reason, reason
    for text in LIBRARY_TEXT:
        assert text not in reason, reason


@pytest.mark.parametrize(("part", "phrase"), [
    ("signature", "the DSSE envelope's signature does not verify with the certificate's key"),
    ("inclusion-proof", "the transparency log entry does not verify (inclusion promise, "
                        "proof or checkpoint)"),
    ("certificate", "certificate does not chain to a trusted Fulcio CA at "
                    "2025-02-28T19:18:11+00:00: no trusted CA certificate signed it "
                    "(it names issuer 'CN=sigstore-intermediate,O=sigstore.dev')"),
])
def test_tampered_bundle_reason_is_imggates(part: str, phrase: str) -> None:
    c = case_json(BUNDLE)
    subject = Digest.parse(c["image"]["digest"])
    identity = Identity(identity=c["identity"]["san"], issuer=c["identity"]["issuer"])
    trust = TrustConfig(identities=(identity,), check_signatures=False, check_attestations=True)
    checks = run(bundle_repo(_tampered(part), subject), subject, trust)
    assert len(checks) == 1 and not checks[0].verified
    # Where: the identity the bundle was tried against.
    assert checks[0].reason.startswith(f"{identity.label}: "), checks[0].reason
    assert_own_words(checks[0].reason, phrase)


def test_identity_mismatch_keeps_imggates_reason() -> None:
    """The identity rule's own refusal is reported, not sigstore's wrapping of it."""
    c = case_json(BUNDLE)
    subject = Digest.parse(c["image"]["digest"])
    trust = TrustConfig(identities=(Identity(identity="someone@else.example",
                                             issuer=c["identity"]["issuer"]),),
                        check_signatures=False, check_attestations=True)
    reason = run(bundle_repo((case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes(), subject),
                 subject, trust)[0].reason
    assert_own_words(reason, f"certificate identity {c['identity']['san']} "
                             f"(issuer {c['identity']['issuer']}) does not match")


def test_unknown_sigstore_failure_names_only_the_class() -> None:
    from sigstore.errors import CertValidationError, VerificationError

    said = sigstore_failure(VerificationError("some future sigstore wording"))
    assert said == "Sigstore verification failed (VerificationError)"
    # A chain failure with no bundle to diagnose it still says what failed.
    assert sigstore_failure(CertValidationError("validation failed: x")) == \
        "the certificate does not chain to a trusted Fulcio CA at the logged time"


@pytest.fixture(scope="module")
def ps() -> PrivateSigstore:
    return PrivateSigstore()


def test_leaf_outside_its_validity_says_so(ps: PrivateSigstore) -> None:
    leaf, _ = ps.issue()
    when = ps.start + dt.timedelta(days=2)
    with pytest.raises(CertificateError) as caught:
        verify_fulcio_chain(leaf, ps.trust_root(), when)
    assert_own_words(str(caught.value),
                     f"certificate does not chain to a trusted Fulcio CA at {when.isoformat()}: "
                     f"the certificate is valid only from "
                     f"{leaf.not_valid_before_utc.isoformat()} to "
                     f"{leaf.not_valid_after_utc.isoformat()}")


def test_leaf_of_another_ca_with_the_same_name_says_so(ps: PrivateSigstore) -> None:
    alien, _ = PrivateSigstore().issue()
    with pytest.raises(CertificateError) as caught:
        verify_fulcio_chain(alien, ps.trust_root(), ps.start + dt.timedelta(days=1, minutes=1))
    assert_own_words(str(caught.value), "no trusted CA certificate signed it (it names issuer "
                                        "'CN=private-intermediate,O=private.example')")


def test_no_ca_valid_at_the_time_says_so(ps: PrivateSigstore) -> None:
    leaf, _ = ps.issue()
    when = ps.start - dt.timedelta(days=1)
    with pytest.raises(CertificateError) as caught:
        verify_fulcio_chain(leaf, ps.trust_root(), when)
    assert_own_words(str(caught.value), "no certificate authority of the trusted root is "
                                        "valid at that time")


def test_trusted_root_not_json_is_named_without_the_json_modules_words() -> None:
    from imggate.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_trusted_root(b"{not json", "root.json")
    assert_own_words(caught.value.message, "root.json: invalid Sigstore trusted root: not JSON")


def test_log_time_out_of_range_is_named_without_datetimes_words() -> None:
    """A hostile integratedTime (year 31 million) fails the SET check in imggate's words."""
    from imggate.signatures.rekor import TlogError, entry_from_bundle, verify_set
    from imggate.signatures.trustroot import production_trusted_root

    doc = json.loads((case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes())
    tle = doc["verificationMaterial"]["tlogEntries"][0]
    tle["integratedTime"] = str(10**15)
    with pytest.raises(TlogError) as caught:
        verify_set(entry_from_bundle(tle), production_trusted_root())
    assert_own_words(str(caught.value),
                     f"Rekor entry integratedTime {10**15} is out of range")
    assert "year" not in str(caught.value)


def test_certificate_key_of_unknown_kind_is_named_without_cryptographys_words() -> None:
    """GitHub's real timestamped bundle with its leaf's key algorithm OID changed."""
    from imggate.signatures.timestamped import TimestampError, verify_timestamped
    from signatures.test_github_instance import (
        ACTIONS,
        GITHUB_ROOT,
        PRIVATE,
        PRIVATE_DIGEST,
        PRIVATE_SAN,
    )

    doc = json.loads(PRIVATE.read_text().splitlines()[0])
    cert = doc["verificationMaterial"]["certificate"]
    raw = base64.b64decode(cert["rawBytes"])
    ec_public_key = bytes.fromhex("06072a8648ce3d0201")  # OID 1.2.840.10045.2.1
    assert raw.count(ec_public_key) == 1
    cert["rawBytes"] = base64.b64encode(
        raw.replace(ec_public_key, bytes.fromhex("06072a8648ce3d0209"))).decode()
    root = parse_trusted_root(GITHUB_ROOT.read_bytes(), GITHUB_ROOT.name)
    with pytest.raises(TimestampError) as caught:
        verify_timestamped(doc, root, Identity(identity=PRIVATE_SAN, issuer=ACTIONS),
                           Digest.parse(PRIVATE_DIGEST))
    assert_own_words(str(caught.value), "certificate key unusable: certificate public key "
                                        "is of an unknown or malformed kind")
    assert "Unknown key type" not in str(caught.value)

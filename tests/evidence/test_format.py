"""The attestation format, byte for byte, against what real cosign wrote.

tests/fixtures/cosign/att-slsa-generator-v2.1.0-dsse is a real ``.att`` tag
(manifest, config blob, DSSE envelope, statement) written by cosign: the
writer here must produce the same bytes from the same parts, and the PAE it
signs must be the one cosign's signature in that envelope verifies over.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fixture_paths import FIXTURES
from imggate.evidence.dsse import envelope, sign_statement, statement
from imggate.evidence.push import appended, att_config, att_layer, att_manifest
from imggate.evidence.signing_keys import SigningKey
from imggate.evidence.vuln import VULN_PREDICATE
from imggate.models import Digest
from imggate.signatures.attestations import pae, parse_envelope, parse_statement

CASE = FIXTURES / "cosign" / "att-slsa-generator-v2.1.0-dsse"
BLOBS = CASE / "oci-layout" / "blobs" / "sha256"


def _blob(digest: str) -> bytes:
    return (BLOBS / digest.removeprefix("sha256:")).read_bytes()


def test_pae_is_dsse_v1() -> None:
    assert pae("application/vnd.in-toto+json", b"hello") == \
        b"DSSEv1 28 application/vnd.in-toto+json 5 hello"
    assert pae("", b"") == b"DSSEv1 0  0 "


def test_cosigns_signature_verifies_over_our_pae_of_its_statement() -> None:
    env = json.loads((CASE / "dsse-envelope.json").read_bytes())
    payload = (CASE / "statement.json").read_bytes()
    assert base64.b64decode(env["payload"]) == payload
    cert = x509.load_pem_x509_certificate((CASE / "certificate.pem").read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(env["signatures"][0]["sig"]),
               pae(env["payloadType"], payload), ec.ECDSA(hashes.SHA256()))


def test_envelope_bytes_equal_cosigns() -> None:
    raw = (CASE / "dsse-envelope.json").read_bytes()
    env = json.loads(raw)
    ours = envelope((CASE / "statement.json").read_bytes(),
                    base64.b64decode(env["signatures"][0]["sig"]))
    assert ours == raw


def test_att_manifest_and_config_bytes_equal_cosigns() -> None:
    raw = (CASE / "att-manifest.json").read_bytes()
    layers = json.loads(raw)["layers"]
    config = att_config(layers)
    assert config == _blob(json.loads(raw)["config"]["digest"])
    assert att_manifest(layers, config) == raw
    assert Digest.of(raw) == Digest.parse(json.loads((CASE / "case.json").read_text())
                                          ["att_manifest_digest"])


def test_our_layer_is_cosigns_key_based_layer() -> None:
    """cosign attest --key (no Rekor upload) writes exactly these annotations."""
    raw = (CASE / "att-manifest.json").read_bytes()
    theirs = json.loads(raw)["layers"][0]
    env = (CASE / "dsse-envelope.json").read_bytes()
    ours = att_layer(env, "https://slsa.dev/provenance/v0.2")
    assert list(ours) == ["mediaType", "size", "digest", "annotations"] == list(theirs)
    assert ours["mediaType"] == "application/vnd.dsse.envelope.v1+json" == theirs["mediaType"]
    assert (ours["size"], ours["digest"]) == (theirs["size"], theirs["digest"])
    assert ours["annotations"] == {"dev.cosignproject.cosign/signature": "",
                                   "predicateType": "https://slsa.dev/provenance/v0.2"}
    assert {k: theirs["annotations"][k] for k in ours["annotations"]} == ours["annotations"]


def test_appending_keeps_existing_layers_byte_for_byte_and_skips_duplicates() -> None:
    raw = (CASE / "att-manifest.json").read_bytes()
    existing = json.loads(raw)["layers"]
    new_env = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'
    layers = appended(existing, [(new_env, VULN_PREDICATE)])
    assert layers[0] == existing[0] and len(layers) == 2
    assert appended(layers, [(new_env, VULN_PREDICATE)]) == layers
    manifest = att_manifest(layers, att_config(layers))
    first = raw[raw.index(b'"layers":[') + 10:-3]  # the existing layer object, as stored
    assert b'"layers":[' + first + b"},{" in manifest


def test_statement_layout_and_round_trip_through_the_verifier() -> None:
    key = SigningKey("k", ec.generate_private_key(ec.SECP256R1()))
    digest = Digest.parse("sha256:" + "ab" * 32)
    body = statement("reg.example/app", digest, VULN_PREDICATE, {"scanner": {"uri": "x"}})
    assert body == (b'{"_type":"https://in-toto.io/Statement/v0.1","predicateType":'
                    b'"https://cosign.sigstore.dev/attestation/vuln/v1","subject":[{"name":'
                    b'"reg.example/app","digest":{"sha256":"' + b"ab" * 32 + b'"}}],'
                    b'"predicate":{"scanner":{"uri":"x"}}}')
    signed = sign_statement(key, body)
    env = parse_envelope(signed)
    assert env.payload == body and env.payload_type == "application/vnd.in-toto+json"
    assert json.loads(signed)["signatures"][0]["keyid"] == ""
    pub = key.private.public_key()
    pub.verify(env.signatures[0], pae(env.payload_type, body), ec.ECDSA(hashes.SHA256()))
    assert parse_statement(body).subject_digests == (digest,)


@pytest.mark.parametrize("name", ["cosign-testdata-vuln-2022.dsse.json"])
def test_cosigns_own_vuln_envelope_parses(name: str) -> None:
    env = parse_envelope((FIXTURES / "evidence" / name).read_bytes())
    st = parse_statement(env.payload)
    assert st.predicate_type == "cosign.sigstore.dev/attestation/vuln/v1"
    assert set(st.predicate) == {"invocation", "scanner", "metadata"}


def test_rfc3339_times_are_what_cosign_and_trivy_write(tmp_path: Path) -> None:
    from imggate.evidence.vuln import rfc3339

    assert rfc3339(datetime(2022, 4, 12, 0, 10, tzinfo=UTC)) == "2022-04-12T00:10:00Z"
    assert rfc3339(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"

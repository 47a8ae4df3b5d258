"""Keyless verification against a private Sigstore (``--trusted-root``), with fresh certificates.

Covers what the real fixtures cannot: certificates without SAN, expired at
the logged time, without SCT; SETs from another log key; entries for another
payload; key-based signatures *with* a Rekor entry; keyless DSSE attestations.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from imggate.models import Digest, SignatureCheck, SignatureKind
from imggate.signatures import Identity, TrustConfig, check_signatures
from registry_harness import run_imggate
from signatures.cosign_format_signer import (
    DSSE,
    CosignFormatSigner,
    append_layer,
    in_toto_statement,
    make_image,
    simple_signing_payload,
    write_layout,
)
from signatures.inmemory import InMemoryRepository
from signatures.private_sigstore import PrivateSigstore, keyless_sign

ISSUER = "https://oidc.private.example"
EMAIL = "dev@private.example"


@pytest.fixture(scope="module")
def ps() -> PrivateSigstore:
    return PrivateSigstore()


def pem(cert) -> str:  # type: ignore[no-untyped-def]
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def run(repo: InMemoryRepository, digest: Digest, trust: TrustConfig
        ) -> tuple[SignatureCheck, ...]:
    return asyncio.run(check_signatures(repo, digest, trust))


def trust(ps: PrivateSigstore, identity: Identity | None = None, **kw: object) -> TrustConfig:
    return TrustConfig(identities=(identity or Identity(identity=EMAIL, issuer=ISSUER),),
                       trusted_root=ps.trust_root(), **kw)  # type: ignore[arg-type]


def one(ps: PrivateSigstore, t: TrustConfig | None = None, **sign: object) -> SignatureCheck:
    repo = InMemoryRepository()
    image = make_image(repo)
    keyless_sign(ps, repo, image, **sign)  # type: ignore[arg-type]
    checks = run(repo, image, t or trust(ps))
    assert len(checks) == 1
    return checks[0]


def test_fresh_keyless_signature_verifies(ps: PrivateSigstore) -> None:
    c = one(ps)
    assert c.verified, c.reason
    assert c.signer == f"{EMAIL} ({ISSUER})" and c.tlog


def test_uri_identity_with_regexp(ps: PrivateSigstore) -> None:
    wf = "https://git.private.example/org/repo/.ci/release.yml@refs/tags/v1.2.3"
    t = trust(ps, Identity(identity_regexp=r"^https://git\.private\.example/org/repo/",
                           issuer=ISSUER))
    c = one(ps, t, email=None, uri=wf)
    assert c.verified and c.signer == f"{wf} ({ISSUER})"


def test_production_root_does_not_trust_a_private_ca(ps: PrivateSigstore) -> None:
    c = one(ps, TrustConfig(identities=(Identity(identity=EMAIL, issuer=ISSUER),)))
    assert not c.verified and "not in the trusted root" in c.reason


def test_certificate_without_san(ps: PrivateSigstore) -> None:
    c = one(ps, email=None, uri=None)
    assert not c.verified and c.reason


def test_certificate_without_issuer_extension(ps: PrivateSigstore) -> None:
    c = one(ps, issuer=None)
    assert not c.verified and "OIDC issuer" in c.reason


def test_certificate_expired_at_logged_time(ps: PrivateSigstore) -> None:
    c = one(ps, log_delay=dt.timedelta(minutes=11))
    assert not c.verified and "does not chain to a trusted Fulcio CA" in c.reason


def test_certificate_without_sct(ps: PrivateSigstore) -> None:
    c = one(ps, sct=False)
    assert not c.verified and "no embedded SCT" in c.reason


def test_set_signed_by_another_log(ps: PrivateSigstore) -> None:
    c = one(ps, rekor_key=ec.generate_private_key(ec.SECP256R1()))
    assert not c.verified and "SignedEntryTimestamp does not verify" in c.reason


def test_log_entry_for_another_payload(ps: PrivateSigstore) -> None:
    c = one(ps, body_payload=b'{"something": "else"}')
    assert not c.verified and "another payload" in c.reason


def test_wrong_issuer_and_identity(ps: PrivateSigstore) -> None:
    assert not one(ps, trust(ps, Identity(identity=EMAIL, issuer="https://x"))).verified
    assert not one(ps, trust(ps, Identity(identity="x@y.z", issuer=ISSUER))).verified


def test_key_signature_with_rekor_entry(ps: PrivateSigstore) -> None:
    """Key-based and logged: passes without --insecure-ignore-tlog, and tlog is True."""
    signer, other = CosignFormatSigner(), CosignFormatSigner()
    repo = InMemoryRepository()
    image = make_image(repo)
    payload = simple_signing_payload(image, repo.name)
    sig = signer.sign(payload)
    when = ps.start + dt.timedelta(days=2)
    good = ps.set_bundle(ps.hashedrekord(payload, sig, signer.public_pem.decode()), when)
    signer.sign_image(repo, image, signature=sig,
                      annotations={"dev.sigstore.cosign/bundle": good})
    t = TrustConfig(keys=(signer.trusted("signer"),), trusted_root=ps.trust_root())
    checks = run(repo, image, t)
    assert checks[0].verified and checks[0].tlog, checks[0].reason
    # A log entry naming another key does not vouch for this signature.
    repo2 = InMemoryRepository()
    image2 = make_image(repo2)
    payload2 = simple_signing_payload(image2, repo2.name)
    sig2 = signer.sign(payload2)
    wrong = ps.set_bundle(ps.hashedrekord(payload2, sig2, other.public_pem.decode()), when)
    signer.sign_image(repo2, image2, signature=sig2,
                      annotations={"dev.sigstore.cosign/bundle": wrong})
    checks = run(repo2, image2, TrustConfig(keys=t.keys, trusted_root=t.trusted_root))
    assert not checks[0].verified and "another key" in checks[0].reason


def test_keyless_dsse_attestation(ps: PrivateSigstore) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    statement = in_toto_statement(image, "https://slsa.dev/provenance/v1",
                                  {"runDetails": {"builder": {"id": "https://ci.private"}}})
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
    cert, key = ps.issue()
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    envelope = json.dumps({"payloadType": ptype,
                           "payload": base64.b64encode(statement).decode(),
                           "signatures": [{"keyid": "",
                                           "sig": base64.b64encode(sig).decode()}]}).encode()
    bundle = ps.set_bundle(ps.dsse_body(envelope, statement, sig, pem(cert)),
                           cert.not_valid_before_utc + dt.timedelta(seconds=2))
    append_layer(repo, image, "att", envelope, DSSE, {
        "dev.cosignproject.cosign/signature": "", "predicateType": "https://slsa.dev/provenance/v1",
        "dev.sigstore.cosign/certificate": pem(cert), "dev.sigstore.cosign/chain": ps.chain_pem,
        "dev.sigstore.cosign/bundle": bundle})
    t = trust(ps, check_signatures=False, check_attestations=True,
              attestation_types=("https://slsa.dev/provenance/v1",))
    checks = run(repo, image, t)
    assert checks[0].kind is SignatureKind.ATTESTATION and checks[0].verified, checks[0].reason
    assert checks[0].predicate == {"runDetails": {"builder": {"id": "https://ci.private"}}}


def test_cli_trusted_root(ps: PrivateSigstore, tmp_path: Path) -> None:
    repo = InMemoryRepository()
    image = make_image(repo, tag="app")
    keyless_sign(ps, repo, image)
    layout = write_layout(repo, tmp_path / "layout")
    root = ps.write(tmp_path / "trusted_root.json")
    base = ["verify", f"oci:{layout}:app", "--certificate-identity", EMAIL,
            "--certificate-oidc-issuer", ISSUER]
    r = run_imggate([*base, "--trusted-root", str(root)])
    assert r.code == 0, r.output
    assert run_imggate(base).code == 1
    bad = tmp_path / "bad.json"
    bad.write_text('{"mediaType": "nope"}')
    r = run_imggate([*base, "--trusted-root", str(bad)])
    assert r.code == 2 and "not a Sigstore trusted root" in r.output


def test_bundles_follow_the_configured_trusted_root(ps: PrivateSigstore) -> None:
    """A production bundle does not verify when only the private Sigstore is trusted."""
    from signatures.fixture_cases import case_dir, case_json
    from signatures.test_fixture_keyless import BUNDLE, bundle_repo

    digest = Digest.parse(case_json(BUNDLE)["image"]["digest"])
    repo = bundle_repo((case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes(), digest)
    ident = Identity(identity="cody@soyland.com", issuer="https://github.com/login/oauth")
    private = TrustConfig(identities=(ident,), trusted_root=ps.trust_root(),
                          check_signatures=False)
    assert not run(repo, digest, private)[0].verified
    public = TrustConfig(identities=(ident,), check_signatures=False)
    assert run(repo, digest, public)[0].verified


# --------------------------------------------------------------------------- key-based bundles


def statement_v1(digest: Digest, predicate_type: str = "https://sigstore.dev/cosign/sign/v1"
                 ) -> bytes:
    """What cosign v3 ``sign`` puts in its DSSE bundle: statement v1, subject without name."""
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"digest": {"sha256": digest.hex}}],
                       "predicateType": predicate_type}, separators=(",", ":")).encode()


def key_bundle(ps: PrivateSigstore, signer: CosignFormatSigner, statement: bytes, *,
               log: bool = True, signer_pem: str | None = None) -> bytes:
    """A Sigstore bundle v0.3 as ``cosign sign --key`` (v3) writes it."""
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
    sig = signer.sign(pae)
    envelope = {"payload": base64.b64encode(statement).decode(), "payloadType": ptype,
                "signatures": [{"sig": base64.b64encode(sig).decode()}]}
    entries = []
    if log:
        body = ps.dsse_body(b"", statement, sig, signer_pem or signer.public_pem.decode())
        legacy = json.loads(ps.set_bundle(body, ps.start + dt.timedelta(days=3)))
        p = legacy["Payload"]
        entries.append({
            "logIndex": str(p["logIndex"]),
            "logId": {"keyId": base64.b64encode(bytes.fromhex(p["logID"])).decode()},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(p["integratedTime"]),
            "inclusionPromise": {"signedEntryTimestamp": legacy["SignedEntryTimestamp"]},
            "canonicalizedBody": p["body"]})
    return json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                       "verificationMaterial": {"publicKey": {"hint": "k"},
                                                "tlogEntries": entries},
                       "dsseEnvelope": envelope}).encode()


def test_key_bundle_signature(ps: PrivateSigstore) -> None:
    from signatures.test_fixture_keyless import bundle_repo

    signer, other = CosignFormatSigner(), CosignFormatSigner()
    holder = InMemoryRepository()
    image = make_image(holder)
    repo = bundle_repo(key_bundle(ps, signer, statement_v1(image)), image)
    t = TrustConfig(keys=(signer.trusted("signer"),), trusted_root=ps.trust_root())
    checks = run(repo, image, t)
    assert checks[0].verified and checks[0].tlog, checks[0].reason
    assert checks[0].kind is SignatureKind.SIGNATURE
    wrong = TrustConfig(keys=(other.trusted("other"),), trusted_root=ps.trust_root())
    assert not run(repo, image, wrong)[0].verified
    # Not logged: fails unless the tlog is (unsafely) ignored.
    unlogged = bundle_repo(key_bundle(ps, signer, statement_v1(image), log=False), image)
    assert "no transparency log entry" in run(unlogged, image, t)[0].reason
    lax = TrustConfig(keys=t.keys, trusted_root=t.trusted_root, ignore_tlog=True)
    got = run(unlogged, image, lax)[0]
    assert got.verified and not got.tlog
    # Logged under another key, or about another image.
    mislogged = bundle_repo(key_bundle(ps, signer, statement_v1(image),
                                       signer_pem=other.public_pem.decode()), image)
    assert "another key" in run(mislogged, image, t)[0].reason
    elsewhere = make_image(holder)
    stray = bundle_repo(key_bundle(ps, signer, statement_v1(elsewhere)), image)
    assert "does not include this image" in run(stray, image, t)[0].reason


def test_real_bundle_with_its_certificate_as_key() -> None:
    """cosign --certificate style: the fixture bundle's leaf key, SET from production Rekor."""
    from imggate.signatures import parse_public_key
    from signatures.fixture_cases import case_dir, case_json
    from signatures.test_fixture_keyless import BUNDLE, bundle_repo

    digest = Digest.parse(case_json(BUNDLE)["image"]["digest"])
    raw = (case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes()
    leaf = parse_public_key((case_dir(BUNDLE) / "certificate.pem").read_bytes(), "leaf.pem")
    t = TrustConfig(keys=(leaf,), check_signatures=False, check_attestations=True)
    checks = run(bundle_repo(raw, digest), digest, t)
    assert checks[0].verified and checks[0].tlog and checks[0].signer == "leaf.pem", \
        checks[0].reason
    doc = json.loads(raw)
    doc["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1740770292"
    tampered = run(bundle_repo(json.dumps(doc).encode(), digest), digest, t)
    assert not tampered[0].verified and "SignedEntryTimestamp" in tampered[0].reason


def test_real_bundle_with_broken_inclusion_proof_fails_for_keys() -> None:
    from imggate.signatures import parse_public_key
    from signatures.fixture_cases import case_dir, case_json
    from signatures.test_fixture_keyless import BUNDLE, bundle_repo

    digest = Digest.parse(case_json(BUNDLE)["image"]["digest"])
    doc = json.loads((case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes())
    doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["treeSize"] = "53604736"
    leaf = parse_public_key((case_dir(BUNDLE) / "certificate.pem").read_bytes(), "leaf.pem")
    t = TrustConfig(keys=(leaf,), check_signatures=False, check_attestations=True)
    checks = run(bundle_repo(json.dumps(doc).encode(), digest), digest, t)
    assert not checks[0].verified and "inclusion proof" in checks[0].reason

"""Key-based cosign fixtures (real cosign output): every case.json expectation, pass and fail."""

from __future__ import annotations

import base64
import json

import pytest

from imggate.models import Digest
from imggate.signatures import CertificateAuthority, Identity, TrustConfig, load_public_key
from imggate.signatures.keyless import load_certificates
from imggate.signatures.keys import parse_public_key
from imggate.signatures.trustroot import LogKey, SigstoreTrustRoot, production_trusted_root
from signatures.cosign_format_signer import append_layer
from signatures.fixture_cases import (
    case_dir,
    case_json,
    passes,
    run,
    signed_repo,
)
from signatures.inmemory import InMemoryRepository


def key(case: str, name: str) -> TrustConfig:
    return TrustConfig(keys=(load_public_key(case_dir(case) / name),), ignore_tlog=True)


# ------------------------------------------------------------------ key-cimage-single-sample

SINGLE = "key-cimage-single-sample"


@pytest.mark.parametrize("exp", case_json(SINGLE)["expect"], ids=lambda e: e["id"])
def test_single_sample_expectations(exp: dict[str, str]) -> None:
    trust = key(SINGLE, exp["key"])
    d = case_dir(SINGLE)
    if exp["id"] == "manifest-digest-mismatch":
        # The valid signature filed under the modified manifest's digest.
        repo = InMemoryRepository()
        modified = repo.put_file(d / exp["manifest"])
        assert str(modified) == "sha256:d9dcafdb480aa7c475e91737b96925e45844213dcb0290b4a90017459121f71f"
        repo, subject = signed_repo(SINGLE, digest=modified, repo=repo)
        checks = run(repo, subject, trust)
        assert "payload signs sha256:634a8f35" in checks[0].reason
    elif exp["id"] == "other-attachment":
        mt = (d / "variants/other-attachment/mimeType.txt").read_text().strip()
        repo, subject = signed_repo(SINGLE, payload=exp["payload"], signature=exp["signature"],
                                    media_type=mt)
        checks = run(repo, subject, trust)
        assert "not a signature layer" in checks[0].reason
    elif exp["id"] == "tampered-payload":
        payload = (d / "payload.json").read_bytes()
        tampered = payload.replace(b"634a8f35", b"634a8f36")
        repo, subject = signed_repo(SINGLE)
        # Same descriptor, other bytes: the repository refuses the blob.
        repo.blobs[Digest.of(payload)] = tampered
        checks = run(repo, subject, trust)
        assert "does not match its digest" in checks[0].reason
        assert not passes(checks, trust)
        # Tampered bytes under their own digest: the signature no longer covers them.
        repo2 = InMemoryRepository()
        append_layer(repo2, subject, "sig", payload.replace(b"cosign-signed-single",
                                                           b"cosign-signed-singlX"),
                     "application/vnd.dev.cosign.simplesigning.v1+json",
                     {"dev.cosignproject.cosign/signature": (d / "signature.b64").read_text()})
        checks = run(repo2, subject, trust)
        assert "signature does not verify" in checks[0].reason
    else:
        repo, subject = signed_repo(SINGLE, payload=exp.get("payload", "payload.json"),
                                    signature=exp["signature"])
        checks = run(repo, subject, trust)
    assert len(checks) == 1
    expected = exp["result"] == "pass"
    assert checks[0].verified is expected, checks[0].reason
    assert passes(checks, trust) is expected
    if expected:
        assert checks[0].signer == exp["key"].split("/")[-1]
        assert checks[0].signed_digest == subject
    else:
        assert checks[0].signer is None and checks[0].reason


def test_single_sample_needs_tlog_unless_ignored() -> None:
    """cosign's default: a key signature with no Rekor entry fails without --insecure-ignore-tlog."""
    repo, subject = signed_repo(SINGLE)
    strict = TrustConfig(keys=(load_public_key(case_dir(SINGLE) / "keys/cosign.pub"),))
    checks = run(repo, subject, strict)
    assert not checks[0].verified
    assert "--insecure-ignore-tlog" in checks[0].reason


def test_ignore_tlog_is_logged_as_unsafe_every_time(caplog: pytest.LogCaptureFixture) -> None:
    repo, subject = signed_repo(SINGLE)
    trust = key(SINGLE, "keys/cosign.pub")
    run(repo, subject, trust)
    run(repo, subject, trust)
    assert sum("UNSAFE" in r.message for r in caplog.records) == 2


# ------------------------------------------------------------------ key-cimage-rekor-set

REKOR = "key-cimage-rekor-set"


def _strict(name: str, root: SigstoreTrustRoot | None = None) -> TrustConfig:
    return TrustConfig(keys=(load_public_key(case_dir(REKOR) / name),), trusted_root=root)


def _bundle(mutate: str) -> str:
    doc = json.loads((case_dir(REKOR) / "rekor-bundle.json").read_text())
    doc["Payload"][mutate] += 1
    return json.dumps(doc)


@pytest.mark.parametrize("exp", case_json(REKOR)["expect"], ids=lambda e: e["id"])
def test_rekor_set_expectations(exp: dict[str, str]) -> None:
    if exp["id"] == "set-wrong-rekor-key":
        prod = production_trusted_root()
        fake = parse_public_key((case_dir(REKOR) / "keys/cosign.pub").read_bytes(), "fake")
        log_id = bytes.fromhex(case_json(REKOR)["rekor"]["logID"])
        root = SigstoreTrustRoot("test", prod.certificate_authorities,
                                 (LogKey(log_id, fake.key, prod.tlogs[0].validity, ""),),
                                 prod.ctlogs)
        trust = _strict(exp["key"], root)
        repo, subject = signed_repo(REKOR)
    elif exp["id"] == "set-missing":
        trust = _strict("keys/cosign2.pub")
        repo, subject = signed_repo(REKOR, drop=("rekor-bundle.json",))
    elif exp["id"] == "set-tampered":
        trust = _strict("keys/cosign2.pub")
        for field in ("integratedTime", "logIndex"):
            repo, subject = signed_repo(
                REKOR, ann_override={"dev.sigstore.cosign/bundle": _bundle(field)})
            checks = run(repo, subject, trust)
            assert not checks[0].verified
            assert "SignedEntryTimestamp does not verify" in checks[0].reason
        return
    else:
        trust = _strict(exp["key"])
        repo, subject = signed_repo(REKOR)
    checks = run(repo, subject, trust)
    expected = exp["result"] == "pass"
    assert checks[0].verified is expected, checks[0].reason
    assert passes(checks, trust) is expected
    if expected:
        assert checks[0].tlog is True


def test_set_transplanted_onto_another_signature_fails() -> None:
    """README: this SET on key-cimage-single-sample's signature: body names other sig/key."""
    bundle = (case_dir(REKOR) / "rekor-bundle.json").read_text()
    repo, subject = signed_repo(SINGLE, ann_override={"dev.sigstore.cosign/bundle": bundle})
    trust = TrustConfig(keys=(load_public_key(case_dir(SINGLE) / "keys/cosign.pub"),))
    checks = run(repo, subject, trust)
    assert not checks[0].verified
    assert "another payload" in checks[0].reason


# ------------------------------------------------------------------ connaisseur multi-signer

MULTI = "key-connaisseur-multi-signer"


def multi_repo() -> tuple[InMemoryRepository, Digest]:
    c = case_json(MULTI)
    d = case_dir(MULTI)
    repo = InMemoryRepository("index.docker.io/securesystemsengineering/testimage")
    image = repo.put_file(d / "image-manifest.json")
    sig = repo.put_file(d / "sig-manifest.json", tag=c["signature_tag"])
    assert str(sig) == c["sig_manifest_digest"]
    repo.put_blob((d / "blobs" / f"sha256-{c['files']['payload.json']['sha256']}").read_bytes())
    return repo, image


def multi_trust(*names: str, ignore_tlog: bool = True) -> TrustConfig:
    return TrustConfig(keys=tuple(load_public_key(case_dir(MULTI) / n) for n in names),
                       ignore_tlog=ignore_tlog)


@pytest.mark.parametrize("exp", case_json(MULTI)["expect"], ids=lambda e: e["id"])
def test_multi_signer_expectations(exp: dict[str, object]) -> None:
    repo, image = multi_repo()
    names = exp.get("keys") or [exp["key"]]
    assert isinstance(names, list)
    trust = multi_trust(*[str(n) for n in names])
    checks = run(repo, image, trust)
    assert len(checks) == 3
    threshold = exp.get("threshold")
    assert isinstance(threshold, int | None)
    assert passes(checks, trust, threshold) is (exp["result"] == "pass")
    if "matching_layers" in exp:
        layers = exp["matching_layers"]
        assert isinstance(layers, list)
        verified = [i for i, c in enumerate(checks) if c.verified]
        assert verified == layers


def test_multi_signer_reports_who_signed_which_layer() -> None:
    repo, image = multi_repo()
    checks = run(repo, image, multi_trust("keys/alice.pub", "keys/bob.pub", "keys/charlie.pub",
                                          "keys/default.pub"))
    assert [c.signer for c in checks] == ["alice.pub", "bob.pub", "charlie.pub"]
    assert [c.location.rsplit(" ", 1)[-1] for c in checks] == \
        ["layers[0]", "layers[1]", "layers[2]"]


def test_multi_signer_fetches_manifest_and_payload_once_whatever_the_keys() -> None:
    repo, image = multi_repo()
    run(repo, image, multi_trust("keys/alice.pub", "keys/bob.pub", "keys/charlie.pub",
                                 "keys/default.pub"))
    blob_fetches = {k: v for k, v in repo.fetches.items() if k.startswith("blob:")}
    assert blob_fetches == {f"blob:sha256:{case_json(MULTI)['files']['payload.json']['sha256']}": 1}
    assert repo.fetches[f"tag:{case_json(MULTI)['signature_tag']}"] == 1


def test_multi_signer_without_tlog_fails_when_tlog_required() -> None:
    repo, image = multi_repo()
    trust = multi_trust("keys/alice.pub", ignore_tlog=False)
    assert not passes(run(repo, image, trust), trust)


# ------------------------------------------------------------------ stackrox ttl.sh ECDSA

TTL = "key-stackrox-ttlsh-ecdsa"


@pytest.mark.parametrize("exp", case_json(TTL)["expect"], ids=lambda e: e["id"])
def test_ttlsh_expectations(exp: dict[str, str]) -> None:
    repo, subject = signed_repo(TTL, payload=exp["payload"], signature=exp["signature"])
    trust = key(TTL, exp["key"])
    checks = run(repo, subject, trust)
    assert checks[0].verified is (exp["result"] == "pass"), checks[0].reason


# ------------------------------------------------------------------ stackrox OCP RSA-4096

OCP = "key-stackrox-ocp-rsa"


@pytest.mark.parametrize("exp", case_json(OCP)["expect"], ids=lambda e: e["id"])
def test_ocp_rsa_expectations(exp: dict[str, str]) -> None:
    repo, subject = signed_repo(OCP)
    rsa_key = "keys/redhat-release-rsa4096.pub"
    if exp["id"] == "pss-must-not-be-required":
        checks = run(repo, subject, key(OCP, rsa_key))
        assert checks[0].verified  # PKCS#1 v1.5 is accepted: PSS is not demanded
        return
    if exp["id"] == "wrong-registry":
        base = key(OCP, rsa_key)
        wrong = TrustConfig(keys=base.keys, ignore_tlog=True,
                            docker_reference=exp["reference"])
        checks = run(repo, subject, wrong)
        assert not checks[0].verified and "docker-reference" in checks[0].reason
        right = TrustConfig(keys=base.keys, ignore_tlog=True,
                            docker_reference=case_json(OCP)["image"]["reference"])
        assert run(repo, subject, right)[0].verified
        return
    checks = run(repo, subject, key(OCP, exp["key"]))
    assert checks[0].verified is (exp["result"] == "pass"), checks[0].reason


# ------------------------------------------------------------------ BYO PKI certificate

BYO = "cert-stackrox-byo-pki"


@pytest.mark.parametrize("exp", case_json(BYO)["expect"], ids=lambda e: e["id"])
def test_byo_pki_expectations(exp: dict[str, str]) -> None:
    repo, subject = signed_repo(BYO)
    d = case_dir(BYO)
    if exp["id"] == "valid-cert+chain":
        roots = load_certificates((d / "chain.pem").read_bytes(), "chain")
        trust = TrustConfig(authorities=(CertificateAuthority("testing-ca", roots),),
                            ignore_tlog=True)
    elif exp["id"] == "valid-public-key-from-cert":
        trust = TrustConfig(keys=(load_public_key(d / "certificate.pem"),), ignore_tlog=True)
    else:
        trust = TrustConfig(identities=(Identity(identity_regexp=".*", issuer_regexp=".*"),))
    checks = run(repo, subject, trust)
    assert checks[0].verified is (exp["result"] == "pass"), checks[0].reason
    if exp["id"] == "fulcio-trust-root":
        assert "no Rekor entry" in checks[0].reason or "Fulcio" in checks[0].reason


def test_byo_pki_other_root_fails() -> None:
    repo, subject = signed_repo(BYO)
    other = load_certificates((case_dir("keyless-cimage-fulcio-rekor") / "chain.pem").read_bytes(),
                              "chain")
    trust = TrustConfig(authorities=(CertificateAuthority("sigstore", other),), ignore_tlog=True)
    checks = run(repo, subject, trust)
    assert not checks[0].verified
    # The chain annotation's self-signed "root" is no CA, and no path reaches sigstore's root.
    assert "does not chain" in checks[0].reason or "not a CA" in checks[0].reason


def test_signature_annotation_is_exact_base64() -> None:
    """Sanity: the fixture signature decodes as cosign wrote it (std base64, padded)."""
    raw = (case_dir(SINGLE) / "signature.b64").read_text()
    assert base64.b64encode(base64.b64decode(raw)).decode() == raw


def test_every_fixture_case_has_tests() -> None:
    """A new case in tests/fixtures/cosign must get tests here or in test_fixture_keyless."""
    from signatures.fixture_cases import FIXTURES
    from signatures.test_fixture_keyless import ATT_CASES, BUNDLE, KEYLESS_CASES

    covered = {SINGLE, REKOR, MULTI, TTL, OCP, BYO, BUNDLE, *KEYLESS_CASES, *ATT_CASES}
    present = {p.name for p in FIXTURES.iterdir() if (p / "case.json").is_file()}
    assert present == covered

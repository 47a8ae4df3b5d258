"""Freshly signed images (cosign format, see cosign_format_signer) for what fixtures cannot give.

Tampered payloads, payloads naming another digest, wrong keys, unsigned images,
signatures in another repository, multi-arch indexes, and bad input that must
be a failed check with a reason: never a crash, never a pass.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imggate.errors import ConfigError, RegistryError, SignatureError
from imggate.models import Digest, SignatureKind
from imggate.signatures import (
    Identity,
    TrustConfig,
    check_signatures,
    default_requirement,
    evaluate,
    load_public_key,
    parse_public_key,
)
from imggate.signatures.keyless import CertificateError, identities
from signatures.cosign_format_signer import (
    CosignFormatSigner,
    make_image,
    make_index,
    simple_signing_payload,
)
from signatures.inmemory import InMemoryRepository

ANN_SIG = "dev.cosignproject.cosign/signature"


def run(repo: InMemoryRepository, digest: Digest, trust: TrustConfig, **kw: object):  # type: ignore[no-untyped-def]
    return asyncio.run(check_signatures(repo, digest, trust, **kw))  # type: ignore[arg-type]


def ok(checks, trust: TrustConfig, threshold: int | None = None) -> bool:  # type: ignore[no-untyped-def]
    return evaluate(default_requirement(trust, threshold), checks)[0]


@pytest.fixture(scope="module")
def alice() -> CosignFormatSigner:
    return CosignFormatSigner()


@pytest.fixture(scope="module")
def mallory() -> CosignFormatSigner:
    return CosignFormatSigner()


def trust_of(*signers: tuple[str, CosignFormatSigner], **kw: object) -> TrustConfig:
    return TrustConfig(keys=tuple(s.trusted(label) for label, s in signers),
                       ignore_tlog=True, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ecdsa-p384", "rsa", "rsa-pss", "ed25519"])
def test_fresh_signature_verifies_for_each_key_type(kind: str) -> None:
    signer = CosignFormatSigner(kind)
    repo = InMemoryRepository()
    image = make_image(repo)
    signer.sign_image(repo, image)
    trust = trust_of(("k", signer))
    checks = run(repo, image, trust)
    assert [c.verified for c in checks] == [True], checks
    assert checks[0].signer == "k" and ok(checks, trust)


def test_unsigned_image_has_no_checks_and_is_not_verified(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    trust = trust_of(("alice", alice))
    checks = run(repo, image, trust)
    assert checks == ()
    met, why = evaluate(default_requirement(trust), checks)
    assert not met and "no verified signature" in why


def test_wrong_key(alice: CosignFormatSigner, mallory: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    mallory.sign_image(repo, image)
    trust = trust_of(("alice", alice))
    checks = run(repo, image, trust)
    assert not checks[0].verified and "alice: signature does not verify" in checks[0].reason
    assert not ok(checks, trust)


def test_tampered_payload_same_descriptor_is_refused(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image)
    payload_digest = Digest.of(simple_signing_payload(image, repo.name))
    repo.blobs[payload_digest] = repo.blobs[payload_digest].replace(b"mem.example", b"mem.examplf")
    checks = run(repo, image, trust_of(("alice", alice)))
    assert not checks[0].verified and "does not match its digest" in checks[0].reason


def test_tampered_payload_signed_bytes_differ(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    original = simple_signing_payload(image, repo.name)
    alice.sign_image(repo, image, payload=original.replace(b"}", b" }", 1),
                     signed_payload=original)
    checks = run(repo, image, trust_of(("alice", alice)))
    # Verified over the bytes as stored: a harmless-looking re-serialisation breaks it.
    assert not checks[0].verified and "signature does not verify" in checks[0].reason


def test_payload_naming_another_digest_is_refused(alice: CosignFormatSigner) -> None:
    """A genuine signature of image B copied to image A's tag must not verify A."""
    repo = InMemoryRepository()
    a, b = make_image(repo), make_image(repo)
    alice.sign_image(repo, b, tag_digest=a)
    checks = run(repo, a, trust_of(("alice", alice)))
    assert not checks[0].verified
    assert f"payload signs {b}, not this image {a}" in checks[0].reason
    assert checks[0].signed_digest == b


def test_payload_of_wrong_type_is_refused(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    payload = simple_signing_payload(image).replace(b"cosign container image signature",
                                                    b"atomic container signature")
    alice.sign_image(repo, image, payload=payload)
    checks = run(repo, image, trust_of(("alice", alice)))
    assert not checks[0].verified and "payload type" in checks[0].reason


def test_signature_in_another_repository(alice: CosignFormatSigner) -> None:
    """COSIGN_REPOSITORY: .sig lives elsewhere; the image repo has none."""
    images = InMemoryRepository("mem.example/app")
    sigs = InMemoryRepository("mem.example/signatures")
    image = make_image(images)
    alice.sign_image(sigs, image, docker_reference="mem.example/app")
    trust = trust_of(("alice", alice))
    assert run(images, image, trust) == ()
    checks = run(images, image, trust, signature_repo=sigs)
    assert checks[0].verified and checks[0].location.startswith("mem.example/signatures:")


def test_multiple_signatures_appended_to_one_manifest(alice: CosignFormatSigner,
                                                      mallory: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    mallory.sign_image(repo, image)
    alice.sign_image(repo, image)
    trust = trust_of(("alice", alice))
    checks = run(repo, image, trust)
    assert [c.verified for c in checks] == [False, True]
    assert ok(checks, trust)


def test_n_keys_m_signatures_is_m_fetches(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    signers = [CosignFormatSigner() for _ in range(3)]
    for i, s in enumerate(signers):
        s.sign_image(repo, image, optional={"n": i})  # three distinct payload blobs
    trust = TrustConfig(keys=tuple(s.trusted(f"k{i}") for i, s in enumerate(signers))
                        + tuple(CosignFormatSigner().trusted(f"other{i}") for i in range(5)),
                        ignore_tlog=True)
    checks = run(repo, image, trust)
    assert [c.signer for c in checks] == ["k0", "k1", "k2"]
    assert sum(v for k, v in repo.fetches.items() if k.startswith("blob:")) == 3
    assert ok(checks, trust, threshold=3) and not ok(checks, trust, threshold=4)


def test_annotation_claims(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image, optional={"env": "prod"})
    key = (alice.trusted("alice"),)
    assert run(repo, image, TrustConfig(keys=key, ignore_tlog=True,
                                        annotations={"env": "prod"}))[0].verified
    bad = run(repo, image, TrustConfig(keys=key, ignore_tlog=True, annotations={"env": "dev"}))
    assert not bad[0].verified and "env=dev" in bad[0].reason


# --------------------------------------------------------------------------- multi-arch


def test_index_signature_covers_platform_manifests(alice: CosignFormatSigner,
                                                   mallory: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    amd, arm = make_image(repo), make_image(repo)
    index = make_index(repo, [(amd, "linux/amd64"), (arm, "linux/arm64")])
    alice.sign_image(repo, index)
    mallory.sign_image(repo, amd)
    trust = trust_of(("alice", alice))
    checks = run(repo, index, trust, platform_digest=amd)
    assert [c.signed_digest for c in checks] == [index]
    assert ok(checks, trust)


def test_platform_signature_counts_only_when_policy_allows(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    amd, arm = make_image(repo), make_image(repo)
    index = make_index(repo, [(amd, "linux/amd64"), (arm, "linux/arm64")])
    alice.sign_image(repo, amd)  # only the child is signed
    strict = trust_of(("alice", alice))
    assert not ok(run(repo, index, strict, platform_digest=amd), strict)
    lenient = trust_of(("alice", alice), accept_platform_signatures=True)
    checks = run(repo, index, lenient, platform_digest=amd)
    assert ok(checks, lenient) and checks[0].signed_digest == amd
    # The other platform's signature never covers this one.
    assert not ok(run(repo, index, lenient, platform_digest=arm), lenient)


# --------------------------------------------------------------------------- attestations by key


def test_key_signed_attestation_with_predicate(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.attest_image(repo, image, "https://slsa.dev/provenance/v1",
                       {"buildDefinition": {"buildType": "https://example/build"}})
    trust = TrustConfig(keys=(alice.trusted("alice"),), ignore_tlog=True,
                        check_signatures=False, check_attestations=True,
                        attestation_types=("https://slsa.dev/provenance/v1",))
    checks = run(repo, image, trust)
    assert checks[0].kind is SignatureKind.ATTESTATION and checks[0].verified
    assert checks[0].predicate == {"buildDefinition": {"buildType": "https://example/build"}}
    assert ok(checks, trust)
    other = TrustConfig(keys=trust.keys, ignore_tlog=True, check_signatures=False,
                        check_attestations=True, attestation_types=("https://spdx.dev/Document",))
    assert not ok(run(repo, image, other), other)


def test_attestation_about_another_image_fails(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    a, b = make_image(repo), make_image(repo)
    from signatures.cosign_format_signer import in_toto_statement
    alice.attest_image(repo, a, "https://example/p", {}, statement=in_toto_statement(
        b, "https://example/p", {}))
    trust = TrustConfig(keys=(alice.trusted("alice"),), ignore_tlog=True,
                        check_signatures=False, check_attestations=True)
    checks = run(repo, a, trust)
    assert not checks[0].verified and "subject does not include" in checks[0].reason


# --------------------------------------------------------------------------- bad input


def test_garbage_base64_signature(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image, signature="!!!not*base64$$$")
    checks = run(repo, image, trust_of(("alice", alice)))
    assert not checks[0].verified and "not valid base64" in checks[0].reason


def test_signature_of_random_bytes(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image, signature=base64.b64encode(b"\x30\x02\x01").decode())
    checks = run(repo, image, trust_of(("alice", alice)))
    assert not checks[0].verified


@pytest.mark.parametrize("payload", [b"", b"not json", b"[]", b'{"critical": 1}',
                                     b'{"critical":{"type":"cosign container image signature",'
                                     b'"image":{"docker-manifest-digest":"sha256:zz"}}}',
                                     b"{" * 10000])
def test_malformed_payloads(alice: CosignFormatSigner, payload: bytes) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image, payload=payload)
    checks = run(repo, image, trust_of(("alice", alice)))
    assert not checks[0].verified and checks[0].reason


def test_50_mb_signature_layer_is_refused_unread(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    big = simple_signing_payload(image) + b" " * (50 * 1024 * 1024)
    alice.sign_image(repo, image, payload=big)
    checks = run(repo, image, trust_of(("alice", alice)))
    assert not checks[0].verified and "over the" in checks[0].reason
    assert not any(k.startswith("blob:") for k in repo.fetches)


def test_layer_that_lies_about_its_size_is_refused(alice: CosignFormatSigner) -> None:
    """The descriptor says 10 bytes; the registry would hand out 50 MB: the fetch limit stops it."""
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image)
    sig_manifest = repo.manifests[repo.tag_map[f"{image.tag_form}.sig"]]
    payload_digest = Digest.of(simple_signing_payload(image, repo.name))
    repo.blobs[payload_digest] = b" " * (50 * 1024 * 1024)
    assert sig_manifest  # descriptor untouched; the blob limit does the work
    with pytest.raises(SignatureError):
        run(repo, image, trust_of(("alice", alice)))


def test_truncated_pem_key_is_a_config_error(alice: CosignFormatSigner) -> None:
    pem = alice.public_pem
    with pytest.raises(ConfigError, match="not a usable PEM"):
        parse_public_key(pem[: len(pem) // 2], "half.pub")


def test_key_file_missing_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="cannot read"):
        load_public_key(tmp_path / "nope.pub")


def _self_signed(san: bool) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    import datetime as dt
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(1)
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1)))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name("a@b.c")]), False)
    return b.sign(key, hashes.SHA256())


def test_certificate_without_san_is_a_failed_check(alice: CosignFormatSigner) -> None:
    cert = _self_signed(san=False)
    with pytest.raises(CertificateError, match="no subjectAlternativeName"):
        identities(cert)
    repo = InMemoryRepository()
    image = make_image(repo)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    alice.sign_image(repo, image, annotations={"dev.sigstore.cosign/certificate": pem})
    trust = TrustConfig(identities=(Identity(identity_regexp=".*", issuer_regexp=".*"),))
    checks = run(repo, image, trust)
    assert not checks[0].verified and checks[0].reason


@pytest.mark.parametrize("pem", ["-----BEGIN CERTIFICATE-----\nMIIB\n", "garbage", ""])
def test_truncated_certificate_annotation_is_a_failed_check(alice: CosignFormatSigner,
                                                            pem: str) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image, annotations={"dev.sigstore.cosign/certificate": pem,
                                               "dev.sigstore.cosign/bundle": "{not json"})
    trust = TrustConfig(identities=(Identity(identity="a@b.c", issuer="x"),))
    checks = run(repo, image, trust)
    assert not checks[0].verified and checks[0].reason


@pytest.mark.parametrize("bundle", ["{}", "[]", '{"SignedEntryTimestamp":"x","Payload":{}}',
                                    '{"SignedEntryTimestamp":"!!","Payload":{"body":"e30=",'
                                    '"integratedTime":1,"logIndex":1,"logID":"zz"}}'])
def test_malformed_rekor_bundle_is_a_failed_check(alice: CosignFormatSigner,
                                                  bundle: str) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image, annotations={"dev.sigstore.cosign/bundle": bundle})
    trust = TrustConfig(keys=(alice.trusted("alice"),))
    checks = run(repo, image, trust)
    assert not checks[0].verified and checks[0].reason


def test_unreachable_registry_is_a_signature_error(alice: CosignFormatSigner) -> None:
    repo = InMemoryRepository()
    image = make_image(repo)
    repo.fail_with = RegistryError("connection refused", registry="mem.example")
    with pytest.raises(SignatureError, match="could not fetch signatures"):
        run(repo, image, trust_of(("alice", alice)))


def test_cosign_save_layout_signatures(alice: CosignFormatSigner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``cosign save`` marks .sig/.att manifests with ``kind`` annotations, not tags."""
    from imggate.registry.layout import OciLayout
    from signatures.cosign_format_signer import write_layout

    repo = InMemoryRepository()
    image = make_image(repo, tag="img")
    alice.sign_image(repo, image)
    alice.attest_image(repo, image, "https://example/p", {"x": 1})
    layout = OciLayout(write_layout(repo, tmp_path / "saved", cosign_save=True)).repository()
    trust = TrustConfig(keys=(alice.trusted("alice"),), ignore_tlog=True,
                        check_attestations=True)
    checks = asyncio.run(check_signatures(layout, image, trust))
    assert [(c.kind, c.verified) for c in checks] == [(SignatureKind.SIGNATURE, True),
                                                      (SignatureKind.ATTESTATION, True)]
    assert checks[1].predicate == {"x": 1}


def test_signature_manifest_with_too_many_layers(alice: CosignFormatSigner) -> None:
    from imggate.signatures.discovery import MAX_LAYERS

    repo = InMemoryRepository()
    image = make_image(repo)
    for _ in range(MAX_LAYERS + 1):
        alice.sign_image(repo, image)
    checks = run(repo, image, trust_of(("alice", alice)))
    assert len(checks) == 1 and not checks[0].verified and "over the limit" in checks[0].reason
    assert not any(k.startswith("blob:") for k in repo.fetches)


def test_unexpected_verifier_failure_is_a_failed_check(alice: CosignFormatSigner,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import imggate.signatures.cosign as cosign_mod

    def boom(*_: object) -> None:
        raise RuntimeError("surprise")

    monkeypatch.setattr(cosign_mod, "verify_signature", boom)
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.sign_image(repo, image)
    checks = run(repo, image, trust_of(("alice", alice)))
    assert not checks[0].verified and "RuntimeError" in checks[0].reason


def test_a_predicate_type_annotation_decides_nothing(alice: CosignFormatSigner) -> None:
    # The layer annotation is unsigned: an SBOM is fetched and judged by its statement.
    repo = InMemoryRepository()
    image = make_image(repo)
    alice.attest_image(repo, image, "https://spdx.dev/Document", {"big": "x" * 100_000})
    alice.attest_image(repo, image, "https://slsa.dev/provenance/v1", {"ok": True})
    trust = TrustConfig(keys=(alice.trusted("alice"),), ignore_tlog=True, check_signatures=False,
                        check_attestations=True,
                        attestation_types=("https://slsa.dev/provenance/v1",))
    checks = run(repo, image, trust)
    assert [c.verified for c in checks] == [False, True]
    assert "https://spdx.dev/Document is not one of" in checks[0].reason
    assert sum(v for k, v in repo.fetches.items() if k.startswith("blob:")) == 2

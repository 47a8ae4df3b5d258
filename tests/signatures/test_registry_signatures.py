"""Signatures served by a real Distribution registry (docker-registry 2.8, no referrers API).

The real fixture signatures are pushed under cosign's tags. The fixture images
themselves cannot be pushed (their layer blobs are not in the sources), and
neither can connaisseur's exact ``.sig`` manifest (its config blob is missing),
so ``.sig`` manifests are rebuilt around the exact payload blobs and
annotation values; ``.att`` manifests are pushed byte for byte. Verification
then goes through imggate's RegistryClient, by digest. Fresh cosign-format
images are pushed whole and checked through ``imggate verify``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imggate.models import Digest, SignatureCheck
from imggate.registry.client import RegistryClient
from imggate.registry.credentials import CredentialStore
from imggate.registry.options import RegistryOptions
from imggate.signatures import (
    Identity,
    TrustConfig,
    check_signatures,
    default_requirement,
    evaluate,
    load_public_key,
)
from registry_harness import Registry, run_imggate, tampered
from signatures.cosign_format_signer import (
    OCI_INDEX,
    OCI_MANIFEST,
    CosignFormatSigner,
    append_layer,
    make_image,
    make_index,
    push_repository,
    simple_signing_payload,
)
from signatures.fixture_cases import case_dir, case_json, signed_repo
from signatures.inmemory import InMemoryRepository
from signatures.test_fixture_keyless import BUNDLE, BUNDLE_TYPE, bundle_repo

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

GITHUB = "https://github.com/login/oauth"
ACTIONS = "https://token.actions.githubusercontent.com"


def check(registry: Registry, repository: str, digest: Digest,
          trust: TrustConfig) -> tuple[SignatureCheck, ...]:
    async def go() -> tuple[SignatureCheck, ...]:
        opts = RegistryOptions(credentials=CredentialStore(),
                               insecure_registries=frozenset({registry.host}))
        async with RegistryClient(opts) as client:
            return await check_signatures(client.repository(registry.host, repository),
                                          digest, trust)
    return asyncio.run(go())


def met(checks: tuple[SignatureCheck, ...], trust: TrustConfig, k: int | None = None) -> bool:
    return evaluate(default_requirement(trust, k), checks)[0]


def keys(case: str, *names: str, **kw: Any) -> TrustConfig:
    return TrustConfig(keys=tuple(load_public_key(case_dir(case) / n) for n in names), **kw)


def keyless(identity: str, issuer: str = GITHUB, **kw: Any) -> TrustConfig:
    return TrustConfig(identities=(Identity(identity=identity, issuer=issuer),), **kw)


SIG_CASES: list[tuple[str, dict[str, Any], Callable[[], TrustConfig], Callable[[], TrustConfig]]] = [
    ("key-cimage-single-sample", {},
     lambda: keys("key-cimage-single-sample", "keys/cosign.pub", ignore_tlog=True),
     lambda: keys("key-cimage-single-sample", "keys/cosign2.pub", ignore_tlog=True)),
    ("key-cimage-rekor-set", {},
     lambda: keys("key-cimage-rekor-set", "keys/cosign2.pub"),
     lambda: keys("key-cimage-rekor-set", "keys/cosign.pub")),
    ("key-stackrox-ttlsh-ecdsa", {"payload": "sig-2/payload.json",
                                  "signature": "sig-2/signature.b64"},
     lambda: keys("key-stackrox-ttlsh-ecdsa", "keys/key2.pub", ignore_tlog=True),
     lambda: keys("key-stackrox-ttlsh-ecdsa", "keys/key1.pub", ignore_tlog=True)),
    ("key-stackrox-ocp-rsa", {},
     lambda: keys("key-stackrox-ocp-rsa", "keys/redhat-release-rsa4096.pub", ignore_tlog=True),
     lambda: keys("key-stackrox-ocp-rsa", "keys/key1-ecdsa.pub", ignore_tlog=True)),
    ("cert-stackrox-byo-pki", {},
     lambda: keys("cert-stackrox-byo-pki", "certificate.pem", ignore_tlog=True),
     lambda: keyless("testing")),
    ("keyless-cimage-fulcio-rekor", {}, lambda: keyless("mitr@redhat.com"),
     lambda: keyless("mitr@redhat.com", "https://accounts.google.com")),
    ("keyless-cimage-standalone-2022", {}, lambda: keyless("mitr@redhat.com"),
     lambda: keyless("someone@example.com")),
    ("keyless-stackrox-ttlsh-2025", {}, lambda: keyless("shesselm@redhat.com"),
     lambda: keyless("shesselm@redhat.com", "https://accounts.google.com")),
]


@pytest.mark.parametrize(("case", "files", "good", "bad"), SIG_CASES, ids=[c[0] for c in SIG_CASES])
def test_fixture_signatures_from_registry(anon_registry: Registry, case: str,
                                          files: dict[str, str], good: Callable[[], TrustConfig],
                                          bad: Callable[[], TrustConfig]) -> None:
    c = case_json(case)
    image = c.get("image") or next(iter(c["images"].values()))
    digest = Digest.parse(image["digest"])
    repo, _ = signed_repo(case, digest=digest, **files)
    name = f"sigtest/fixtures/{case}"
    push_repository(repo, anon_registry.url, name)
    ok = check(anon_registry, name, digest, good())
    assert len(ok) == 1 and ok[0].verified, ok[0].reason
    assert met(ok, good())
    no = check(anon_registry, name, digest, bad())
    assert not no[0].verified and not met(no, bad())


def test_connaisseur_multi_signer_from_registry(anon_registry: Registry) -> None:
    case = "key-connaisseur-multi-signer"
    c = case_json(case)
    digest = Digest.parse(c["image"]["digest"])
    real = json.loads((case_dir(case) / "sig-manifest.json").read_bytes())
    payload = (case_dir(case) / "payload.json").read_bytes()
    repo = InMemoryRepository()
    for layer in real["layers"]:
        append_layer(repo, digest, "sig", payload, layer["mediaType"], layer["annotations"])
    push_repository(repo, anon_registry.url, "sigtest/fixtures/connaisseur")
    trust = keys(case, "keys/alice.pub", "keys/bob.pub", "keys/charlie.pub", ignore_tlog=True)
    checks = check(anon_registry, "sigtest/fixtures/connaisseur", digest, trust)
    assert [x.signer for x in checks] == ["alice.pub", "bob.pub", "charlie.pub"]
    assert met(checks, trust, 3)
    two = keys(case, "keys/alice.pub", "keys/bob.pub", ignore_tlog=True)
    assert met(check(anon_registry, "sigtest/fixtures/connaisseur", digest, two), two, 2)
    assert not met(check(anon_registry, "sigtest/fixtures/connaisseur", digest, two), two, 3)


@pytest.mark.parametrize("case", ["att-slsa-generator-v1.4.0-intoto-docker-manifest",
                                  "att-slsa-generator-v1.9.0-intoto",
                                  "att-slsa-generator-v2.1.0-dsse"])
def test_fixture_attestations_from_registry(anon_registry: Registry, case: str) -> None:
    c = case_json(case)
    digest = Digest.parse(c["image"]["digest"])
    blobs = case_dir(case) / "oci-layout" / "blobs" / "sha256"
    att_raw = (case_dir(case) / "att-manifest.json").read_bytes()
    att = json.loads(att_raw)
    repo = InMemoryRepository()
    for desc in (att["config"], *att["layers"]):
        repo.put_blob((blobs / desc["digest"].split(":")[1]).read_bytes())
    repo.put_manifest(att_raw, tag=c["attestation_tag"])  # exact bytes
    name = f"sigtest/fixtures/{case.replace('.', '-')}"
    push_repository(repo, anon_registry.url, name)
    trust = TrustConfig(identities=(Identity(identity=c["identity"]["san"], issuer=ACTIONS),),
                        check_signatures=False, check_attestations=True,
                        attestation_types=("https://slsa.dev/provenance/v0.2",))
    checks = check(anon_registry, name, digest, trust)
    assert checks[0].verified, checks[0].reason
    assert checks[0].predicate is not None and "builder" in checks[0].predicate
    v1 = TrustConfig(identities=trust.identities, check_signatures=False,
                     check_attestations=True, attestation_types=("https://slsa.dev/provenance/v1",))
    assert not met(check(anon_registry, name, digest, v1), v1)


def test_fixture_bundle_via_referrers_tag_fallback(anon_registry: Registry) -> None:
    c = case_json(BUNDLE)
    digest = Digest.parse(c["image"]["digest"])
    repo = bundle_repo((case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes(), digest)
    referrer = next(iter(repo.manifests))
    # Distribution 2.8 has no referrers API: cosign then writes the sha256-<hex> tag index.
    fallback = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": str(referrer),
         "size": len(repo.manifests[referrer]), "artifactType": BUNDLE_TYPE}]}
    repo.put_manifest(json.dumps(fallback).encode(), tag=digest.tag_form)
    push_repository(repo, anon_registry.url, "sigtest/fixtures/bundle")
    trust = TrustConfig(identities=(Identity(identity="cody@soyland.com", issuer=GITHUB),),
                        check_signatures=False, check_attestations=True)
    checks = check(anon_registry, "sigtest/fixtures/bundle", digest, trust)
    assert len(checks) == 1 and checks[0].verified, checks[0].reason
    other = keyless("someone@example.com", check_signatures=False, check_attestations=True)
    assert not check(anon_registry, "sigtest/fixtures/bundle", digest, other)[0].verified


# --------------------------------------------------------------------------- fresh images, CLI


@pytest.fixture(scope="module")
def alice(tmp_path_factory: pytest.TempPathFactory) -> tuple[CosignFormatSigner, Path]:
    signer = CosignFormatSigner()
    path = tmp_path_factory.mktemp("keys") / "alice.pub"
    path.write_bytes(signer.public_pem)
    return signer, path


def _verify(registry: Registry, ref: str, key: Path, *extra: str,
            env: dict[str, str | None] | None = None):  # type: ignore[no-untyped-def]
    return run_imggate(["verify", ref, "--key", str(key), "--insecure-ignore-tlog",
                        "--insecure-registry", registry.host, *extra], env=env or {})


def test_cli_signed_unsigned_and_wrong_key(anon_registry: Registry,
                                           alice: tuple[CosignFormatSigner, Path],
                                           tmp_path: Path) -> None:
    signer, key = alice
    repo = InMemoryRepository(f"{anon_registry.host}/sigtest/cli")
    signed = make_image(repo, tag="signed")
    make_image(repo, tag="unsigned")
    signer.sign_image(repo, signed)
    push_repository(repo, anon_registry.url, "sigtest/cli")
    r = _verify(anon_registry, anon_registry.ref("sigtest/cli", "signed"), key)
    assert r.code == 0, r.output
    assert f"@{signed}: VERIFIED" in r.stdout
    r = _verify(anon_registry, anon_registry.ref("sigtest/cli", "unsigned"), key)
    assert r.code == 1 and "no signatures found" in r.stdout
    other = tmp_path / "other.pub"
    other.write_bytes(CosignFormatSigner().public_pem)
    r = _verify(anon_registry, anon_registry.ref("sigtest/cli", "signed"), other)
    assert r.code == 1 and "signature does not verify" in r.stdout


def test_cli_tampered_payload_on_registry_disk(anon_registry: Registry,
                                               alice: tuple[CosignFormatSigner, Path]) -> None:
    signer, key = alice
    repo = InMemoryRepository(f"{anon_registry.host}/sigtest/tamper")
    image = make_image(repo, tag="v1")
    signer.sign_image(repo, image)
    push_repository(repo, anon_registry.url, "sigtest/tamper")
    payload = Digest.of(simple_signing_payload(image, repo.name))
    with tampered(anon_registry, str(payload)):
        r = _verify(anon_registry, anon_registry.ref("sigtest/tamper", "v1"), key)
    assert r.code == 1 and "does not match its digest" in r.stdout, r.output


def test_cli_cosign_repository(anon_registry: Registry,
                               alice: tuple[CosignFormatSigner, Path]) -> None:
    signer, key = alice
    images = InMemoryRepository(f"{anon_registry.host}/sigtest/app")
    sigs = InMemoryRepository(f"{anon_registry.host}/sigtest/sigs")
    image = make_image(images, tag="v1")
    signer.sign_image(sigs, image, docker_reference=images.name)
    push_repository(images, anon_registry.url, "sigtest/app")
    push_repository(sigs, anon_registry.url, "sigtest/sigs")
    ref = anon_registry.ref("sigtest/app", "v1")
    assert _verify(anon_registry, ref, key).code == 1
    r = _verify(anon_registry, ref, key, env={"COSIGN_REPOSITORY": f"{sigs.name}"})
    assert r.code == 0, r.output
    r = _verify(anon_registry, ref, key, "--signature-repository", sigs.name)
    assert r.code == 0, r.output


def test_cli_multi_arch_index_signature(anon_registry: Registry,
                                        alice: tuple[CosignFormatSigner, Path]) -> None:
    signer, key = alice
    repo = InMemoryRepository(f"{anon_registry.host}/sigtest/multi")
    amd, arm = make_image(repo), make_image(repo)
    index = make_index(repo, [(amd, "linux/amd64"), (arm, "linux/arm64")], tag="v1")
    signer.sign_image(repo, index)
    push_repository(repo, anon_registry.url, "sigtest/multi")
    ref = anon_registry.ref("sigtest/multi", "v1")
    r = _verify(anon_registry, ref, key, "--platform", "linux/arm64", "--json")
    assert r.code == 0, r.output
    assert json.loads(r.stdout)[0]["signatures"][0]["signedDigest"] == str(index)


def test_cli_unreachable_registry_is_exit_3(alice: tuple[CosignFormatSigner, Path]) -> None:
    _, key = alice
    r = run_imggate(["verify", "127.0.0.1:9/none/app:v1", "--key", str(key),
                     "--insecure-registry", "127.0.0.1:9", "--timeout", "2"])
    assert r.code == 3, r.output


def test_cli_tampered_signature_manifest_on_registry_disk(
        anon_registry: Registry, alice: tuple[CosignFormatSigner, Path]) -> None:
    signer, key = alice
    repo = InMemoryRepository(f"{anon_registry.host}/sigtest/tampersig")
    image = make_image(repo, tag="v1")
    signer.sign_image(repo, image)
    push_repository(repo, anon_registry.url, "sigtest/tampersig")
    sig_manifest = repo.tag_map[f"{image.tag_form}.sig"]
    with tampered(anon_registry, str(sig_manifest)):
        r = _verify(anon_registry, anon_registry.ref("sigtest/tampersig", "v1"), key)
    # The registry announces one digest and serves other bytes: refused, never verified.
    assert r.code == 1, r.output
    assert "signature manifest does not match its digest" in r.stdout

"""Discovery by content: a referrer is what its manifest holds, never what a label claims.

The real slsa-github-generator v2.1.0 container provenance (public-good Fulcio +
Rekor ``dsse`` entry, ``tests/fixtures/cosign/att-slsa-generator-v2.1.0-dsse``) is
served three ways on a Distribution registry without the referrers API: as
cosign's ``.att`` tag, as an OCI 1.1 referrer listed in the ``sha256-<hex>``
fallback index with its artifact type, and behind a GHCR-style fallback index
whose entries say ``application/vnd.oci.empty.v1+json`` and whose manifest has
no artifact type at all (cosign#4641). The envelope layer and its cosign
annotations are the exact fixture bytes; only the unsigned manifests around
them are built here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from imggate.models import Digest, SignatureCheck
from imggate.registry.client import RegistryClient
from imggate.registry.credentials import CredentialStore
from imggate.registry.interface import Manifest
from imggate.registry.options import RegistryOptions
from imggate.signatures import Identity, TrustConfig, check_signatures
from imggate.signatures.discovery import classify, discover
from registry_harness import Registry, run_imggate
from signatures.cosign_format_signer import (
    OCI_INDEX,
    OCI_MANIFEST,
    push_repository,
    write_layout,
)
from signatures.fixture_cases import case_dir, case_json
from signatures.inmemory import InMemoryRepository
from signatures.test_fixture_keyless import BUNDLE, bundle_repo

CASE = "att-slsa-generator-v2.1.0-dsse"
ACTIONS = "https://token.actions.githubusercontent.com"
SLSA02 = "https://slsa.dev/provenance/v0.2"
SLSA1 = "https://slsa.dev/provenance/v1"
DSSE = "application/vnd.dsse.envelope.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def _case() -> tuple[dict[str, Any], Digest, dict[str, Any]]:
    c = case_json(CASE)
    att = json.loads((case_dir(CASE) / "att-manifest.json").read_bytes())
    return c, Digest.parse(c["image"]["digest"]), att


def _envelope_layer(repo: InMemoryRepository, ann: dict[str, str] | None = None
                    ) -> dict[str, Any]:
    """The exact ``.att`` layer (blob and cosign annotations), its annotations overridable."""
    _, _, att = _case()
    layer = dict(att["layers"][0])
    blobs = case_dir(CASE) / "oci-layout" / "blobs" / "sha256"
    repo.put_blob((blobs / layer["digest"].split(":")[1]).read_bytes())
    layer["annotations"] = {**layer["annotations"], **(ann or {})}
    return layer


def att_tag_repo(ann: dict[str, str] | None = None) -> tuple[InMemoryRepository, Digest]:
    """The ``.att`` form: exact manifest bytes unless annotations are overridden."""
    c, digest, att = _case()
    repo = InMemoryRepository()
    blobs = case_dir(CASE) / "oci-layout" / "blobs" / "sha256"
    repo.put_blob((blobs / att["config"]["digest"].split(":")[1]).read_bytes())
    if ann is None:
        repo.put_blob((blobs / att["layers"][0]["digest"].split(":")[1]).read_bytes())
        repo.put_manifest((case_dir(CASE) / "att-manifest.json").read_bytes(),
                          tag=c["attestation_tag"])
    else:
        att = {**att, "layers": [_envelope_layer(repo, ann)]}
        repo.put_manifest(json.dumps(att).encode(), tag=c["attestation_tag"])
    return repo, digest


def referrer_repo(*, labelled: bool, repo: InMemoryRepository | None = None,
                  manifest_ann: dict[str, str] | None = None,
                  index_type: str | None = None) -> tuple[InMemoryRepository, Digest]:
    """The envelope as an OCI 1.1 referrer listed in the ``sha256-<hex>`` fallback index.

    ``labelled``: the manifest and index entry carry the DSSE artifact type (cosign's
    oci-1-1 mode); otherwise GHCR's shape: no artifact type on the manifest, an empty
    config, and ``application/vnd.oci.empty.v1+json`` in the index entry.
    """
    _, digest, _ = _case()
    repo = repo or InMemoryRepository()
    empty = repo.put_blob(b"{}")
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY, "size": 2, "digest": str(empty)},
        "layers": [_envelope_layer(repo)],
        "subject": {"mediaType": OCI_INDEX, "size": 856, "digest": str(digest)},
    }
    if labelled:
        manifest["artifactType"] = DSSE
    if manifest_ann:
        manifest["annotations"] = manifest_ann
    raw = json.dumps(manifest).encode()
    ref = repo.put_manifest(raw)
    entry = {"mediaType": OCI_MANIFEST, "digest": str(ref), "size": len(raw),
             "artifactType": index_type or (DSSE if labelled else EMPTY)}
    old = repo.tag_map.get(digest.tag_form)
    entries = json.loads(repo.manifests[old])["manifests"] if old else []
    fallback = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*entries, entry]}
    repo.put_manifest(json.dumps(fallback).encode(), tag=digest.tag_form)
    return repo, digest


def trust(*types: str) -> TrustConfig:
    c = case_json(CASE)
    return TrustConfig(identities=(Identity(identity=c["identity"]["san"], issuer=ACTIONS),),
                       check_signatures=False, check_attestations=True,
                       attestation_types=types)


def run(repo: InMemoryRepository, digest: Digest, tc: TrustConfig) -> tuple[SignatureCheck, ...]:
    return asyncio.run(check_signatures(repo, digest, tc))


def on_registry(registry: Registry, name: str, digest: Digest,
                tc: TrustConfig) -> tuple[SignatureCheck, ...]:
    async def go() -> tuple[SignatureCheck, ...]:
        opts = RegistryOptions(credentials=CredentialStore(),
                               insecure_registries=frozenset({registry.host}))
        async with RegistryClient(opts) as client:
            return await check_signatures(client.repository(registry.host, name), digest, tc)
    return asyncio.run(go())


# --------------------------------------------------------------------------- classification


def _manifest(doc: dict[str, Any]) -> Manifest:
    raw = json.dumps(doc).encode()
    return Manifest.parse(raw, Digest.of(raw), None, "test")


def _doc(artifact: str | None, config: str, *layers: str) -> dict[str, Any]:
    d = "sha256:" + "0" * 64
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": config, "size": 2, "digest": d},
                           "layers": [{"mediaType": m, "size": 1, "digest": d} for m in layers]}
    if artifact is not None:
        doc["artifactType"] = artifact
    return doc


@pytest.mark.parametrize(("doc", "kind"), [
    (_doc("application/vnd.dev.sigstore.bundle.v0.3+json", EMPTY, "application/octet-stream"),
     "bundle"),
    (_doc(EMPTY, EMPTY, "application/vnd.dev.sigstore.bundle.v0.3+json"), "bundle"),
    (_doc(None, "application/vnd.dev.sigstore.bundle+json;version=0.3", "x/y"), "bundle"),
    (_doc(None, EMPTY, DSSE), "attestation"),
    (_doc("application/spdx+json", EMPTY, DSSE), "attestation"),
    (_doc(None, "application/vnd.oci.image.config.v1+json",
          "application/vnd.dev.cosign.simplesigning.v1+json"), "signature"),
    (_doc("application/spdx+json", EMPTY, "application/spdx+json"), None),
])
def test_a_referrer_is_classified_by_its_content(doc: dict[str, Any], kind: str | None) -> None:
    found = classify(_manifest(doc))
    assert (found.value if found else None) == kind


# --------------------------------------------------------------------------- the three forms


@pytest.mark.registry
@pytest.mark.usefixtures("isolated_auth_env")
@pytest.mark.parametrize("form", ["att", "referrer", "ghcr-fallback"])
def test_slsa_provenance_found_and_verified_in_each_form(anon_registry: Registry,
                                                         form: str) -> None:
    if form == "att":
        repo, digest = att_tag_repo()
    else:
        repo, digest = referrer_repo(labelled=form == "referrer")
    name = f"discovery/{form}"
    push_repository(repo, anon_registry.url, name)
    checks = on_registry(anon_registry, name, digest, trust(SLSA02))
    assert len(checks) == 1, checks
    c = checks[0]
    assert c.verified, c.reason
    assert c.predicate_type == SLSA02 and c.tlog
    assert c.predicate is not None and c.predicate["builder"]["id"].startswith(
        "https://github.com/slsa-framework/slsa-github-generator/")
    assert ("(referrer)" in c.location) == (form != "att")
    # Another image's digest: found nowhere, counts for nothing.
    other = Digest.parse("sha256:" + "1" * 64)
    assert not any(x.verified for x in on_registry(anon_registry, name, other, trust(SLSA02)))


def test_ghcr_fallback_on_the_in_memory_source_too() -> None:
    repo, digest = referrer_repo(labelled=False)
    checks = run(repo, digest, trust(SLSA02))
    assert [c.verified for c in checks] == [True]


# --------------------------------------------------------------------------- several, once each


def test_every_referrer_found_each_fetched_once() -> None:
    # The .att tag, a labelled referrer and a GHCR-style one share one envelope blob; a
    # Sigstore bundle (another image's: it fails its subject check) and an SBOM artifact
    # that holds nothing signed sit beside them in the same fallback index.
    repo, digest = att_tag_repo()
    referrer_repo(labelled=True, repo=repo)
    referrer_repo(labelled=False, repo=repo, manifest_ann={"purpose": "ghcr"})
    bundle = (case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes()
    side = bundle_repo(bundle, digest)
    for d, raw in side.manifests.items():
        repo.put_manifest(raw, digest=d)
    for d, raw in side.blobs.items():
        repo.put_blob(raw, digest=d)
    sbom_blob = repo.put_blob(b'{"spdxVersion": "SPDX-2.3"}')
    empty = repo.put_blob(b"{}")
    sbom = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "artifactType": "application/spdx+json",
                       "config": {"mediaType": EMPTY, "size": 2, "digest": str(empty)},
                       "layers": [{"mediaType": "application/spdx+json", "size": 27,
                                   "digest": str(sbom_blob)}],
                       "subject": {"mediaType": OCI_INDEX, "size": 856,
                                   "digest": str(digest)}}).encode()
    sbom_digest = repo.put_manifest(sbom)
    index = json.loads(repo.manifests[repo.tag_map[digest.tag_form]])
    index["manifests"] += [
        {"mediaType": OCI_MANIFEST, "digest": str(d), "size": len(side.manifests[d]),
         "artifactType": EMPTY} for d in side.manifests]
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": str(sbom_digest),
                               "size": len(sbom), "artifactType": "application/spdx+json"})
    # A fallback index may list one manifest twice: it is still read once.
    index["manifests"].append(dict(index["manifests"][0]))
    repo.put_manifest(json.dumps(index).encode(), tag=digest.tag_form)

    found = asyncio.run(discover(repo, digest, trust(SLSA02)))
    kinds = sorted(a.kind.value for a in found)
    assert kinds == ["attestation", "attestation", "attestation", "bundle"]
    manifests = {k: v for k, v in repo.fetches.items() if k.startswith("manifest:")}
    assert all(v == 1 for v in manifests.values()), manifests
    assert f"manifest:{sbom_digest}" in manifests  # looked at, by content
    blobs = {k: v for k, v in repo.fetches.items() if k.startswith("blob:")}
    assert all(v == 1 for v in blobs.values()), blobs
    assert f"blob:{sbom_blob}" not in blobs  # nothing signed in it: never downloaded
    checks = run(repo, digest, trust(SLSA02))
    assert sum(c.verified for c in checks) == 3
    bundle_ref = str(next(iter(side.manifests)))
    assert [c.location for c in checks if not c.verified] == [
        f"{repo.name}@{bundle_ref} (referrer) layers[0]"]


# --------------------------------------------------------------------------- lying labels


def test_a_lying_predicate_type_annotation_does_not_hide_an_attestation() -> None:
    # The real v0.2 provenance, its unsigned layer annotation claiming an SPDX document:
    # asked for SLSA v0.2 it is found and verified (it used to be skipped, unfetched).
    repo, digest = att_tag_repo({"predicateType": "https://spdx.dev/Document"})
    checks = run(repo, digest, trust(SLSA02))
    assert [c.verified for c in checks] == [True]
    assert checks[0].predicate_type == SLSA02


def test_a_lying_predicate_type_annotation_does_not_fake_an_attestation() -> None:
    # Claiming SLSA v1 in the annotation does not make the v0.2 statement one.
    repo, digest = att_tag_repo({"predicateType": SLSA1})
    checks = run(repo, digest, trust(SLSA1))
    assert [c.verified for c in checks] == [False]
    assert checks[0].predicate_type == SLSA02
    assert "is not one of https://slsa.dev/provenance/v1" in checks[0].reason


def test_lying_referrer_labels_neither_hide_nor_fake() -> None:
    # An index entry calling the referrer an SBOM and a manifest annotation naming another
    # predicate type change nothing: the verified statement decides.
    lies = {"dev.sigstore.bundle.predicateType": SLSA1, "predicateType": SLSA1}
    repo, digest = referrer_repo(labelled=False, manifest_ann=lies,
                                 index_type="application/spdx+json")
    assert [c.verified for c in run(repo, digest, trust(SLSA02))] == [True]
    faked = run(repo, digest, trust(SLSA1))
    assert [c.verified for c in faked] == [False] and faked[0].predicate_type == SLSA02


def test_cli_type_accepts_provenance_whose_annotation_lies(tmp_path: Path) -> None:
    # The image index is public but its layers are not, so a registry would refuse it:
    # the image and its .att go into an OCI layout, which `verify oci:` reads.
    repo, _ = att_tag_repo({"predicateType": "https://spdx.dev/Document"})
    for blob in (case_dir(CASE) / "oci-layout" / "blobs" / "sha256").iterdir():
        repo.put_blob(blob.read_bytes())  # the image's JSON blobs (its layers are omitted)
    repo.put_file(case_dir(CASE) / "image-index.json", tag="app")
    layout = write_layout(repo, tmp_path / "layout")
    c = case_json(CASE)
    base = ["verify", f"oci:{layout}:app", "--certificate-identity", c["identity"]["san"],
            "--certificate-oidc-issuer", ACTIONS]
    ok = run_imggate([*base, "--type", "slsaprovenance02"])
    assert ok.code == 0, ok.output
    bad = run_imggate([*base, "--type", "spdx"])
    assert bad.code == 1, bad.output

"""GitHub's own Sigstore instance: real bundles verified against GitHub's trusted root, offline.

Real data (``tests/fixtures/sigstore-roots``, sources in tests/fixtures/SOURCES.md):
``gh attestation trusted-root``'s output as published in a public repository
(public-good and GitHub's instance, one per line), its GitHub line alone as a
``trusted_root.json``, GitHub CLI's private-repository bundle (2024, signed by
``fulcio.githubapp.com`` and stamped by ``timestamp.githubapp.com``, no log) and
a 2025 bundle of ``actions/attest-build-provenance``'s GitHub-instance prober.
Both bundles are about files, not images: their digests are used only with
``verify --bundle --digest``. The negative roots are made in the tests from the
real one by removing or narrowing one authority.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixture_paths import FIXTURES
from imggate.signatures.trustroot import load_trusted_roots
from registry_harness import no_network, run_imggate

ROOTS = FIXTURES / "sigstore-roots"
GH_ROOTS = ROOTS / "gh-attestation-trusted-root.jsonl"
GITHUB_ROOT = ROOTS / "github-trusted-root.json"
PUBLIC_GOOD = ROOTS / "production-trusted-root.json"
ACTIONS = "https://token.actions.githubusercontent.com"

PRIVATE = ROOTS / "github-provenance-demo-0.0.12-bundle.jsonl"
PRIVATE_DIGEST = "sha256:ae57936def59bc4c75edd3a837d89bcefc6d3a5e31d55a6fa7a71624f92c3c3b"
PRIVATE_SAN = ("https://github.com/actions/attest-demo/.github/workflows/build-python.yml"
               "@refs/heads/main")
PRIVATE_STAMP = "2024-04-22T17:33:26+00:00"

PROBER = ROOTS / "github-prober-13531551.sigstore.json"
PROBER_DIGEST = "sha256:b03d18ed0a16864ef2d2e559c660159a2170b9d086a1f42f570b1679326b90e6"
PROBER_SAN = ("https://github.com/actions/attest-build-provenance/.github/workflows/prober.yml"
              "@refs/heads/main")


def verify(bundle: Path, digest: str, *roots: Path, identity: str = PRIVATE_SAN
           ) -> tuple[int, dict[str, object]]:
    args = ["verify", "--bundle", str(bundle), "--digest", digest,
            "--certificate-identity", identity, "--certificate-oidc-issuer", ACTIONS, "--json"]
    for r in roots:
        args += ["--trusted-root", str(r)]
    r = run_imggate(args)
    assert r.stdout.strip(), r.stderr
    doc: dict[str, object] = json.loads(r.stdout)[0]
    return r.code, doc


def only_signature(doc: dict[str, object]) -> dict[str, object]:
    sigs = doc["signatures"]
    assert isinstance(sigs, list) and len(sigs) == 1, sigs
    first: dict[str, object] = sigs[0]
    return first


def github_root_doc() -> dict[str, object]:
    doc: dict[str, object] = json.loads(GITHUB_ROOT.read_bytes())
    return doc


def write_root(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "root.json"
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------- the roots


def test_gh_trusted_root_output_is_read_as_two_roots() -> None:
    public, github = load_trusted_roots(GH_ROOTS)
    assert public.tlogs and "https://fulcio.sigstore.dev" in public.label
    # GitHub's instance: Fulcio and TSA generations, and no transparency log at all.
    assert not github.tlogs and not github.ctlogs
    assert {ca.uri for ca in github.certificate_authorities} == {"fulcio.githubapp.com"}
    assert {t.uri for t in github.timestamp_authorities} == {"timestamp.githubapp.com"}
    assert "line 2" in github.source


# --------------------------------------------------------------------------- verifies


def test_private_repository_bundle_verifies_against_githubs_root_file() -> None:
    for roots in ((GITHUB_ROOT,), (GH_ROOTS,)):
        code, doc = verify(PRIVATE, PRIVATE_DIGEST, *roots)
        assert code == 0, doc
        sig = only_signature(doc)
        assert sig["verified"] is True and sig["kind"] == "attestation"
        assert sig["predicateType"] == "https://slsa.dev/provenance/v1"
        # Proved by GitHub's timestamp authority: no log entry exists or is claimed.
        assert sig["timestamped"] is True and sig["tlog"] is False
        reason = str(sig["reason"])
        assert f"timestamped {PRIVATE_STAMP}" in reason and "fulcio.githubapp.com" in reason
        assert sig["signer"] == f"{PRIVATE_SAN} ({ACTIONS})"


def test_a_later_generation_of_githubs_ca_and_tsa_verifies_too() -> None:
    code, doc = verify(PROBER, PROBER_DIGEST, GH_ROOTS, identity=PROBER_SAN)
    assert code == 0, doc
    sig = only_signature(doc)
    assert sig["timestamped"] is True and "timestamped 2025-11-18T07:58:34+00:00" in str(
        sig["reason"])


# --------------------------------------------------------------------------- fails


def test_fails_against_the_public_good_root_alone() -> None:
    for bundle, digest, san in ((PRIVATE, PRIVATE_DIGEST, PRIVATE_SAN),
                                (PROBER, PROBER_DIGEST, PROBER_SAN)):
        code, doc = verify(bundle, digest, PUBLIC_GOOD, identity=san)
        assert code == 1
        sig = only_signature(doc)
        assert sig["verified"] is False
        assert "chains to no trusted root" in str(sig["reason"])


def test_a_bundle_about_another_subject_never_counts() -> None:
    # Each bundle verifies, but for its own file: asked about the other's digest, no.
    code, doc = verify(PRIVATE, PROBER_DIGEST, GH_ROOTS)
    assert code == 1
    assert "does not include this image" in str(only_signature(doc)["reason"])
    code, doc = verify(PROBER, PRIVATE_DIGEST, GH_ROOTS, identity=PROBER_SAN)
    assert code == 1
    assert "does not include this image" in str(only_signature(doc)["reason"])


def test_another_identity_is_refused() -> None:
    code, doc = verify(PRIVATE, PRIVATE_DIGEST, GITHUB_ROOT, identity=PROBER_SAN)
    assert code == 1
    assert "does not match" in str(only_signature(doc)["reason"])


def test_without_the_tsa_that_stamped_it_nothing_proves_when_it_was_signed(
        tmp_path: Path) -> None:
    doc = github_root_doc()
    tsas = doc["timestampAuthorities"]
    assert isinstance(tsas, list)
    # The 2023-10 .. 2024-05 generation stamped the private bundle; the others cannot.
    doc["timestampAuthorities"] = [t for t in tsas
                                   if not t["validFor"]["start"].startswith("2023-10")]
    assert len(doc["timestampAuthorities"]) == len(tsas) - 1
    code, out = verify(PRIVATE, PRIVATE_DIGEST, write_root(tmp_path, doc))
    assert code == 1
    assert "the timestamp does not verify against the trusted timestamp authorities" in str(
        only_signature(out)["reason"])


@pytest.mark.parametrize(("authorities", "field", "moved_to", "reason"), [
    # The 2023-10 TSA generation ended three weeks before the timestamp.
    ("timestampAuthorities", "end", "2024-04-01T00:00:00Z",
     f"the timestamp ({PRIVATE_STAMP}) is outside its authority's validity"),
    # The 2023-10 CA generation began after the signature.
    ("certificateAuthorities", "start", "2024-05-01T00:00:00Z",
     f"does not chain to a trusted Fulcio CA at {PRIVATE_STAMP}"),
], ids=["timestamp-authority-expired", "ca-not-yet-valid"])
def test_an_authority_not_valid_at_the_timestamp_fails(
        tmp_path: Path, authorities: str, field: str, moved_to: str, reason: str) -> None:
    doc = github_root_doc()
    entries = doc[authorities]
    assert isinstance(entries, list)
    for entry in entries:
        if entry["validFor"]["start"].startswith("2023-10"):
            entry["validFor"][field] = moved_to
    code, out = verify(PRIVATE, PRIVATE_DIGEST, write_root(tmp_path, doc))
    assert code == 1
    assert reason in str(only_signature(out)["reason"])


# --------------------------------------------------------------------------- no network


def test_verifies_with_no_network_at_all() -> None:
    """An empty network namespace: a TUF, Rekor, TSA or registry request would fail."""
    base = [*no_network(), sys.executable, "-m", "imggate", "verify", "--bundle", str(PRIVATE),
            "--digest", PRIVATE_DIGEST, "--certificate-identity", PRIVATE_SAN,
            "--certificate-oidc-issuer", ACTIONS]
    ok = subprocess.run([*base, "--trusted-root", str(GITHUB_ROOT)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED" in ok.stdout and "(timestamped)" in ok.stdout
    # And offline the public-good root still refuses it (exit 1: decided, not unreachable).
    refused = subprocess.run([*base, "--trusted-root", str(PUBLIC_GOOD)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "chains to no trusted root" in refused.stdout

"""``imggate verify``: exit codes, per-signature reasons and JSON, on OCI layouts.

Layouts are the real ``cosign save`` fixtures or fresh cosign-format ones
(cosign_format_signer); the registry-backed runs are in
tests/signatures/test_registry_signatures.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry_harness import Registry, run_imggate, tampered
from signatures.cosign_format_signer import (
    CosignFormatSigner,
    make_image,
    make_index,
    push_repository,
    write_layout,
)
from signatures.fixture_cases import case_dir
from signatures.inmemory import InMemoryRepository

SLSA = "att-slsa-generator-v2.1.0-dsse"
GENERATOR = r"^https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/"
ACTIONS = "https://token.actions.githubusercontent.com"


@pytest.fixture
def signed_layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A layout with image ``app`` signed by alice; returns (layout, alice.pub, bob.pub)."""
    alice, bob = CosignFormatSigner(), CosignFormatSigner()
    repo = InMemoryRepository()
    image = make_image(repo, tag="app")
    alice.sign_image(repo, image, optional={"env": "prod"})
    (tmp_path / "alice.pub").write_bytes(alice.public_pem)
    (tmp_path / "bob.pub").write_bytes(bob.public_pem)
    return write_layout(repo, tmp_path / "layout"), tmp_path / "alice.pub", tmp_path / "bob.pub"


def test_verified_exit_0(signed_layout: tuple[Path, Path, Path]) -> None:
    layout, alice, _ = signed_layout
    r = run_imggate(["verify", f"oci:{layout}:app", "--key", str(alice),
                     "--insecure-ignore-tlog"])
    assert r.code == 0, r.output
    assert "VERIFIED" in r.stdout and f"by {alice}" in r.stdout


def test_wrong_key_exit_1_with_reason(signed_layout: tuple[Path, Path, Path]) -> None:
    layout, _, bob = signed_layout
    r = run_imggate(["verify", f"oci:{layout}:app", "--key", str(bob), "--insecure-ignore-tlog"])
    assert r.code == 1
    assert "NOT VERIFIED" in r.stdout and "signature does not verify" in r.stdout


def test_tlog_required_by_default(signed_layout: tuple[Path, Path, Path]) -> None:
    layout, alice, _ = signed_layout
    r = run_imggate(["verify", f"oci:{layout}:app", "--key", str(alice)])
    assert r.code == 1 and "--insecure-ignore-tlog" in r.stdout


def test_threshold_and_json(signed_layout: tuple[Path, Path, Path]) -> None:
    layout, alice, bob = signed_layout
    r = run_imggate(["verify", f"oci:{layout}:app", "--key", str(alice), "--key", str(bob),
                     "--insecure-ignore-tlog", "--threshold", "2", "--json"])
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc[0]["verified"] is False and "threshold not reached" in doc[0]["explanation"]
    assert [s["signer"] for s in doc[0]["signatures"]] == [str(alice)]
    r1 = run_imggate(["verify", f"oci:{layout}:app", "--key", str(alice), "--key", str(bob),
                      "--insecure-ignore-tlog", "--json"])
    assert r1.code == 0 and json.loads(r1.stdout)[0]["verified"] is True


def test_annotation_claims(signed_layout: tuple[Path, Path, Path]) -> None:
    layout, alice, _ = signed_layout
    base = ["verify", f"oci:{layout}:app", "--key", str(alice), "--insecure-ignore-tlog"]
    assert run_imggate([*base, "-a", "env=prod"]).code == 0
    r = run_imggate([*base, "-a", "env=dev"])
    assert r.code == 1 and "env=dev" in r.stdout


def test_cosign_save_attestation_with_type_and_predicate(tmp_path: Path) -> None:
    layout = case_dir(SLSA) / "oci-layout"
    r = run_imggate(["verify", f"oci:{layout}", "--certificate-identity-regexp", GENERATOR,
                     "--certificate-oidc-issuer", ACTIONS, "--type", "slsaprovenance", "--json"])
    assert r.code == 0, r.output
    sig = json.loads(r.stdout)[0]["signatures"][0]
    assert sig["predicateType"] == "https://slsa.dev/provenance/v0.2"
    assert sig["predicate"]["builder"]["id"].startswith("https://github.com/slsa-framework/")
    wrong = run_imggate(["verify", f"oci:{layout}", "--certificate-identity-regexp", GENERATOR,
                         "--certificate-oidc-issuer", ACTIONS, "--type", "slsaprovenance1"])
    # The layer's (unsigned) annotation decides nothing: the signed statement says v0.2.
    assert wrong.code == 1 and "predicate type https://slsa.dev/provenance/v0.2 is not one of " \
        "https://slsa.dev/provenance/v1" in wrong.stdout


def test_multi_arch_platform_signature_policy(tmp_path: Path) -> None:
    alice = CosignFormatSigner()
    repo = InMemoryRepository()
    amd, arm = make_image(repo), make_image(repo)
    make_index(repo, [(amd, "linux/amd64"), (arm, "linux/arm64")], tag="multi")
    alice.sign_image(repo, amd)
    layout = write_layout(repo, tmp_path / "multi")
    (tmp_path / "alice.pub").write_bytes(alice.public_pem)
    base = ["verify", f"oci:{layout}:multi", "--key", str(tmp_path / "alice.pub"),
            "--insecure-ignore-tlog", "--platform", "linux/amd64"]
    assert run_imggate(base).code == 1
    assert run_imggate([*base, "--accept-platform-signatures"]).code == 0


@pytest.mark.parametrize(("args", "code", "text"), [
    ([], 2, "nothing to verify against"),
    (["--key", "/nonexistent.pub"], 2, "cannot read key file"),
    (["--certificate-identity", "a@b.c"], 2, "--certificate-oidc-issuer"),
    (["--key", "KEY", "--threshold", "0"], 2, "--threshold"),
    (["--key", "KEY", "--type", "nonsense"], 2, "unknown predicate type"),
])
def test_usage_errors(signed_layout: tuple[Path, Path, Path], args: list[str], code: int,
                      text: str) -> None:
    layout, alice, _ = signed_layout
    args = [str(alice) if a == "KEY" else a for a in args]
    r = run_imggate(["verify", f"oci:{layout}:app", *args])
    assert r.code == code and text in r.output, r.output


def test_truncated_pem_key_is_exit_2(signed_layout: tuple[Path, Path, Path],
                                     tmp_path: Path) -> None:
    layout, alice, _ = signed_layout
    half = tmp_path / "half.pub"
    half.write_bytes(alice.read_bytes()[:60])
    r = run_imggate(["verify", f"oci:{layout}:app", "--key", str(half)])
    assert r.code == 2 and "not a usable PEM" in r.output
    assert "Traceback" not in r.output


def test_unreadable_source_is_exit_3(tmp_path: Path, signed_layout: tuple[Path, Path, Path]
                                     ) -> None:
    _, alice, _ = signed_layout
    r = run_imggate(["verify", f"oci:{tmp_path}/missing", "--key", str(alice)])
    assert r.code == 3 and "could not verify" in r.output


def test_several_references_keep_order_and_worst_exit_code(
        signed_layout: tuple[Path, Path, Path], tmp_path: Path) -> None:
    layout, alice, _ = signed_layout
    unsigned = InMemoryRepository()
    make_image(unsigned, tag="bare")
    bare = write_layout(unsigned, tmp_path / "unsigned")
    refs = [f"oci:{layout}:app", f"oci:{bare}:bare", f"oci:{tmp_path}/missing"]
    r = run_imggate(["verify", *refs, "--key", str(alice), "--insecure-ignore-tlog", "--json"])
    assert r.code == 3
    doc = json.loads(r.stdout)
    assert [d["reference"] for d in doc] == refs
    assert [d["verified"] for d in doc] == [True, False, False]
    assert doc[2]["error"] and doc[1]["error"] is None
    r2 = run_imggate(["verify", *refs[:2], "--key", str(alice), "--insecure-ignore-tlog"])
    assert r2.code == 1


def test_attestations_of_any_type() -> None:
    layout = case_dir(SLSA) / "oci-layout"
    r = run_imggate(["verify", f"oci:{layout}", "--certificate-identity-regexp", GENERATOR,
                     "--certificate-oidc-issuer", ACTIONS, "--attestations"])
    assert r.code == 0, r.output
    assert "https://slsa.dev/provenance/v0.2" in r.stdout


def test_a_child_manifest_or_config_that_does_not_match_its_digest_is_exit_3(
        anon_registry: Registry, tmp_path: Path) -> None:
    # In a real registry, as `check` sees it: the signed index is intact, but the platform
    # manifest, then the config, is not what its digest says.
    alice = CosignFormatSigner()
    repo = InMemoryRepository(f"{anon_registry.host}/verify/tampered")
    amd = make_image(repo)
    index = make_index(repo, [(amd, "linux/amd64")], tag="v1")
    alice.sign_image(repo, index)
    push_repository(repo, anon_registry.url, "verify/tampered")
    key = tmp_path / "alice.pub"
    key.write_bytes(alice.public_pem)
    config = json.loads(repo.manifests[amd])["config"]["digest"]
    base = ["verify", anon_registry.ref("verify/tampered", "v1"), "--key", str(key),
            "--insecure-ignore-tlog", "--insecure-registry", anon_registry.host]
    assert run_imggate(base).code == 0
    for digest in (str(amd), config):
        with tampered(anon_registry, digest):
            r = run_imggate(base)
            assert r.code == 3, (digest, r.output)
            assert "could not verify" in r.output and "VERIFIED" not in r.output
            assert run_imggate(["check", anon_registry.ref("verify/tampered", "v1"),
                                "--insecure-registry", anon_registry.host,
                                "-o", str(tmp_path / "reports")]).code == 3
    assert run_imggate(base).code == 0

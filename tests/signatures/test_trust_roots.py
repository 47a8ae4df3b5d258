"""Trust roots as files, several at once, and bundles verified offline for a digest.

Real data (``tests/fixtures/sigstore-roots``, sources in tests/fixtures/SOURCES.md):
sigstore-python's staging DSSE bundle with a Rekor v2 entry *and* an RFC 3161
timestamp, its TSA message-signature bundles (one stamped after its certificate
expired), the staging and production trusted roots, and GitHub CLI's
GitHub-instance bundle (private repository: timestamp, no log). A root with
its ``tlogs`` emptied (marked derived) stands for an instance that has only
timestamp authorities, as GitHub's has; the JSON-lines file is two real roots
one per line, the form ``gh attestation trusted-root`` prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixture_paths import FIXTURES
from imggate.errors import ConfigError
from imggate.signatures.trustroot import load_trusted_roots, parse_trusted_roots
from registry_harness import no_network, run_imggate

ROOTS = FIXTURES / "sigstore-roots"
DSSE = ROOTS / "a.dsse.staging-rekor-v2.txt.sigstore.json"
DSSE_DIGEST = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
          ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ACTIONS = "https://token.actions.githubusercontent.com"
TSA_DIGEST = "sha256:802dd60ff88333802f2585e73043bd21c341285e1992fe5b31755e1cadeae30e"
GITHUB_BUNDLE = ROOTS / "github-provenance-demo-0.0.12-bundle.jsonl"
GITHUB_DIGEST = "sha256:ae57936def59bc4c75edd3a837d89bcefc6d3a5e31d55a6fa7a71624f92c3c3b"
GITHUB_SAN = ("https://github.com/actions/attest-demo/.github/workflows/build-python.yml"
              "@refs/heads/main")


def verify(bundle: Path, digest: str, *roots: Path, identity: str = BEACON,
           issuer: str = ACTIONS, extra: tuple[str, ...] = ()) -> tuple[int, dict[str, object]]:
    args = ["verify", "--bundle", str(bundle), "--digest", digest,
            "--certificate-identity", identity, "--certificate-oidc-issuer", issuer,
            "--json", *extra]
    for r in roots:
        args += ["--trusted-root", str(r)]
    r = run_imggate(args)
    doc = json.loads(r.stdout) if r.stdout.strip() else [{}]
    return r.code, doc[0]


def signature(doc: dict[str, object]) -> dict[str, object]:
    sigs = doc["signatures"]
    assert isinstance(sigs, list) and len(sigs) == 1, sigs
    first: dict[str, object] = sigs[0]
    return first


# --------------------------------------------------------------------------- loading roots


def test_json_lines_hold_several_roots() -> None:
    roots = load_trusted_roots(ROOTS / "production+staging-no-tlog.jsonl")
    assert [bool(r.tlogs) for r in roots] == [True, False]
    assert roots[1].timestamp_authorities and "line 2" in roots[1].source
    assert "https://fulcio.sigstage.dev" in roots[1].label


def test_a_root_with_timestamp_authorities_and_no_log_is_accepted() -> None:
    [root] = load_trusted_roots(ROOTS / "staging-trusted-root.no-tlog.json")
    assert not root.tlogs and root.timestamp_authorities


def test_a_client_trust_config_is_read_for_its_root() -> None:
    [root] = load_trusted_roots(ROOTS / "tsa-trust_config.json")
    assert root.tlogs and root.timestamp_authorities


def test_a_root_with_no_time_evidence_is_refused() -> None:
    doc = json.loads((ROOTS / "staging-trusted-root.no-tlog.json").read_bytes())
    doc["timestampAuthorities"] = []
    with pytest.raises(ConfigError, match="neither a Rekor key nor a timestamp authority"):
        parse_trusted_roots(json.dumps(doc).encode(), "x.json")


def test_a_bad_line_is_named() -> None:
    good = (ROOTS / "production+staging-no-tlog.jsonl").read_bytes().splitlines()[0]
    with pytest.raises(ConfigError, match=r"roots\.jsonl line 2: invalid Sigstore trusted root"):
        parse_trusted_roots(good + b"\n{\"mediaType\": 1}\n", "roots.jsonl")


def test_unreadable_keys_and_certificates_are_named_in_imggates_words() -> None:
    import base64

    doc = json.loads((ROOTS / "production-trusted-root.json").read_bytes())
    doc["tlogs"][0]["publicKey"]["rawBytes"] = base64.b64encode(b"\x30\x03not").decode()
    with pytest.raises(ConfigError) as caught:
        parse_trusted_roots(json.dumps(doc).encode(), "root.json")
    assert caught.value.message == ("root.json: invalid Sigstore trusted root: "
                                    "tlogs[0].publicKey.rawBytes: not a DER public key")
    doc = json.loads((ROOTS / "production-trusted-root.json").read_bytes())
    chain = doc["certificateAuthorities"][1]["certChain"]["certificates"]
    chain[0]["rawBytes"] = base64.b64encode(b"\x30\x00").decode()
    with pytest.raises(ConfigError) as caught:
        parse_trusted_roots(json.dumps(doc).encode(), "root.json")
    assert caught.value.message == (
        "root.json: invalid Sigstore trusted root: certificateAuthorities[1].certChain."
        "certificates[0].rawBytes: not a DER X.509 certificate")


# --------------------------------------------------------------------------- verify --bundle


def test_dsse_bundle_with_log_verifies_through_the_log() -> None:
    code, doc = verify(DSSE, DSSE_DIGEST, ROOTS / "staging-trusted-root.json")
    assert code == 0, doc
    sig = signature(doc)
    assert sig["tlog"] is True and sig["predicateType"] == "https://slsa.dev/provenance/v1"


def test_timestamp_only_root_verifies_by_rfc3161_timestamp() -> None:
    code, doc = verify(DSSE, DSSE_DIGEST, ROOTS / "staging-trusted-root.no-tlog.json")
    assert code == 0, doc
    sig = signature(doc)
    assert sig["tlog"] is False and sig["timestamped"] is True
    assert "timestamped 2026-05-13T19:23:33+00:00" in str(sig["reason"])


def test_each_bundle_uses_the_root_it_chains_to() -> None:
    # Production (with a log) and the timestamp-only staging instance, in one file.
    code, doc = verify(DSSE, DSSE_DIGEST, ROOTS / "production+staging-no-tlog.jsonl")
    assert code == 0, doc
    assert signature(doc)["timestamped"] is True


def test_the_wrong_root_alone_verifies_nothing() -> None:
    code, doc = verify(DSSE, DSSE_DIGEST, ROOTS / "production-trusted-root.json")
    assert code == 1 and signature(doc)["verified"] is False


def test_a_bundle_about_another_digest_never_counts() -> None:
    other = "sha256:" + "0" * 64
    for root in ("staging-trusted-root.json", "staging-trusted-root.no-tlog.json"):
        code, doc = verify(DSSE, other, ROOTS / root)
        assert code == 1
        assert "does not include this image" in str(signature(doc)["reason"])


def test_a_tampered_bundle_fails_on_the_timestamp_path(tmp_path: Path) -> None:
    import base64

    doc = json.loads(DSSE.read_bytes())
    st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    st["predicate"]["runDetails"]["builder"]["id"] = "https://github.com/evil/builder"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(doc))
    code, out = verify(bad, DSSE_DIGEST, ROOTS / "staging-trusted-root.no-tlog.json")
    assert code == 1
    assert "DSSE signature does not verify with the certificate's key" in str(
        signature(out)["reason"])


def test_message_signature_bundle_verifies_by_timestamp_for_its_digest() -> None:
    root = ROOTS / "tsa-root.no-tlog.json"
    code, doc = verify(ROOTS / "tsa-bundle.txt.sigstore", TSA_DIGEST, root,
                       identity="alexis.challande@trailofbits.com",
                       issuer="https://accounts.google.com")
    assert code == 0, doc
    assert signature(doc)["kind"] == "signature" and signature(doc)["timestamped"] is True
    code, doc = verify(ROOTS / "tsa-bundle.txt.sigstore", "sha256:" + "1" * 64, root,
                       identity="alexis.challande@trailofbits.com",
                       issuer="https://accounts.google.com")
    assert code == 1 and "message digest sha256:802dd60f" in str(signature(doc)["reason"])


def test_a_timestamp_outside_the_certificate_validity_fails() -> None:
    code, doc = verify(ROOTS / "tsa-bundle.txt.late_timestamp.sigstore", TSA_DIGEST,
                       ROOTS / "staging-trusted-root.no-tlog.json",
                       identity="insecure-cloudtop-shared-user@cloudtop-prod-us-east.iam."
                                "gserviceaccount.com", issuer="https://accounts.google.com")
    assert code == 1
    assert "is outside the certificate's validity" in str(signature(doc)["reason"])


def test_github_instance_bundle_fails_against_the_public_good_root_alone() -> None:
    # GitHub's Fulcio issued it, with a timestamp and no log: the public-good root (the
    # default, or given as a file) has no CA for it.
    for roots in ((), (ROOTS / "production-trusted-root.json",)):
        code, doc = verify(GITHUB_BUNDLE, GITHUB_DIGEST, *roots, identity=GITHUB_SAN)
        assert code == 1
        reason = str(signature(doc)["reason"])
        assert "'CN=Fulcio Intermediate l2,O=GitHub\\\\, Inc.' chains to no trusted root" \
            in reason, reason


def test_bundle_and_digest_go_together() -> None:
    r = run_imggate(["verify", "--bundle", str(DSSE), "--certificate-identity", BEACON,
                     "--certificate-oidc-issuer", ACTIONS])
    assert r.code == 2 and "--bundle and --digest go together" in r.stderr


# --------------------------------------------------------------------------- no network


def test_offline_verification_needs_no_network() -> None:
    """The network namespace is empty: any TUF or registry request would fail."""
    cmd = [*no_network(), sys.executable, "-m", "imggate", "verify", "--bundle", str(DSSE),
           "--digest", DSSE_DIGEST, "--certificate-identity", BEACON,
           "--certificate-oidc-issuer", ACTIONS,
           "--trusted-root", str(ROOTS / "production+staging-no-tlog.jsonl")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VERIFIED" in proc.stdout and "(timestamped)" in proc.stdout

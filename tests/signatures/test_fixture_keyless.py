"""Keyless fixtures (Fulcio + Rekor SET, legacy annotations; DSSE attestations; v0.3 bundles).

Verified offline against the production trusted_root.json shipped in the sigstore package.
"""

from __future__ import annotations

import base64
import json

import pytest

from imggate.models import Digest, SignatureKind
from imggate.registry.layout import OciLayout
from imggate.signatures import Identity, TrustConfig
from imggate.signatures.attestations import predicate_type_uri
from imggate.signatures.trustroot import SigstoreTrustRoot, production_trusted_root
from signatures.cosign_format_signer import append_layer
from signatures.fixture_cases import FIXTURES, case_dir, case_json, passes, run, signed_repo
from signatures.inmemory import InMemoryRepository

GITHUB = "https://github.com/login/oauth"


def keyless(identity: str | None = None, issuer: str | None = GITHUB, *,
            identity_regexp: str | None = None, **kw: object) -> TrustConfig:
    return TrustConfig(identities=(Identity(identity=identity, identity_regexp=identity_regexp,
                                            issuer=issuer),), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ legacy keyless .sig

KEYLESS_CASES = ["keyless-cimage-fulcio-rekor", "keyless-cimage-standalone-2022",
                 "keyless-stackrox-ttlsh-2025"]
_MUTATION_SOURCES = {
    "tampered-cert": ("certificate.pem", "keyless-cimage-standalone-2022"),
    "payload-from-other-case": ("payload.json", "keyless-cimage-fulcio-rekor"),
    "set-with-wrong-payload": ("payload.json", "key-stackrox-ttlsh-ecdsa/sig-1a"),
}


@pytest.mark.parametrize(("case", "exp"), [(c, e) for c in KEYLESS_CASES
                                           for e in case_json(c)["expect"]],
                         ids=lambda v: v if isinstance(v, str) else v["id"])
def test_keyless_expectations(case: str, exp: dict[str, str]) -> None:
    c = case_json(case)
    identity = exp.get("identity", c["identity"]["san"])
    issuer = exp.get("issuer", c["identity"]["issuer"])
    trust = keyless(identity, issuer)
    eid = exp["id"]
    if eid == "no-set":
        repo, subject = signed_repo(case, drop=("rekor-bundle.json",))
    elif eid == "no-chain-annotation":
        repo, subject = signed_repo(case, drop=("chain.pem",))
    elif eid in _MUTATION_SOURCES:
        fname, src = _MUTATION_SOURCES[eid]
        other = (FIXTURES / src / fname).read_text()
        if fname == "certificate.pem":
            repo, subject = signed_repo(
                case, ann_override={"dev.sigstore.cosign/certificate": other})
        else:
            # The other payload filed under the digest it names, so only crypto can object.
            subject = Digest.parse(json.loads(other)["critical"]["image"]
                                   ["docker-manifest-digest"])
            repo = InMemoryRepository()
            d = case_dir(case)
            ann = {"dev.cosignproject.cosign/signature": (d / "signature.b64").read_text(),
                   "dev.sigstore.cosign/certificate": (d / "certificate.pem").read_text(),
                   "dev.sigstore.cosign/chain": (d / "chain.pem").read_text(),
                   "dev.sigstore.cosign/bundle": (d / "rekor-bundle.json").read_text()}
            append_layer(repo, subject, "sig", other.encode(),
                         "application/vnd.dev.cosign.simplesigning.v1+json", ann)
    else:
        repo, subject = signed_repo(case)
    checks = run(repo, subject, trust)
    expected = exp["result"].startswith("pass")
    assert checks[0].verified is expected, checks[0].reason
    assert passes(checks, trust) is expected
    if expected:
        assert checks[0].signer == f"{identity} ({issuer})"
        assert checks[0].tlog


def test_keyless_identity_regexp_and_issuer_regexp() -> None:
    repo, subject = signed_repo("keyless-cimage-fulcio-rekor")
    trust = TrustConfig(identities=(Identity(identity_regexp=r"^mitr@redhat\.com$",
                                             issuer_regexp=r"^https://github\.com/"),))
    checks = run(repo, subject, trust)
    assert checks[0].verified and checks[0].signer == f"mitr@redhat.com ({GITHUB})"


def test_keyless_set_integrated_time_altered_fails() -> None:
    name = "keyless-cimage-fulcio-rekor"
    doc = json.loads((case_dir(name) / "rekor-bundle.json").read_text())
    doc["Payload"]["integratedTime"] -= 120
    repo, subject = signed_repo(name, ann_override={"dev.sigstore.cosign/bundle":
                                                    json.dumps(doc)})
    checks = run(repo, subject, keyless("mitr@redhat.com"))
    assert not checks[0].verified


def test_keyless_without_ct_log_keys_fails_on_sct() -> None:
    prod = production_trusted_root()
    no_ct = SigstoreTrustRoot("no-ct", prod.certificate_authorities, prod.tlogs, ())
    repo, subject = signed_repo("keyless-stackrox-ttlsh-2025")
    checks = run(repo, subject, keyless("shesselm@redhat.com", trusted_root=no_ct))
    assert not checks[0].verified and "SCT" in checks[0].reason


def test_keyless_ignore_tlog_does_not_rescue_an_expired_certificate() -> None:
    repo, subject = signed_repo("keyless-cimage-fulcio-rekor", drop=("rekor-bundle.json",))
    checks = run(repo, subject, keyless("mitr@redhat.com", ignore_tlog=True))
    assert not checks[0].verified and "Rekor" in checks[0].reason


# ------------------------------------------------------------------ .att DSSE (cosign save layouts)

ATT_CASES = ["att-slsa-generator-v1.4.0-intoto-docker-manifest",
             "att-slsa-generator-v1.9.0-intoto", "att-slsa-generator-v2.1.0-dsse"]


def att_trust(case: str, exp: dict[str, str], **kw: object) -> TrustConfig:
    c = case_json(case)
    ident = Identity(identity=None if "identity_regexp" in exp else
                     exp.get("identity", c["identity"]["san"]),
                     identity_regexp=exp.get("identity_regexp"),
                     issuer=exp.get("issuer", c["identity"]["issuer"]))
    types = (exp["predicateType"],) if "predicateType" in exp else ()
    return TrustConfig(identities=(ident,), check_signatures=False, check_attestations=True,
                       attestation_types=types, **kw)  # type: ignore[arg-type]


def tampered_envelope(case: str) -> bytes:
    env = json.loads((case_dir(case) / "dsse-envelope.json").read_bytes())
    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["builder"]["id"] = "https://evil.example/builder"
    env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    return json.dumps(env).encode()


@pytest.mark.parametrize(("case", "exp"), [(c, e) for c in ATT_CASES
                                           for e in case_json(c)["expect"]],
                         ids=lambda v: v if isinstance(v, str) else v["id"])
def test_attestation_expectations(case: str, exp: dict[str, str]) -> None:
    c = case_json(case)
    repo = OciLayout(case_dir(case) / "oci-layout").repository()
    subject = Digest.parse(c["image"]["digest"])
    trust = att_trust(case, exp)
    if exp["id"] == "subject-mismatch":
        subject = Digest.parse("sha256:" + "ab" * 32)
    if exp["id"] == "tampered-envelope":
        mem = InMemoryRepository()
        att = json.loads((case_dir(case) / "att-manifest.json").read_bytes())
        append_layer(mem, subject, "att", tampered_envelope(case),
                     att["layers"][0]["mediaType"], att["layers"][0]["annotations"])
        checks = run(mem, subject, trust)
    else:
        checks = run(repo, subject, trust)
    assert len(checks) == 1 and checks[0].kind is SignatureKind.ATTESTATION
    expected = exp["result"] == "pass"
    assert checks[0].verified is expected, checks[0].reason
    assert passes(checks, trust) is expected
    if expected:
        assert checks[0].predicate_type == "https://slsa.dev/provenance/v0.2"
        assert checks[0].predicate is not None
        builder = checks[0].predicate["builder"]["id"]
        assert builder.startswith("https://github.com/slsa-framework/slsa-github-generator/")


def test_attestation_short_predicate_names() -> None:
    assert predicate_type_uri("slsaprovenance") == "https://slsa.dev/provenance/v0.2"
    assert predicate_type_uri("SLSAProvenance1") == "https://slsa.dev/provenance/v1"
    case = ATT_CASES[2]
    trust = att_trust(case, {"predicateType": predicate_type_uri("slsaprovenance02")})
    repo = OciLayout(case_dir(case) / "oci-layout").repository()
    assert run(repo, Digest.parse(case_json(case)["image"]["digest"]), trust)[0].verified


def test_attestation_rekor_entry_must_match_envelope() -> None:
    """v2.1.0 (dsse entry) SET moved onto v1.9.0's envelope: body names another envelope."""
    src, dst = ATT_CASES[2], ATT_CASES[1]
    att = json.loads((case_dir(dst) / "att-manifest.json").read_bytes())
    ann = dict(att["layers"][0]["annotations"])
    ann["dev.sigstore.cosign/bundle"] = (case_dir(src) / "rekor-bundle.json").read_text()
    subject = Digest.parse(case_json(dst)["image"]["digest"])
    mem = InMemoryRepository()
    append_layer(mem, subject, "att", (case_dir(dst) / "dsse-envelope.json").read_bytes(),
                 att["layers"][0]["mediaType"], ann)
    checks = run(mem, subject, att_trust(dst, {}))
    assert not checks[0].verified


# ------------------------------------------------------------------ Sigstore bundle v0.3

BUNDLE = "bundle-cosign-oci-attestation"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def bundle_repo(bundle: bytes, subject: Digest) -> InMemoryRepository:
    """The bundle as cosign v3 stores it: an OCI 1.1 referrer of the image.

    The referrer manifest is rebuilt here (the source keeps only the bundle);
    the bundle bytes are the exact fixture.
    """
    repo = InMemoryRepository("127.0.0.1:60943/repo")
    empty = repo.put_blob(b"{}")
    layer = repo.put_blob(bundle)
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                   "digest": str(empty)},
        "layers": [{"mediaType": BUNDLE_TYPE, "size": len(bundle), "digest": str(layer)}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 100,
                    "digest": str(subject)},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                        "dev.sigstore.bundle.predicateType":
                            "https://cosign.sigstore.dev/attestation/v1"},
    }
    repo.put_manifest(json.dumps(manifest).encode())
    return repo


def _tamper_bundle(field: str) -> bytes:
    doc = json.loads((case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes())
    if field == "payload":
        st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        st["predicate"]["Data"] = "tampered"
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    else:
        body = json.loads(base64.b64decode(doc["verificationMaterial"]["tlogEntries"][0]
                                           ["canonicalizedBody"]))
        body["spec"]["payloadHash"]["value"] = "0" * 64
        doc["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"] = \
            base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps(doc).encode()


@pytest.mark.parametrize("exp", case_json(BUNDLE)["expect"], ids=lambda e: e["id"])
def test_bundle_expectations(exp: dict[str, str]) -> None:
    c = case_json(BUNDLE)
    real = Digest.parse(c["image"]["digest"])
    raw = (case_dir(BUNDLE) / "bundle.sigstore.json").read_bytes()
    if exp["id"] == "tampered-payload":
        raw = _tamper_bundle("payload")
    elif exp["id"] == "tampered-tlog-body":
        raw = _tamper_bundle("body")
    subject = Digest.parse(exp["digest"]) if "digest" in exp else real
    repo = bundle_repo(raw, subject)
    trust = TrustConfig(identities=(Identity(identity=exp.get("identity", c["identity"]["san"]),
                                             issuer=exp.get("issuer",
                                                            c["identity"]["issuer"])),),
                        check_signatures=False, check_attestations=True)
    checks = run(repo, subject, trust)
    assert len(checks) == 1
    expected = exp["result"] == "pass"
    assert checks[0].verified is expected, checks[0].reason
    assert passes(checks, trust) is expected
    if expected:
        assert checks[0].predicate_type == c["predicateType"]
        assert checks[0].predicate == {"Data": '{"foo": "bar"}\n',
                                       "Timestamp": "2025-02-28T19:18:11Z"}


def test_bundle_not_json_is_a_failed_check() -> None:
    subject = Digest.parse(case_json(BUNDLE)["image"]["digest"])
    repo = bundle_repo(b"\x00not json", subject)
    trust = TrustConfig(identities=(Identity(identity="cody@soyland.com", issuer=GITHUB),))
    checks = run(repo, subject, trust)
    assert not checks[0].verified and "not a valid Sigstore bundle" in checks[0].reason

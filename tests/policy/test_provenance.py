"""The provenance rule on real slsa-github-generator container provenance (SLSA v0.2).

Facts come from the real signed statements and Fulcio certificates of
``tests/fixtures/cosign/att-slsa-generator-*``; the rule is then run the way
``imggate check`` runs it, on an OCI layout holding the real image index and
its real ``.att`` (the image's layers are not public, so it cannot be pushed
to a registry). Negative variants change the rule, or change one field of the
signed predicate without re-signing (which must then count for nothing).
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from fixture_paths import FIXTURES
from imggate.models import Decision, EvidenceGroup, Mode, RuleResult, Unchecked
from imggate.policy.decision import RULE_EVIDENCE, certain, decide
from imggate.policy.provenance import read_facts, summary, violations
from imggate.signatures import Identity, TrustConfig, check_signatures
from imggate.signatures.keyless import fulcio_claims, load_certificate
from registry_harness import run_imggate
from signatures.cosign_format_signer import write_layout
from signatures.fixture_cases import case_dir, case_json
from signatures.inmemory import InMemoryRepository
from signatures.test_discovery_by_content import CASE, att_tag_repo, referrer_repo

SLSA02 = "https://slsa.dev/provenance/v0.2"
ACTIONS = "https://token.actions.githubusercontent.com"
GENERATOR = ("https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
             "generator_container_slsa3.yml@refs/tags/v*")
WORKFLOW = ".github/workflows/verifier-e2e.all.workflow_dispatch.main.all.slsa3.yml"
CASES = ["att-slsa-generator-v1.4.0-intoto-docker-manifest", "att-slsa-generator-v1.9.0-intoto",
         "att-slsa-generator-v2.1.0-dsse"]
GOOD: dict[str, Any] = {"builders": [GENERATOR],
                        "source_repositories": ["github.com/slsa-framework/*"],
                        "source_refs": ["refs/heads/main", "refs/tags/v*"],
                        "workflows": [WORKFLOW]}


def facts_of(case: str, mutate: Any = None) -> Any:
    st = json.loads((case_dir(case) / "statement.json").read_bytes())
    if mutate is not None:
        mutate(st["predicate"])
    cert = load_certificate((case_dir(case) / "certificate.pem").read_bytes(), "certificate")
    return read_facts(st["predicateType"], st["predicate"], fulcio_claims(cert))


def broken(case: str, mutate: Any = None, **rule: Any) -> list[str]:
    args = {**GOOD, **rule}
    return violations(facts_of(case, mutate), builders=args["builders"],
                      source_repositories=args["source_repositories"],
                      source_refs=args["source_refs"], workflows=args["workflows"])


# --------------------------------------------------------------------------- facts and matching


@pytest.mark.parametrize("case", CASES)
def test_real_provenance_meets_the_rule(case: str) -> None:
    assert broken(case) == []
    text = summary(facts_of(case))
    assert "source github.com/slsa-framework/example-package@refs/" in text


def test_certificate_claims_are_read_from_the_real_certificate() -> None:
    f = facts_of("att-slsa-generator-v2.1.0-dsse")
    assert [(s.value, s.where) for s in f.repositories] == [
        ("github.com/slsa-framework/example-package", "certificate Source Repository URI"),
        ("github.com/slsa-framework/example-package", "invocation.configSource.uri")]
    assert f.refs[0].value == "refs/heads/main"
    assert {w.where for w in f.workflows} == {"certificate Build Config URI",
                                             "certificate Build Signer URI"}
    assert f.builder is not None and f.builder.where == "builder.id"


@pytest.mark.parametrize(("field", "patterns", "found"), [
    ("builders", ["https://github.com/actions/runner/github-hosted"],
     "generator_container_slsa3.yml@refs/tags/v2.1.0' (builder.id)"),
    ("source_repositories", ["github.com/acme/*"],
     "'github.com/slsa-framework/example-package' (certificate Source Repository URI"),
    ("source_refs", ["refs/tags/v*"], "'refs/heads/main' (certificate Source Repository Ref"),
    ("workflows", [".github/workflows/release.yml"], "(certificate Build Config URI)"),
])
def test_each_wrong_field_is_named(field: str, patterns: list[str], found: str) -> None:
    why = broken("att-slsa-generator-v2.1.0-dsse", **{field: patterns})
    assert len(why) == 1, why
    assert why[0].startswith(f"{field}: expected one of [{patterns[0]}], found ")
    assert found in why[0]


def test_workflow_patterns_match_uri_path_and_ref_forms() -> None:
    case = "att-slsa-generator-v2.1.0-dsse"
    for pattern in (WORKFLOW, "github.com/slsa-framework/example-package/" + WORKFLOW,
                    "https://github.com/slsa-framework/example-package/" + WORKFLOW
                    + "@refs/heads/main",
                    # the reusable workflow that signed (Build Signer URI) counts too
                    ".github/workflows/generator_container_slsa3.yml"):
        assert broken(case, workflows=[pattern]) == [], pattern
    assert broken(case, workflows=[WORKFLOW + "@refs/heads/dev"])


def test_a_predicate_claiming_another_repository_than_its_certificate_is_a_forgery() -> None:
    def evil(p: dict[str, Any]) -> None:
        p["invocation"]["configSource"]["uri"] = "git+https://github.com/acme/app@refs/heads/main"

    why = broken("att-slsa-generator-v2.1.0-dsse", evil,
                 source_repositories=["github.com/acme/*"])
    assert len(why) == 1 and why[0].startswith("source_repositories: ")
    assert "'github.com/acme/app'" in why[0] and "contradicts its signing certificate" in why[0]


def test_a_predicate_claiming_another_ref_than_its_certificate_is_a_forgery() -> None:
    def other_ref(p: dict[str, Any]) -> None:
        p["invocation"]["configSource"]["uri"] = (
            "git+https://github.com/slsa-framework/example-package@refs/tags/v9.9.9")

    why = broken("att-slsa-generator-v2.1.0-dsse", other_ref)
    assert len(why) == 1 and why[0].startswith("source_refs: ")
    assert "refs/tags/v9.9.9" in why[0] and "contradicts" in why[0]


def test_slsa_v1_predicates_are_read() -> None:
    # The shape actions/attest-build-provenance writes (buildType workflow/v1).
    predicate = {
        "buildDefinition": {
            "externalParameters": {"workflow": {
                "ref": "refs/heads/main", "repository": "https://github.com/acme/app",
                "path": ".github/workflows/release.yml"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main",
                                      "digest": {"gitCommit": "a" * 40}}]},
        "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}}
    f = read_facts("https://slsa.dev/provenance/v1", predicate, {
        "source_repository_uri": "https://github.com/acme/app",
        "source_repository_ref": "refs/heads/main",
        "build_config_uri": "https://github.com/acme/app/.github/workflows/release.yml"
                            "@refs/heads/main"})
    args = {"builders": ["https://github.com/actions/runner/github-hosted"],
            "source_repositories": ["github.com/acme/*"], "source_refs": ["refs/heads/main"],
            "workflows": [".github/workflows/release.yml"]}
    assert violations(f, **args) == []
    assert {s.where for s in f.repositories} == {
        "certificate Source Repository URI",
        "buildDefinition.externalParameters.workflow.repository",
        "buildDefinition.resolvedDependencies[0].uri"}
    forged = read_facts("https://slsa.dev/provenance/v1", predicate, {
        "source_repository_uri": "https://github.com/evil/app",
        "source_repository_ref": "refs/heads/main"})
    assert any("contradicts its signing certificate" in v for v in violations(forged, **args))


# --------------------------------------------------------------------------- decision


def test_provenance_is_a_signatures_group_rule() -> None:
    assert RULE_EVIDENCE["provenance"] is EvidenceGroup.SIGNATURES
    missing = RuleResult("provenance", False, Mode.ENFORCE, ("no verified SLSA provenance",))
    down = Unchecked("registry down", frozenset({EvidenceGroup.SIGNATURES}))
    assert not certain(missing, [down])
    assert decide([missing], [down]) is Decision.ERROR
    assert decide([missing]) is Decision.DENY


# --------------------------------------------------------------------------- through the gate


def _layout(tmp: Path, repo: InMemoryRepository) -> Path:
    for blob in (case_dir(CASE) / "oci-layout" / "blobs" / "sha256").iterdir():
        repo.put_blob(blob.read_bytes())  # the image's JSON blobs (its layers are omitted)
    repo.put_file(case_dir(CASE) / "image-index.json", tag="app")
    return write_layout(repo, tmp / "layout")


def _rules(tmp: Path, provenance: dict[str, Any], identity: str | None = None,
           roots: tuple[Path, ...] = ()) -> Path:
    san = identity or case_json(CASE)["identity"]["san"]
    signatures: dict[str, Any] = {"required": False,
                                  "identities": [{"identity": san, "issuer": ACTIONS}]}
    if roots:
        signatures["trusted_roots"] = [str(r) for r in roots]
    doc = {"version": 1, "environments": {"prod": {
        "signatures": signatures, "provenance": provenance}}}
    path = tmp / "rules.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def _check(tmp: Path, layout: Path, rules: Path,
           *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp / "reports"
    r = run_imggate(["check", f"oci:{layout}:app", "--rules", str(rules), "--env", "prod",
                     "--output-dir", str(out), *extra])
    verdict = json.loads((out / "imggate-verdict.json").read_text())
    return r.code, verdict


def _rule(verdict: dict[str, Any]) -> dict[str, Any]:
    [image] = verdict["images"]
    result: dict[str, Any] = next(r for r in image["rules"] if r["rule"] == "provenance")
    return result


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    repo, _ = att_tag_repo()
    return _layout(tmp_path, repo)


def test_check_allows_the_real_provenance(tmp_path: Path, layout: Path) -> None:
    code, verdict = _check(tmp_path, layout, _rules(tmp_path, GOOD))
    assert code == 0, verdict
    rule = _rule(verdict)
    assert rule["passed"] and "verified by" in rule["messages"][0]


@pytest.mark.parametrize(("field", "patterns"), [
    ("builders", ["https://github.com/actions/runner/github-hosted"]),
    ("source_repositories", ["github.com/acme/*"]),
    ("source_refs", ["refs/tags/v*"]),
    ("workflows", [".github/workflows/release.yml"]),
])
def test_check_denies_each_negative_variant_naming_the_field(
        tmp_path: Path, layout: Path, field: str, patterns: list[str]) -> None:
    code, verdict = _check(tmp_path, layout, _rules(tmp_path, {**GOOD, field: patterns}))
    assert code == 1
    rule = _rule(verdict)
    assert not rule["passed"]
    assert f"{field}: expected one of [{patterns[0]}], found" in rule["messages"][0]


def test_check_denies_when_the_signer_is_not_trusted(tmp_path: Path, layout: Path) -> None:
    rules = _rules(tmp_path, GOOD, identity="https://github.com/acme/app/.github/workflows/"
                                            "release.yml@refs/heads/main")
    code, verdict = _check(tmp_path, layout, rules)
    assert code == 1
    assert _rule(verdict)["messages"][0].startswith("no verified SLSA provenance")


def test_check_denies_an_image_without_provenance(tmp_path: Path) -> None:
    layout = _layout(tmp_path, InMemoryRepository())
    code, verdict = _check(tmp_path, layout, _rules(tmp_path, {"required": True}))
    assert code == 1
    assert _rule(verdict)["messages"][0].startswith("no verified SLSA provenance")


def _tampered_repo() -> InMemoryRepository:
    """The .att with its statement's source repository changed, not re-signed."""
    c = case_json(CASE)
    env = json.loads((case_dir(CASE) / "dsse-envelope.json").read_bytes())
    st = json.loads(base64.b64decode(env["payload"]))
    st["predicate"]["invocation"]["configSource"]["uri"] = (
        "git+https://github.com/acme/app@refs/heads/main")
    env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    raw = json.dumps(env).encode()
    repo = InMemoryRepository()
    att = json.loads((case_dir(CASE) / "att-manifest.json").read_bytes())
    blobs = case_dir(CASE) / "oci-layout" / "blobs" / "sha256"
    repo.put_blob((blobs / att["config"]["digest"].split(":")[1]).read_bytes())
    layer = att["layers"][0]
    layer.update(digest=str(repo.put_blob(raw)), size=len(raw))
    repo.put_manifest(json.dumps(att).encode(), tag=c["attestation_tag"])
    return repo


def test_a_tampered_predicate_counts_for_nothing(tmp_path: Path) -> None:
    repo = _tampered_repo()
    c = case_json(CASE)
    trust = TrustConfig(identities=(Identity(identity=c["identity"]["san"], issuer=ACTIONS),),
                        check_signatures=False, check_attestations=True,
                        attestation_types=(SLSA02,))
    from imggate.models import Digest

    checks = asyncio.run(check_signatures(repo, Digest.parse(c["image"]["digest"]), trust))
    assert [ch.verified for ch in checks] == [False]
    layout = _layout(tmp_path, repo)
    code, verdict = _check(tmp_path, layout, _rules(
        tmp_path, {**GOOD, "source_repositories": ["github.com/acme/*"]}))
    assert code == 1
    assert _rule(verdict)["messages"][0].startswith("no verified SLSA provenance")


def test_rules_explain_prints_the_provenance_rule(tmp_path: Path) -> None:
    r = run_imggate(["rules", "explain", "--rules", str(_rules(tmp_path, GOOD)),
                     "--env", "prod"])
    assert r.code == 0, r.output
    assert "provenance" in r.stdout and "github.com/slsa-framework/*" in r.stdout
    assert "refs/tags/v*" in r.stdout


def test_check_with_several_trust_roots_uses_the_one_that_signed(tmp_path: Path,
                                                                 layout: Path) -> None:
    # JSON lines as `gh attestation trusted-root` prints them: the public-good root (which
    # logged this provenance) and a timestamp-only instance.
    roots = FIXTURES / "sigstore-roots"
    code, verdict = _check(tmp_path, layout, _rules(tmp_path, GOOD), "--trusted-root",
                           str(roots / "production+staging-no-tlog.jsonl"))
    assert code == 0 and _rule(verdict)["passed"], verdict
    code, verdict = _check(tmp_path, layout, _rules(tmp_path, GOOD), "--trusted-root",
                           str(roots / "staging-trusted-root.json"))
    assert code == 1
    assert _rule(verdict)["messages"][0].startswith("no verified SLSA provenance")


def test_rules_name_the_trust_roots(tmp_path: Path, layout: Path) -> None:
    roots = FIXTURES / "sigstore-roots"
    both = _rules(tmp_path, GOOD, roots=(roots / "production+staging-no-tlog.jsonl",))
    code, verdict = _check(tmp_path, layout, both)
    assert code == 0 and _rule(verdict)["passed"], verdict
    staging = _rules(tmp_path, GOOD, roots=(roots / "staging-trusted-root.json",))
    code, verdict = _check(tmp_path, layout, staging)
    assert code == 1
    bad = tmp_path / "not-a-root.json"
    bad.write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}')
    r = run_imggate(["check", f"oci:{layout}:app", "--rules",
                     str(_rules(tmp_path, GOOD, roots=(bad,))), "--env", "prod",
                     "--output-dir", str(tmp_path / "r2")])
    assert r.code == 2 and "not-a-root.json: trusted root has no Fulcio certificate authority" \
        in r.stderr


@pytest.mark.parametrize("labelled", [True, False], ids=["oci-1.1-referrer", "ghcr-shape"])
def test_check_reads_provenance_from_a_referrer(tmp_path: Path, labelled: bool) -> None:
    # The same envelope as an OCI 1.1 referrer in the layout (GHCR's shape: no artifact
    # type, an empty config): classified by its DSSE layer, verified, judged by the rule.
    repo, _ = referrer_repo(labelled=labelled)
    referrer = next(d for d, raw in repo.manifests.items() if b'"subject"' in raw)
    repo.tag_map["provenance"] = referrer  # a layout lists its manifests in index.json
    layout = _layout(tmp_path, repo)
    code, verdict = _check(tmp_path, layout, _rules(tmp_path, GOOD))
    assert code == 0, verdict
    assert _rule(verdict)["passed"]
    code, verdict = _check(tmp_path, layout, _rules(
        tmp_path, {**GOOD, "source_repositories": ["github.com/acme/*"]}))
    assert code == 1
    assert "source_repositories: expected one of [github.com/acme/*]" in \
        _rule(verdict)["messages"][0]
    assert "(referrer)" in _rule(verdict)["messages"][0]

"""Each rule kind on its own: what passes, what fails, and what the message says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imggate.models import ImageRef, Mode, Severity
from imggate.policy.checks import (
    check_age,
    check_attestations,
    check_kev,
    check_labels,
    check_registries,
    check_severity,
    check_signatures,
    check_tags,
    parse_signer,
)
from imggate.policy.kev import KevCatalog
from imggate.policy.rules import (
    AgeRules,
    AttestationRules,
    LabelRules,
    RegistryRules,
    SeverityRules,
    SignatureRules,
    TagRules,
)
from imggate.registry.reference import parse_reference
from policy.policy_builders import (
    DIGEST,
    FIXTURES,
    NOW,
    OTHER_DIGEST,
    attestation,
    finding,
    image,
    ref,
    signature,
)

E = Mode.ENFORCE
SLSA_STATEMENT = FIXTURES / "cosign" / "att-slsa-generator-v1.9.0-intoto" / "statement.json"


# --- severity ----------------------------------------------------------------------------

def test_severity_threshold_counts_at_and_above() -> None:
    rules = SeverityRules(fail_on=Severity.HIGH)
    r = check_severity([finding(severity=Severity.MEDIUM)], rules, E, True)
    assert r is not None and r.passed
    r = check_severity([finding("CVE-1", Severity.HIGH), finding("CVE-2", Severity.CRITICAL),
                        finding("CVE-3", Severity.LOW)], rules, E, True)
    assert r is not None and not r.passed
    assert r.messages[0] == "2 findings High or above (1 Critical, 1 High)"
    assert r.messages[1].startswith("CVE-2 (Critical) in openssl 3.0.1: fixed in 3.0.2")


def test_severity_describes_only_the_findings_it_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.policy import checks

    described: list[str] = []
    describe = checks.describe_finding

    def counted(f: object) -> str:
        described.append("")
        return describe(f)  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "describe_finding", counted)
    many = [finding(f"CVE-{n}", Severity.CRITICAL) for n in range(500)]
    r = check_severity(many, SeverityRules(fail_on=Severity.HIGH), E, True)
    assert r is not None and not r.passed and len(r.findings) == 500
    assert r.messages[-1] == f"... and {500 - checks.SHOW} more"
    assert len(described) == checks.SHOW == len(r.messages) - 2


def test_severity_accepts_any_case_in_yaml() -> None:
    assert SeverityRules.model_validate({"fail_on": "critical"}).fail_on is Severity.CRITICAL
    assert SeverityRules.model_validate({"max": {"high": 2}}).max == {Severity.HIGH: 2}


def test_max_counts_per_severity() -> None:
    rules = SeverityRules(max={Severity.MEDIUM: 1})
    two = [finding("CVE-1", Severity.MEDIUM), finding("CVE-2", Severity.MEDIUM)]
    r = check_severity(two, rules, E, True)
    assert r is not None and not r.passed
    assert "2 Medium findings, at most 1 allowed" in r.messages
    ok = check_severity(two[:1], rules, E, True)
    assert ok is not None and ok.passed


def test_ignore_unfixed() -> None:
    rules = SeverityRules(fail_on=Severity.HIGH, ignore_unfixed=True)
    r = check_severity([finding(severity=Severity.CRITICAL, fixed=())], rules, E, True)
    assert r is not None and r.passed
    assert "1 findings without a fix ignored (ignore_unfixed)" in r.messages


def test_cvss_threshold_regardless_of_label() -> None:
    rules = SeverityRules(cvss=9.0)
    r = check_severity([finding(severity=Severity.MEDIUM, cvss=9.8)], rules, E, True)
    assert r is not None and not r.passed and "CVSS 9 or above" in r.messages[0]
    r = check_severity([finding(severity=Severity.CRITICAL, cvss=8.9)], rules, E, True)
    assert r is not None and r.passed


def test_no_report() -> None:
    # Not required: a warning that does not deny, never a silent pass.
    r = check_severity([], SeverityRules(fail_on=Severity.CRITICAL), E, False)
    assert r is not None and not r.passed and r.mode is Mode.WARN
    assert r.messages[0].startswith("NOT SCANNED: no scanner evidence")
    r = check_severity([], SeverityRules(require_report=True), E, False)
    assert r is not None and not r.passed and r.mode is E
    assert check_severity([], SeverityRules(), E, True) is None


def test_kev_always_fails_and_fails_closed_when_not_loaded() -> None:
    rules = SeverityRules(kev=Path("kev.json"), ignore_unfixed=True)
    kev = KevCatalog(frozenset({"CVE-2021-44228"}))
    log4j = finding("GHSA-jfh8-c2jp-5v3q", Severity.LOW, aliases=("CVE-2021-44228",), fixed=())
    r = check_kev([log4j], rules, E, kev)
    assert r is not None and r.rule == "severity.kev" and not r.passed
    ok = check_kev([finding()], rules, E, kev)
    assert ok is not None and ok.passed
    missing = check_kev([], rules, E, None)
    assert missing is not None and not missing.passed and "not loaded" in missing.messages[0]
    assert check_kev([log4j], SeverityRules(), E, None) is None


# --- tags --------------------------------------------------------------------------------

def _tags(r: ImageRef, rules: TagRules) -> dict[str, bool]:
    return {x.rule: x.passed for x in check_tags(r, rules, E)}


def test_denied_tags_are_whole_tag_regexes() -> None:
    rules = TagRules(deny=("latest", "dev-.*"))
    assert _tags(ref("latest"), rules) == {"tags.denied": False}
    assert _tags(ref("dev-123"), rules) == {"tags.denied": False}
    assert _tags(ref("not-latest"), rules) == {"tags.denied": True}
    # No tag and no digest is docker's implicit latest.
    assert _tags(ref(None), rules) == {"tags.denied": False}
    assert _tags(ref(None, DIGEST), rules) == {"tags.denied": True}


def test_allowed_tags() -> None:
    rules = TagRules(allow=(r"v?[0-9]+\.[0-9]+\.[0-9]+", "[0-9a-f]{7,40}"))
    assert _tags(ref("v1.2.3"), rules) == {"tags.allowed": True}
    assert _tags(ref("3f2a9c1"), rules) == {"tags.allowed": True}
    assert _tags(ref("main"), rules) == {"tags.allowed": False}
    assert _tags(ref(None, DIGEST), rules) == {"tags.allowed": True}


def test_digest_pinning() -> None:
    rules = TagRules(require_digest=True)
    assert _tags(ref("1.0"), rules) == {"tags.digest-pinning": False}
    assert _tags(ref("1.0", DIGEST), rules) == {"tags.digest-pinning": True}


# --- registries, age, labels -------------------------------------------------------------

def test_registry_prefixes_match_on_path_segments() -> None:
    rules = RegistryRules(allowed=("registry.example.com/team",))
    ok = check_registries(ref(), rules, E)
    assert ok is not None and ok.passed
    nope = check_registries(ref(repository="teamx/app"), rules, E)
    assert nope is not None and not nope.passed
    assert "not under an allowed prefix" in nope.messages[0]
    hub = check_registries(ref(registry="docker.io", repository="library/nginx"),
                           RegistryRules(allowed=("docker.io/library",)), E)
    assert hub is not None and hub.passed
    glob = check_registries(ref(), RegistryRules(allowed=("*.example.com",)), E)
    assert glob is not None and glob.passed
    assert check_registries(ref(), RegistryRules(), E) is None


@pytest.mark.parametrize("text", ["docker.io/registry.example.com/x",
                                  "docker.io/registry.example.com/team/app:1",
                                  "index.docker.io/registry.example.com/x"])
def test_a_hub_repository_named_like_a_registry_is_not_under_that_registry(text: str) -> None:
    hub = parse_reference(text)
    assert hub.registry == "docker.io"
    for allowed in (("registry.example.com",), ("registry.example.com/team",),
                    ("registry.example.com/*",)):
        result = check_registries(hub, RegistryRules(allowed=allowed), E)
        assert result is not None and not result.passed, (text, allowed)
        assert "not under an allowed prefix" in result.messages[0]
    # Its real names still match: the canonical one, and Docker Hub's short form.
    own = check_registries(parse_reference("docker.io/team/app"),
                           RegistryRules(allowed=("team",)), E)
    assert own is not None and own.passed


def test_age() -> None:
    rules = AgeRules(max_days=30)
    young = check_age(image(ref(), created=datetime(2026, 11, 1, tzinfo=UTC)), rules, E, NOW)
    assert young is not None and young.passed
    old = check_age(image(ref(), created=datetime(2026, 1, 1)), rules, E, NOW)
    assert old is not None and not old.passed and "325 days ago" in old.messages[0]
    unknown = check_age(image(ref(), created=None), rules, E, NOW)
    assert unknown is not None and not unknown.passed
    assert check_age(None, AgeRules(), E, NOW) is None


def test_labels() -> None:
    rules = LabelRules(required=("org.opencontainers.image.source",),
                       values={"org.opencontainers.image.source": r"^https://gitlab\.com/"})
    ok = check_labels(image(ref(), labels={"org.opencontainers.image.source":
                                           "https://gitlab.com/acme/app"}), rules, E)
    assert ok is not None and ok.passed
    wrong = check_labels(image(ref(), labels={"org.opencontainers.image.source":
                                              "https://evil.example"}), rules, E)
    assert wrong is not None and not wrong.passed and "does not match" in wrong.messages[0]
    missing = check_labels(image(ref()), rules, E)
    assert missing is not None
    assert missing.messages == ("label 'org.opencontainers.image.source' is missing",)


# --- signatures --------------------------------------------------------------------------

GH = "https://token.actions.githubusercontent.com"
WF = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"


def _sig_rules(**kw: object) -> SignatureRules:
    return SignatureRules.model_validate(kw)


def test_k_of_n_counts_distinct_trusted_signers() -> None:
    rules = _sig_rules(keys=["/k/a.pub", "/k/b.pub"],
                       identities=[{"identity_regexp": r"^https://github\.com/acme/",
                                    "issuer": GH}], threshold=2)
    one = check_signatures([signature("a.pub"), signature("a.pub")], rules, E, (DIGEST,))
    assert one is not None and not one.passed
    assert one.messages[0] == "1 trusted signer(s) verified, 2 of 3 required"
    two = check_signatures([signature("a.pub"), signature(f"{WF} ({GH})")], rules, E, (DIGEST,))
    assert two is not None and two.passed and "2 of 3 required" in two.messages[0]


def test_untrusted_wrong_digest_unverified_and_tlog() -> None:
    rules = _sig_rules(keys=["/k/a.pub"], require_tlog=True)
    checks = [signature("other.pub"), signature("a.pub", digest=OTHER_DIGEST),
              signature("a.pub", verified=False, reason="signature does not verify"),
              signature("a.pub", tlog=False)]
    r = check_signatures(checks, rules, E, (DIGEST,))
    assert r is not None and not r.passed
    assert r.messages[1:] == (
        "sig by other.pub: signer 'other.pub' is not trusted by the rules",
        f"sig by a.pub: signs another digest ({OTHER_DIGEST})",
        "sig by a.pub: signature does not verify",
        "sig by a.pub: not in a transparency log (require_tlog)")


def test_unsigned() -> None:
    r = check_signatures([], _sig_rules(required=True), E, (DIGEST,))
    assert r is not None and r.messages == ("unsigned: no signature found for this image",)
    assert check_signatures([], _sig_rules(), E, (DIGEST,)) is None


def test_keyless_identity_and_issuer_must_both_match() -> None:
    rules = _sig_rules(identities=[{"identity": WF, "issuer": GH}])
    ok = check_signatures([signature(f"{WF} ({GH})")], rules, E, (DIGEST,))
    assert ok is not None and ok.passed
    other_issuer = check_signatures([signature(f"{WF} (https://gitlab.com)")], rules, E,
                                    (DIGEST,))
    assert other_issuer is not None and not other_issuer.passed
    assert parse_signer("me@example.com (https://accounts.google.com)") == (
        "me@example.com", "https://accounts.google.com")
    assert parse_signer("cosign.pub") == ("cosign.pub", None)


# --- attestations ------------------------------------------------------------------------

def _att_rules(conditions: list[dict[str, object]],
               predicate_type: str = "https://slsa.dev/provenance/v0.2") -> AttestationRules:
    return AttestationRules.model_validate(
        {"required": [{"predicate_type": predicate_type, "conditions": conditions}]})


@pytest.fixture(scope="module")
def slsa() -> dict[str, object]:
    statement = json.loads(SLSA_STATEMENT.read_text())
    assert statement["predicateType"] == "https://slsa.dev/provenance/v0.2"
    predicate: dict[str, object] = statement["predicate"]
    return predicate


def test_slsa_builder_id_condition_on_a_real_statement(slsa: dict[str, object]) -> None:
    att = attestation("https://slsa.dev/provenance/v0.2", slsa)
    ok = _att_rules([{"path": "builder.id",
                      "matches": r"^https://github\.com/slsa-framework/slsa-github-generator/"}],
                    predicate_type="slsaprovenance")
    r = check_attestations([att], ok, SignatureRules(), E, (DIGEST,))
    assert r is not None and r.passed, r
    wrong = _att_rules([{"path": "builder.id", "equals": "https://evil.example/builder"},
                        {"path": "invocation.configSource.digest.sha1",
                         "one_of": ["2bcaa7495e1cbd11fbd4f598d857b3a6f18df933"]}])
    r = check_attestations([att], wrong, SignatureRules(), E, (DIGEST,))
    assert r is not None and not r.passed
    assert "builder.id == 'https://evil.example/builder' failed" in r.messages[0]
    assert "one_of" not in r.messages[0]  # the met condition is not listed


def test_attestation_missing_unverified_or_untrusted(slsa: dict[str, object]) -> None:
    rules = _att_rules([])
    none = check_attestations([], rules, SignatureRules(), E, (DIGEST,))
    assert none is not None and none.messages == (
        "https://slsa.dev/provenance/v0.2: no verified attestation",)
    bad = attestation("https://slsa.dev/provenance/v0.2", slsa, verified=False)
    r = check_attestations([bad], rules, SignatureRules(), E, (DIGEST,))
    assert r is not None and not r.passed
    trusted = _sig_rules(keys=["/k/a.pub"])
    r = check_attestations([attestation("https://slsa.dev/provenance/v0.2", slsa,
                                        signer="b.pub")], rules, trusted, E, (DIGEST,))
    assert r is not None and not r.passed


def test_condition_needs_exactly_one_test() -> None:
    with pytest.raises(ValueError, match="exactly one of equals"):
        _att_rules([{"path": "builder.id"}])
    with pytest.raises(ValueError, match="exactly one of equals"):
        _att_rules([{"path": "builder.id", "equals": "a", "matches": "b"}])


def test_condition_paths_index_lists() -> None:
    rules = _att_rules([{"path": "materials.0.uri", "matches": "^git\\+"}])
    att = attestation("https://slsa.dev/provenance/v0.2",
                      {"materials": [{"uri": "git+https://github.com/acme/app"}]})
    r = check_attestations([att], rules, SignatureRules(), E, (DIGEST,))
    assert r is not None and r.passed
    missing = attestation("https://slsa.dev/provenance/v0.2", {"materials": []})
    r = check_attestations([missing], rules, SignatureRules(), E, (DIGEST,))
    assert r is not None and "materials.0.uri is missing" in r.messages[0]

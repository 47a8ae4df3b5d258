"""Rules files: validation with file:line, inheritance, image overrides, env selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from imggate.errors import ConfigError, UsageError
from imggate.models import Mode, Severity
from imggate.policy.loader import (
    BUILTIN_RULES,
    identity_from_flags,
    load_policy,
    load_rules,
    parse_rules,
)
from imggate.policy.rules import Identity
from policy.policy_builders import ref, rules

REPO_ROOT = Path(__file__).resolve().parents[2]


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        rules(text)
    return info.value


# --- built-in defaults -------------------------------------------------------------------

def test_builtin_dev_fails_on_critical_only() -> None:
    dev = load_rules().effective("dev").rules
    assert dev.severity.fail_on is Severity.CRITICAL
    assert dev.tags.deny == ()
    assert not dev.tags.require_digest


def test_builtin_prod_denies_latest_requires_digest_fails_on_high() -> None:
    r = load_rules()
    assert r.default_env == "dev"
    prod = r.effective("prod")
    assert prod.chain == ("dev", "prod")
    assert prod.rules.severity.fail_on is Severity.HIGH
    assert prod.rules.tags.deny == ("latest",)
    assert prod.rules.tags.require_digest
    assert not prod.signatures.is_required


def test_shipped_default_yaml_is_at_least_the_builtins() -> None:
    shipped = load_rules(REPO_ROOT / "rules" / "default.yaml")
    builtin = parse_rules(BUILTIN_RULES, "builtin")
    for env in ("dev", "prod"):
        a, b = shipped.effective(env).rules, builtin.effective(env).rules
        assert a.severity.fail_on == b.severity.fail_on
        assert set(b.tags.deny) <= set(a.tags.deny)
        assert a.tags.require_digest == b.tags.require_digest


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "rules").rglob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_rules_file_validates(path: Path) -> None:
    assert load_rules(path).names


def test_directory_means_its_default_yaml() -> None:
    assert load_rules(REPO_ROOT / "rules").names == ("dev", "staging", "prod")


# --- errors name file:line and key -------------------------------------------------------

def test_unknown_key_names_line_and_key() -> None:
    e = _error("version: 1\nenvironments:\n  prod:\n    severity:\n      fail_onn: High\n")
    assert e.location == "rules.yaml:5"
    assert "environments.prod.severity.fail_onn: unknown key" in e.message


def test_bad_value_names_its_line() -> None:
    e = _error("version: 1\nenvironments:\n  dev:\n    tags:\n      deny: ['(']\n")
    assert e.location == "rules.yaml:5"
    assert "invalid regular expression '(': it does not compile at position 0" in e.message
    assert "environments.dev.tags.deny.0" in e.message


def test_bad_severity_and_several_errors_listed() -> None:
    e = _error("environments:\n  dev:\n    severity:\n      fail_on: Terrible\n"
               "    age:\n      max_days: 0\n")
    assert e.location == "rules.yaml:4"
    assert "unknown severity 'Terrible'" in e.message
    assert "rules.yaml:6: environments.dev.age.max_days" in e.message


def test_missing_required_key_points_at_parent() -> None:
    e = _error("environments:\n  prod:\n    attestations:\n      required:\n"
               "        - conditions: []\n")
    assert e.location == "rules.yaml:5"
    assert "predicate_type" in e.message


def test_yaml_syntax_error_has_line() -> None:
    e = _error("environments:\n  dev:\n    severity: [\n")
    assert e.location is not None and e.location.startswith("rules.yaml:")
    assert "invalid YAML" in e.message


def test_duplicate_key_is_an_error() -> None:
    e = _error("environments:\n  dev: {}\n  dev: {}\n")
    assert e.location == "rules.yaml:3"
    assert "duplicate key 'dev'" in e.message


def test_unknown_extends_and_cycle() -> None:
    e = _error("environments:\n  prod:\n    extends: base\n")
    assert e.location == "rules.yaml:3" and "unknown environment 'base'" in e.message
    e = _error("environments:\n  a:\n    extends: b\n  b:\n    extends: a\n")
    assert "inheritance cycle" in e.message


def test_threshold_above_n_after_inheritance() -> None:
    e = _error("environments:\n  base:\n    signatures:\n      keys: [a.pub]\n"
               "  prod:\n    extends: base\n    signatures:\n      threshold: 2\n")
    assert e.location == "rules.yaml:8"
    assert "threshold 2 is more than the 1" in e.message


def test_identity_needs_one_identity_and_one_issuer() -> None:
    with pytest.raises(ValueError, match="exactly one of identity"):
        Identity(issuer="https://x")
    e = _error("environments:\n  prod:\n    signatures:\n      identities:\n"
               "        - identity: a@example.com\n          identity_regexp: a\n"
               "          issuer: https://x\n")
    assert e.location == "rules.yaml:5"


def test_default_env_must_exist() -> None:
    e = _error("default_env: qa\nenvironments:\n  dev: {}\n")
    assert e.location == "rules.yaml:1"


def test_not_a_mapping_and_wrong_version() -> None:
    assert "mapping" in _error("- a\n- b\n").message
    assert _error("version: 2\nenvironments:\n  dev: {}\n").location == "rules.yaml:1"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read rules file"):
        load_rules(tmp_path / "missing.yaml")


# --- inheritance and overrides -----------------------------------------------------------

INHERIT = """
environments:
  base:
    mode: warn
    severity: {fail_on: Critical, ignore_unfixed: true}
    tags: {deny: [latest]}
  prod:
    extends: base
    mode: enforce
    severity: {fail_on: High}
    labels: {required: [org.opencontainers.image.source], mode: warn}
    images:
      - match: "registry.example.com/*"
        severity: {fail_on: Medium}
      - match: "registry.example.com/team/*"
        tags: {require_digest: true}
      - match: "registry.example.com/team/app"
        mode: warn
"""


def test_child_overrides_only_what_it_writes() -> None:
    prod = rules(INHERIT).effective("prod").rules
    assert prod.severity.fail_on is Severity.HIGH
    assert prod.severity.ignore_unfixed  # inherited field inside an overridden section
    assert prod.tags.deny == ("latest",)
    assert prod.mode_of("severity") is Mode.ENFORCE
    assert prod.mode_of("labels") is Mode.WARN
    base = rules(INHERIT).effective("base").rules
    assert base.mode_of("severity") is Mode.WARN


def test_most_specific_image_pattern_wins() -> None:
    prod = rules(INHERIT).effective("prod")
    exact = prod.for_image(ref(repository="team/app"))
    assert exact.pattern == "registry.example.com/team/app"
    assert exact.mode("tags") is Mode.WARN
    assert exact.rules.severity.fail_on is Severity.HIGH  # only the winner applies
    team = prod.for_image(ref(repository="team/other"))
    assert team.pattern == "registry.example.com/team/*"
    assert team.rules.tags.require_digest and team.rules.tags.deny == ("latest",)
    other = prod.for_image(ref(repository="x/y"))
    assert other.pattern == "registry.example.com/*"
    assert other.rules.severity.fail_on is Severity.MEDIUM
    assert prod.for_image(ref(registry="ghcr.io")).pattern is None


def test_rules_and_trust_asked_again_are_the_same_as_worked_out_afresh(tmp_path: Path) -> None:
    """for_image and trust are remembered per image name (audit: one repository, every tag):
    what they answer must be what a fresh EffectiveRules works out, for every name, tag and
    digest, and a copy with other command-line signers must not answer from the original."""
    from imggate.models import Digest
    from imggate.policy.effective import MEMO_LIMIT, EffectiveRules
    from imggate.policy.rules import ImageOverride, RuleSet

    # What the answers are computed from cannot change under the memo: frozen values.
    assert all(m.model_config.get("frozen") for m in (RuleSet, ImageOverride))
    assert EffectiveRules.__struct_config__.frozen

    def fresh() -> EffectiveRules:
        return rules(INHERIT).effective("prod")

    prod = fresh()
    names = [{}, {"repository": "team/other"}, {"repository": "x/y"}, {"registry": "ghcr.io"},
             {"registry": "docker.io", "repository": "library/nginx"}]
    for name in names:
        for tag, digest in (("1.0", None), ("latest", None), (None, Digest.of(b"x")),
                            ("2.0", Digest.of(b"y"))):
            r = ref(tag, digest, **name)
            for _ in range(2):
                assert prod.for_image(r) == fresh().for_image(r)
                assert prod.trust(r) == fresh().trust(r)
    assert not prod.trust(ref()).needed
    signed = prod.with_signers(keys=(tmp_path / "k.pub",))
    assert signed.trust(ref()).needed and signed.for_image(ref()).rules.signatures.is_required
    assert not prod.trust(ref()).needed
    # Past the limit, answers are worked out each time, never wrong, and nothing grows.
    many = [ref(repository=f"team/app{n}") for n in range(MEMO_LIMIT + 10)]
    assert [prod.for_image(r) for r in many] == [fresh().for_image(r) for r in many]
    assert len(prod._rules_by_name) == MEMO_LIMIT


def test_docker_hub_short_names_match() -> None:
    r = rules("environments:\n  dev:\n    images:\n      - match: nginx\n"
              "        severity: {fail_on: Low}\n").effective("dev")
    assert r.for_image(ref(registry="docker.io", repository="library/nginx")).pattern == "nginx"


def test_paths_are_relative_to_the_rules_file(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "environments:\n  prod:\n    signatures: {keys: [keys/a.pub]}\n"
        "    severity: {kev: kev.json}\n")
    prod = load_rules(tmp_path / "r.yaml").effective("prod")
    assert prod.signatures.keys == (tmp_path / "keys" / "a.pub",)
    assert prod.signatures.is_required
    assert prod.kev_paths() == (tmp_path / "kev.json",)


def test_cli_signers_make_signatures_required_and_are_trust_material(tmp_path: Path) -> None:
    dev = load_rules().effective("dev")
    ident = Identity(identity="me@example.com", issuer="https://accounts.google.com")
    with_cli = dev.with_signers(keys=(tmp_path / "k.pub",), identities=(ident,))
    trust = with_cli.trust(ref())
    assert trust.signatures_required and trust.needed
    assert trust.keys == (tmp_path / "k.pub",) and trust.identities == (ident,)
    assert not dev.trust(ref()).needed


def test_trust_lists_attestation_types_with_cosign_aliases() -> None:
    r = rules("environments:\n  prod:\n    attestations:\n      required:\n"
              "        - predicate_type: slsaprovenance1\n").effective("prod")
    assert r.trust(ref()).attestation_types == ("https://slsa.dev/provenance/v1",)


def test_explain_shows_resolved_modes_and_inheritance() -> None:
    data = rules(INHERIT).effective("prod").explain()
    assert data["inherits"] == ["base"]
    rules_data = data["rules"]
    assert isinstance(rules_data, dict)
    assert rules_data["labels"]["mode"] == "warn"
    assert rules_data["severity"] == {"mode": "enforce", "fail_on": "High", "max": {},
                                      "ignore_unfixed": True, "cvss": None, "kev": None,
                                      "require_report": False, "max_report_age": None,
                                      "allow_undated": False,
                                      "evidence": ["reports", "attestations"]}


# --- load_policy: one call for the gate --------------------------------------------------

def test_empty_sections_are_defaults() -> None:
    r = rules("environments:\n  dev:\n  prod:\n    extends: dev\n    severity:\n")
    assert r.effective("prod").rules.severity.fail_on is None


def test_load_policy_wires_env_signers_exceptions_and_kev(tmp_path: Path) -> None:
    (tmp_path / "kev.json").write_text('{"vulnerabilities": [{"cveID": "CVE-2021-44228"}]}')
    (tmp_path / "rules.yaml").write_text(
        "environments:\n  dev: {}\n  prod:\n    aliases: [production]\n"
        "    severity: {kev: kev.json}\n"
        "exceptions:\n  - {id: CVE-1, expires: 2027-01-01, reason: r}\n")
    (tmp_path / ".trivyignore").write_text("CVE-2\n")
    ident = identity_from_flags("me@example.com", None, "https://accounts.google.com", None)
    assert ident is not None
    policy = load_policy(tmp_path / "rules.yaml", None, keys=(tmp_path / "k.pub",),
                         identities=(ident,), discover=tmp_path,
                         environ={"CI_ENVIRONMENT_TIER": "production"})
    assert policy.env.name == "prod" and policy.rules.env == "prod"
    assert policy.kev is not None and "CVE-2021-44228" in policy.kev
    # .trivyignore in the working directory is not read without exception_policy.discover.
    assert [e.vulnerability for e in policy.exceptions.entries] == ["CVE-1"]
    assert policy.notes == ("ignored .trivyignore in the working directory: "
                            "exception_policy.discover is off in prod (name a file with "
                            "--allowlist to use it)",)
    trust = policy.rules.trust(ref())
    assert trust.signatures_required and trust.keys == (tmp_path / "k.pub",)
    assert trust.identities == (ident,)
    plain = load_policy(None, "dev", environ={})
    assert plain.kev is None and not plain.rules.trust(ref()).needed


def test_identity_from_flags() -> None:
    assert identity_from_flags() is None
    i = identity_from_flags(identity_regexp="^https://gitlab\\.com/acme/", issuer="https://gitlab.com")
    assert i is not None and i.matches("https://gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main",
                                       "https://gitlab.com")
    with pytest.raises(UsageError, match="--certificate-oidc-issuer"):
        identity_from_flags(identity="me@example.com")
    with pytest.raises(UsageError, match="invalid regular expression"):
        identity_from_flags(identity_regexp="(", issuer="x")


def test_yaml_anchors_and_x_extension_keys() -> None:
    r = rules("x-strict: &strict\n  severity: {fail_on: High}\n  tags: {deny: [latest]}\n"
              "environments:\n  prod:\n    <<: *strict\n    tags: {deny: [latest, main]}\n")
    prod = r.effective("prod").rules
    assert prod.severity.fail_on is Severity.HIGH
    assert prod.tags.deny == ("latest", "main")  # explicit keys win over merged ones


def test_hostile_yaml_is_a_config_error_quickly() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    e = _error(laughs + "environments:\n  dev: {}\n")
    assert "alias bomb" in e.message  # refused in linear time, before anything expands it
    e = _error("environments: " + "[" * 2000 + "]" * 2000 + "\n")
    assert "invalid YAML" in e.message or "environments" in e.message


# --- models built when a rules file uses them (issue 22) ------------------------------------

#: Loads the rules given (``None``: the built-in ones) in a fresh interpreter, and prints
#: which rule models that built and the document dumped as attestations record it.
_BUILT_PROBE = """\
import json, sys
from pathlib import Path
from pydantic import BaseModel
from imggate.policy import exceptions, rules
from imggate.policy.loader import load_rules
doc = load_rules(Path(sys.argv[1]) if len(sys.argv) > 1 else None).document
built = sorted(n for m in (rules, exceptions) for n, c in vars(m).items()
               if isinstance(c, type) and issubclass(c, BaseModel) and c.__module__ == m.__name__
               and c.__pydantic_complete__)
dumped = doc.model_dump(mode="json")
print(json.dumps({"built": built, "dumped": dumped}))
"""


def _built(*args: str) -> dict[str, object]:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _BUILT_PROBE, *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, check=True, timeout=120)
    loaded: dict[str, object] = json.loads(proc.stdout)
    return loaded


def test_rules_build_only_the_models_they_use() -> None:
    # rules/default.yaml writes severity, tags, report_binding, exception_policy and
    # namespaces: the sections it never writes (signatures, attestations, images...)
    # keep their defaults and their models are never built.
    got = _built("rules/default.yaml")
    assert got["built"] == ["BindingRules", "ExceptionPolicy", "NamespaceEntry",
                            "NamespaceRules", "RulesDocument", "SeverityRules", "TagRules"]
    # ...and a document holding defaults of models never built is dumped as before.
    dumped = got["dumped"]
    assert isinstance(dumped, dict)
    dev = dumped["environments"]["dev"]
    assert dev["signatures"] == {"mode": None, "required": None, "keys": [], "identities": [],
                                 "certificate_chains": [], "threshold": 1,
                                 "trusted_roots": [], "require_tlog": None}
    assert dev["age"] == {"mode": None, "max_days": None}
    assert dumped["exceptions"] == [] and dumped["vex_attestations"] is None


def test_a_section_written_builds_its_model_and_says_its_errors_at_its_place() -> None:
    got = _built("rules/examples/signed-production.yaml")
    assert {"SignatureRules", "RulesDocument"} <= set(got["built"])  # type: ignore[arg-type]
    e = _error("environments:\n  dev:\n    signatures:\n      identities:\n"
               "        - {identity: a}\n      threshold: 0\n")
    assert e.message.splitlines() == [
        "rules.yaml:5: environments.dev.signatures.identities.0: give exactly one of issuer "
        "or issuer_regexp",
        "  rules.yaml:6: environments.dev.signatures.threshold: must be at least 1, not 0",
        "  (2 problems)"]

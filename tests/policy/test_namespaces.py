"""Namespace -> environment mapping: exemptions, patterns, names and aliases, defaults."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imggate.errors import ConfigError
from imggate.policy.loader import RulesFile, load_rules, parse_rules, select_env
from imggate.policy.namespaces import NamespaceMatch, exempt_image, namespace_env
from imggate.registry.reference import parse_reference

RULES = textwrap.dedent("""\
    version: 1
    default_env: dev
    environments:
      dev:
        aliases: [development, "review-*"]
        severity: {fail_on: Critical}
      staging:
        extends: dev
      prod:
        extends: dev
        aliases: [production]
        tags: {deny: [latest]}
    namespaces:
      map:
        - {match: "shop-prod", env: prod}
        - {match: "shop-*", env: staging}
        - {match: "*-prod", env: prod}
      exempt: [kube-system, "cert-manager*"]
      exempt_images: ["registry.k8s.io/pause", "ghcr.io/acme/tools/*"]
    """)


@pytest.fixture(scope="module")
def rules() -> RulesFile:
    return parse_rules(RULES, "rules.yaml")


@pytest.mark.parametrize(("namespace", "env", "how", "by"), [
    ("kube-system", None, NamespaceMatch.EXEMPT, "namespaces.exempt 'kube-system'"),
    ("cert-manager-webhook", None, NamespaceMatch.EXEMPT, "namespaces.exempt 'cert-manager*'"),
    # Order decides: the first entry wins although the second matches too.
    ("shop-prod", "prod", NamespaceMatch.PATTERN, "namespaces.map[0] 'shop-prod'"),
    ("shop-dev", "staging", NamespaceMatch.PATTERN, "namespaces.map[1] 'shop-*'"),
    ("payments-prod", "prod", NamespaceMatch.PATTERN, "namespaces.map[2] '*-prod'"),
    ("staging", "staging", NamespaceMatch.ENVIRONMENT, "environment name 'staging'"),
    ("production", "prod", NamespaceMatch.ENVIRONMENT, "alias 'production' of 'prod'"),
    ("review-42", "dev", NamespaceMatch.ENVIRONMENT, "alias 'review-*' of 'dev'"),
])
def test_mapping_order(rules: RulesFile, namespace: str, env: str | None, how: NamespaceMatch,
                       by: str) -> None:
    got = namespace_env(rules, namespace, default=select_env(rules, "dev", {}))
    assert (got.namespace, got.env, got.how, got.by) == (namespace, env, how, by)
    assert got.exempt == (how is NamespaceMatch.EXEMPT)
    assert not got.unmapped


def test_unmapped_without_default_says_so(rules: RulesFile) -> None:
    got = namespace_env(rules, "default")
    assert got.unmapped and got.env is None
    assert got.describe() == ("namespace 'default' maps to no environment (matches no "
                              "namespaces.map entry, environment name or alias in rules.yaml, "
                              "and default_env 'dev' is never used for a namespace: add it to "
                              "namespaces.map, or run serve with --env)")
    # The rules' default_env is NOT a silent fallback for namespaces.
    assert rules.default_env == "dev"


def test_default_applies_only_to_what_nothing_maps(rules: RulesFile) -> None:
    default = select_env(rules, "prod", {})
    got = namespace_env(rules, "default", default=default)
    assert (got.env, got.how, got.by) == ("prod", NamespaceMatch.DEFAULT, "default from --env prod")
    assert got.describe() == "namespace 'default' -> environment 'prod' (default from --env prod)"
    assert namespace_env(rules, "shop-dev", default=default).env == "staging"


def test_explicit_overrides_mapping_but_not_exemption(rules: RulesFile) -> None:
    explicit = select_env(rules, "dev", {})
    got = namespace_env(rules, "shop-prod", explicit=explicit)
    assert (got.env, got.how) == ("dev", NamespaceMatch.EXPLICIT)
    assert namespace_env(rules, "kube-system", explicit=explicit).exempt


def test_no_namespace(rules: RulesFile) -> None:
    got = namespace_env(rules, None)
    assert got.unmapped
    assert got.describe().startswith("no namespace maps to no environment")
    assert namespace_env(rules, None, default=select_env(rules, "prod", {})).env == "prod"


@pytest.mark.parametrize(("image", "pattern"), [
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause"),
    ("ghcr.io/acme/tools/kubectl@sha256:" + "a" * 64, "ghcr.io/acme/tools/*"),
    ("registry.k8s.io/pause-not", None),
    ("nginx", None),
    # A Docker Hub repository whose path starts with another registry's host is not that
    # registry's image: patterns match the normalised registry + repository, not text.
    ("docker.io/registry.k8s.io/pause:3.9", None),
    ("index.docker.io/ghcr.io/acme/tools/kubectl:1", None),
])
def test_exempt_images(rules: RulesFile, image: str, pattern: str | None) -> None:
    assert exempt_image(rules, parse_reference(image)) == pattern


def test_unknown_environment_in_map_is_a_config_error_with_line() -> None:
    text = RULES.replace("env: staging}", "env: stagin}")
    with pytest.raises(ConfigError) as e:
        parse_rules(text, "rules.yaml")
    assert e.value.location == "rules.yaml:16"
    assert "namespaces.map.1.env: names unknown environment 'stagin'" in e.value.message
    assert e.value.hint == "known environments: dev, staging, prod"


@pytest.mark.parametrize("bad", [
    "namespaces: {map: [{match: a}]}",
    "namespaces: {map: [{match: '', env: dev}]}",
    "namespaces: {exempt: kube-system}",
    "namespaces: {exempts: [a]}",
])
def test_schema_rejects(bad: str) -> None:
    text = "environments: {dev: {}}\n" + bad + "\n"
    with pytest.raises(ConfigError, match=r"rules.yaml:2: namespaces"):
        parse_rules(text, "rules.yaml")


def test_value_is_frozen(rules: RulesFile) -> None:
    got = namespace_env(rules, "shop-dev")
    with pytest.raises(AttributeError):
        got.env = "prod"  # type: ignore[misc]


dns_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20) | st.sampled_from(
    ["kube-system", "shop-prod", "shop-x", "a-prod", "production", "review-1", "staging"])


@given(namespace=dns_label, default=st.sampled_from([None, "dev", "prod"]))
@settings(max_examples=100, deadline=None)
def test_property_every_namespace_gets_an_answer(rules: RulesFile, namespace: str,
                                                 default: str | None) -> None:
    choice = select_env(rules, default, {}) if default else None
    got = namespace_env(rules, namespace, default=choice)
    # Exactly one of: exempt, unmapped, or an environment of the file.
    assert (got.env is None) == (got.exempt or got.unmapped)
    if got.env is not None:
        assert got.env in rules.environments
    if got.unmapped:
        assert default is None
    if default is None and got.how is NamespaceMatch.DEFAULT:
        pytest.fail("a default was used though none was given")


SHIPPED = [("kube-system", None, NamespaceMatch.EXEMPT), ("kube-node-lease", None,
                                                          NamespaceMatch.EXEMPT),
           ("imggate", None, NamespaceMatch.EXEMPT),
           ("prod", "prod", NamespaceMatch.PATTERN), ("production", "prod", NamespaceMatch.PATTERN),
           ("shop-prod", "prod", NamespaceMatch.PATTERN), ("prod-eu", "prod", NamespaceMatch.PATTERN),
           ("staging", "staging", NamespaceMatch.PATTERN),
           ("shop-staging", "staging", NamespaceMatch.PATTERN),
           ("default", "dev", NamespaceMatch.PATTERN), ("team-a", "dev", NamespaceMatch.PATTERN),
           ("prodigy", "dev", NamespaceMatch.PATTERN), ("staging-x", "dev", NamespaceMatch.PATTERN)]


@pytest.mark.parametrize("source", ["rules/default.yaml", None])
@pytest.mark.parametrize(("namespace", "env", "how"), SHIPPED)
def test_the_shipped_map_gates_every_namespace_a_new_cluster_has(
        source: str | None, namespace: str, env: str | None, how: NamespaceMatch) -> None:
    # The shipped file and the built-in rules: without --env nothing is unmapped.
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rules = load_rules(root / source if source else None)
    got = namespace_env(rules, namespace)
    assert (got.env, got.how) == (env, how), got.describe()

"""Environment names, aliases and the choice a run makes (``imggate.policy.environments``)."""

from __future__ import annotations

import pytest

from imggate.errors import ConfigError, UsageError
from imggate.policy.environments import EnvMatch, MatchKind, match_env
from imggate.policy.loader import load_rules, select_env
from policy.policy_builders import rules

# --- environment selection ---------------------------------------------------------------

def test_env_selection_order() -> None:
    r = load_rules()
    assert select_env(r, "prod", {"CI_ENVIRONMENT_TIER": "development"}).name == "prod"
    choice = select_env(r, None, {"CI_ENVIRONMENT_TIER": "production",
                                  "CI_ENVIRONMENT_NAME": "review/x"})
    assert (choice.name, choice.origin, choice.kind) == ("prod", "CI_ENVIRONMENT_TIER",
                                                         MatchKind.ALIAS)
    assert choice.source == "CI_ENVIRONMENT_TIER=production (alias 'production')"
    assert select_env(r, None, {"CI_ENVIRONMENT_NAME": "production/eu"}).name == "prod"
    # A tier that names no environment gives way to a name that does.
    assert select_env(r, None, {"CI_ENVIRONMENT_TIER": "other",
                                "CI_ENVIRONMENT_NAME": "prod"}).name == "prod"
    assert select_env(r, None, {"CI_ENVIRONMENT_TIER": "staging"}).name == "staging"
    default = select_env(r, None, {})
    assert (default.name, default.origin, default.kind) == ("dev", "default_env",
                                                            MatchKind.DEFAULT)
    assert select_env(r, "production", {}).name == "prod"  # aliases work for --env too
    assert select_env(r, "PROD", {}).kind is MatchKind.NAME


def test_unknown_ci_value_is_exit_2_naming_each_value_and_source() -> None:
    r = load_rules()
    with pytest.raises(UsageError) as info:
        select_env(r, None, {"CI_ENVIRONMENT_NAME": "prod-eu-west"})
    assert info.value.exit_code == 2
    assert "CI_ENVIRONMENT_NAME='prod-eu-west' matches no environment" in info.value.message
    assert "prod (aliases: production, production/*)" in (info.value.hint or "")
    with pytest.raises(UsageError, match="CI_ENVIRONMENT_TIER='other' and "
                                         "CI_ENVIRONMENT_NAME='eu-west'"):
        select_env(r, None, {"CI_ENVIRONMENT_TIER": "other", "CI_ENVIRONMENT_NAME": "eu-west"})


def test_fallback_env_is_opt_in_and_says_so() -> None:
    r = rules("fallback_env: dev\nenvironments:\n  dev: {}\n  prod: {aliases: [live]}\n")
    choice = select_env(r, None, {"CI_ENVIRONMENT_NAME": "prod-eu-west"})
    assert (choice.name, choice.kind) == ("dev", MatchKind.FALLBACK)
    assert choice.source == "fallback_env (CI_ENVIRONMENT_NAME='prod-eu-west' matched no " \
                            "environment)"
    # An explicit --env is a person's choice: a typo there is never replaced.
    with pytest.raises(UsageError):
        select_env(r, "prd", {})
    with pytest.raises(ConfigError, match="fallback_env: names unknown environment 'qa'"):
        rules("fallback_env: qa\nenvironments:\n  dev: {}\n")


def test_match_env_says_how_a_name_matched() -> None:
    r = rules("environments:\n  dev: {aliases: ['review/*', 'team-*']}\n"
              "  prod: {aliases: ['prod-*']}\n")
    assert match_env(r, "prod") == EnvMatch("prod", "prod", MatchKind.NAME)
    m = match_env(r, "Team-Payments")
    assert m == EnvMatch("dev", "Team-Payments", MatchKind.ALIAS, "team-*")
    assert m is not None and m.describe() == "'Team-Payments' matches alias 'team-*' of dev"
    assert match_env(r, "kube-system") is None


def test_unknown_explicit_env_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown environment 'qa'"):
        select_env(load_rules(), "qa", {})
    with pytest.raises(UsageError):
        load_rules().effective("qa")

"""The built-in rules are loaded without a YAML parser: they must stay what BUILTIN_RULES says."""

from __future__ import annotations

import subprocess
import sys

import yaml

from imggate.policy import loader


def test_builtin_data_is_the_documented_yaml() -> None:
    assert yaml.safe_load(loader.BUILTIN_RULES) == loader._BUILTIN_DATA


def test_builtin_rules_equal_the_parsed_yaml() -> None:
    builtin = loader.load_rules(None)
    parsed = loader.parse_rules(loader.BUILTIN_RULES, loader.BUILTIN_SOURCE)
    assert builtin.document == parsed.document
    assert builtin.environments == parsed.environments
    for name, env in builtin.document.environments.items():
        # overlay() copies only what a layer set: the set fields must match too.
        assert env.model_fields_set == parsed.document.environments[name].model_fields_set
        assert env.severity.model_fields_set == \
            parsed.document.environments[name].severity.model_fields_set
    assert (builtin.default_env, builtin.names) == (parsed.default_env, parsed.names)
    assert loader.load_rules(None).document.environments["prod"].tags.deny == ("latest",)


def test_default_policy_does_not_import_a_yaml_parser() -> None:
    code = ("import sys; from imggate.policy.loader import load_policy; load_policy(); "
            "print('yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/")
    assert out.stdout.strip() == "False"


def test_builtin_namespace_map_is_the_shipped_files() -> None:
    from pathlib import Path

    shipped = loader.load_rules(Path(__file__).resolve().parents[2] / "rules" / "default.yaml")
    assert loader.load_rules(None).document.namespaces == shipped.document.namespaces

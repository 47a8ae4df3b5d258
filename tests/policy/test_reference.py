"""docs/rules-reference.md is generated from the rule models and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from imggate.policy import reference, rules
from imggate.policy.exceptions import ExceptionEntry

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules-reference.md"


def test_checked_in_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == reference.render(), (
        "docs/rules-reference.md is stale: the rule models changed. "
        f"Regenerate it from the repository root with: PYTHONPATH=src {reference.COMMAND}")


def test_the_module_writes_the_reference_to_stdout():
    out = subprocess.run([sys.executable, "-m", "imggate.policy.reference"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert out == reference.render()


def test_every_model_and_key_of_a_rules_file_is_documented():
    found = dict(reference.discover())
    for section in rules.section_names():
        assert type(getattr(rules.RuleSet(), section)) in found, section
    for model in (rules.RulesDocument, rules.RuleSet, rules.EnvironmentSpec, rules.ImageOverride,
                  rules.Identity, rules.AttestationRequirement, rules.Condition, ExceptionEntry):
        assert model in found, model
    text = reference.render()
    for model in found:
        section = text.split(f"## {model.__name__}\n", 1)[1].split("\n## ", 1)[0]
        own = (set(model.model_fields) - set(rules.RuleSet.model_fields)
               if issubclass(model, rules.RuleSet) and model is not rules.RuleSet
               else set(model.model_fields))
        for name in own:
            assert f"| `{name}` |" in section, (model.__name__, name)


def test_a_new_key_appears_without_touching_the_generator():
    class Extra(BaseModel):
        """A section someone adds."""

        window_days: int = 7

    class Root(BaseModel):
        """A document."""

        extra: dict[str, tuple[Extra, ...]] = {}

    found = reference.discover(Root)
    assert (Extra, "extra.NAME[]") in found


def test_type_names_read_like_the_rules_docs():
    f = rules.SeverityRules.model_fields
    assert reference.type_name(f["fail_on"].annotation, f["fail_on"].metadata) == "severity"
    assert reference.type_name(f["max"].annotation) == "map of severity to integer"
    assert reference.type_name(f["kev"].annotation) == "path"
    t = rules.TagRules.model_fields["deny"]
    assert reference.type_name(t.annotation) == "list of regex"
    assert reference.type_name(rules.RuleSet.model_fields["mode"].annotation) == "mode"
    assert reference.type_name(Any) == "any value"

"""Rules errors a person can act on: every problem, close keys suggested, choices listed."""

from __future__ import annotations

import re

import pytest

from imggate.errors import ConfigError
from imggate.policy.loader import parse_rules

BROKEN = """\
environments:
  prod:
    severity:
      fail_onn: High
      fail_on: Severe
    tags:
      deny: latest
    signatures:
      threshold: zero
      require_tlog: maybe
    mode: enforcing
    age:
      max_days: 0
    labels:
      required: org.opencontainers.image.source
    sigs: {}
    extra1: 1
    extra2: 2
  dev: just a string
"""


@pytest.fixture(scope="module")
def message() -> str:
    with pytest.raises(ConfigError) as e:
        parse_rules(BROKEN, "rules.yaml")
    return e.value.message


def test_every_error_is_shown_in_file_order(message: str) -> None:
    lines = [n for n in range(1, 20) if f"rules.yaml:{n}: " in message]
    assert lines == [4, 5, 7, 9, 10, 11, 13, 15, 16, 17, 18, 19]
    assert "(12 problems)" in message
    assert "more" not in message


@pytest.mark.parametrize("expected", [
    "environments.prod.severity.fail_onn: unknown key: did you mean 'fail_on'?",
    "environments.prod.severity.fail_on: unknown severity 'Severe': one of Critical, High, "
    "Medium, Low, Info, Unknown",
    "environments.prod.tags.deny: must be a list of tag patterns, e.g. [latest]",
    "environments.prod.signatures.threshold: must be a whole number, not 'zero'",
    "environments.prod.signatures.require_tlog: must be true or false, not 'maybe'",
    "environments.prod.mode: 'enforcing' is not one of: enforce, warn",
    "environments.prod.age.max_days: must be at least 1, not 0",
    "environments.prod.labels.required: must be a list of values, "
    "e.g. [org.opencontainers.image.source]",
    "environments.dev: must be a mapping of keys to values, not 'just a string'",
])
def test_wording(message: str, expected: str) -> None:
    assert expected in message


def test_unknown_key_without_a_close_one_lists_the_valid_keys(message: str) -> None:
    line = next(x for x in message.splitlines() if "environments.prod.extra1" in x)
    assert "did you mean" not in line
    assert re.search(r"valid here: mode, .*severity, tags, signatures", line)
    assert "pydantic" not in message and "valid tuple" not in message
    assert "Input should" not in message


def test_a_single_problem_is_one_line() -> None:
    with pytest.raises(ConfigError) as e:
        parse_rules("environments:\n  dev:\n    tagz: {}\n", "r.yaml")
    assert e.value.message == "r.yaml:3: environments.dev.tagz: unknown key: did you mean 'tags'?"

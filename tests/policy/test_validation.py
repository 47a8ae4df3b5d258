"""``rules validate`` finds every problem of a file in one run, each at its file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imggate._cli import main
from imggate.policy.validation import validate_rules_file

ROOT = Path(__file__).resolve().parents[2]

# Ten independent mistakes, one per numbered line; everything else is right.
TEN = """\
version: 1
default_env: devv                      # 1 a typo of dev
fallback_env: stagng                   # 2 a typo of staging
allowlists: [vex.json]                 # 3 an OpenVEX document that is not one
environments:
  dev:
    aliases: [staging]                 # 4 another environment's name
    severity:
      fail_onn: High                   # 5 a typo of fail_on
  staging:
    extends: dve                       # 6 a typo of dev
  prod:
    severity:
      kev: kev.json                    # 7 JSON, but not a KEV catalog
    signatures:
      keys: [release.pub, gone.pub]    # 8 a key that is not PEM, 9 a key that is not there
      certificate_chains: [chain.pem]  # 10 a chain without a certificate
namespaces:
  map:
    - {match: "*-prod", env: prod}
"""

EXPECTED = [
    ":2: default_env: names unknown environment 'devv': did you mean 'dev'?",
    ":3: fallback_env: names unknown environment 'stagng': did you mean 'staging'?",
    ":4: allowlists.0: ",
    ":7: environments.dev.aliases.0: 'staging' is the name of environment 'staging'",
    ":9: environments.dev.severity.fail_onn: unknown key: did you mean 'fail_on'?",
    ":11: environments.staging.extends: names unknown environment 'dve': did you mean 'dev'?",
    ":14: environments.prod.severity.kev: ",
    ":16: environments.prod.signatures.keys.0: ",
    ":16: environments.prod.signatures.keys.1: ",
    ":17: environments.prod.signatures.certificate_chains.0: ",
]


@pytest.fixture
def ten(tmp_path: Path) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEN)
    (tmp_path / "vex.json").write_text('{"@context": "https://openvex.dev/ns/v0.2.0", '
                                       '"statements": "none"}')
    (tmp_path / "kev.json").write_text('{"title": "not a catalog"}')
    (tmp_path / "release.pub").write_text("ssh-ed25519 AAAAC3Nza not-a-pem-key\n")
    (tmp_path / "chain.pem").write_text("no certificate here\n")
    return rules


def test_ten_independent_mistakes_in_one_run(ten: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    with pytest.raises(SystemExit) as info:
        main(["rules", "validate", str(ten)])
    _, err = capsys.readouterr()
    assert info.value.code == 2
    lines = [line for line in err.splitlines() if line.startswith("imggate: error: ")]
    assert len(lines) == 10, err
    for want in EXPECTED:
        assert any(line.startswith(f"imggate: error: {ten}{want}") for line in lines), \
            f"{want!r} not in:\n{err}"
    assert err.rstrip().endswith(f"imggate: {ten}: 10 problems")
    assert "Traceback" not in err


def test_each_file_problem_says_what_is_wrong_with_the_file(ten: Path) -> None:
    found = {p.message.split(":", 1)[0]: p for p in validate_rules_file(ten).problems}
    assert "not a usable PEM public key" in found["environments.prod.signatures.keys.0"].message
    assert "gone.pub" in found["environments.prod.signatures.keys.1"].message
    assert "not a CISA KEV catalog" in found["environments.prod.severity.kev"].message
    assert "chain.pem" in found["environments.prod.signatures.certificate_chains.0"].message
    assert "vex.json" in found["allowlists.0"].message


def test_names_and_files_fixed_the_file_is_ok(ten: Path) -> None:
    text = ten.read_text()
    for wrong, right in (("devv", "dev"), ("stagng", "staging"), ("[staging]", "[stage]"),
                         ("fail_onn", "fail_on"), ("dve", "dev"),
                         ("[release.pub, gone.pub]", "[release.pub]"),
                         ("certificate_chains: [chain.pem]", "threshold: 1")):
        text = text.replace(wrong, right)
    ten.write_text(text)
    shutil.copy(ROOT / "examples" / "cosign.pub", ten.parent / "release.pub")
    shutil.copy(ROOT / "rules" / "examples" / "kev" / "known_exploited_vulnerabilities.json",
                ten.parent / "kev.json")
    (ten.parent / "vex.json").write_text(
        '{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1", '
        '"author": "a", "timestamp": "2026-01-01T00:00:00Z", "version": 1, "statements": '
        '[{"vulnerability": {"name": "CVE-2021-44228"}, "products": [{"@id": "pkg:oci/app"}], '
        '"status": "not_affected", "justification": "vulnerable_code_not_present"}]}')
    assert validate_rules_file(ten).problems == ()


def test_consistency_is_checked_beside_schema_problems(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("environments:\n  dev:\n    severity: {fail_onn: High}\n"
                     "  prod:\n    signatures: {keys: [a.pub], threshold: 2}\n"
                     "  a:\n    extends: b\n  b:\n    extends: a\n")
    messages = [p.render() for p in validate_rules_file(rules, check_files=False).problems]
    assert any("environments.dev.severity.fail_onn: unknown key" in m for m in messages)
    assert any(":5: environments.prod.signatures.threshold: threshold 2 is more than the 1"
               in m for m in messages)
    assert any("inheritance cycle: " in m for m in messages)
    assert len(messages) == 3, messages


def test_an_alias_used_as_a_name_is_pointed_at_its_environment(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("default_env: production\nenvironments:\n  dev: {}\n"
                     "  prod:\n    aliases: [production]\n    extends: dev\n")
    [problem] = validate_rules_file(rules).problems
    assert problem.render().startswith(
        f"{rules}:1: default_env: names 'production', an alias of 'prod': write the "
        "environment's name, 'prod'")

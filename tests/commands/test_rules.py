"""``imggate rules validate`` and ``imggate rules explain`` through the real entry point."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imggate._cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_validate_shipped_rules_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["rules", "validate", str(REPO_ROOT / "rules")], capsys)
    assert code == 0
    assert f"ok {REPO_ROOT / 'rules' / 'default.yaml'} (environments: dev*, staging, prod)" in out
    assert "exceptions.yaml (environments: prod*, 2 exception(s))" in out


def test_validate_broken_file_is_exit_2_with_file_line_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "a.yaml"
    good.write_text("environments:\n  dev: {}\n")
    bad = tmp_path / "b.yaml"
    bad.write_text("environments:\n  prod:\n    signatures:\n      threshold: zero\n")
    code, out, err = run(["rules", "validate", str(tmp_path)], capsys)
    assert code == 2
    assert f"ok {good}" in out
    assert f"{bad}:4: environments.prod.signatures.threshold:" in err
    assert "Traceback" not in err


def test_validate_missing_path_is_usage_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["rules", "validate", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "no such file" in err


def test_explain_prints_effective_rules(capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_ENVIRONMENT_TIER", raising=False)
    monkeypatch.delenv("CI_ENVIRONMENT_NAME", raising=False)
    monkeypatch.chdir(REPO_ROOT / "tests")  # no ./rules/ here: the built-in rules
    code, out, _ = run(["rules", "explain", "--env", "prod"], capsys)
    assert code == 0
    data = yaml.safe_load(out)
    assert data["environment"] == "prod" and data["inherits"] == ["dev"]
    assert data["selected_by"] == "--env prod"
    assert data["rules_found_by"] == "built-in" and data["source"] == "<built-in defaults>"
    assert data["rules"]["tags"] == {"mode": "enforce", "deny": ["latest"], "allow": [],
                                     "require_digest": True}
    assert data["rules"]["severity"]["fail_on"] == "High"


def test_explain_uses_ci_tier_and_image_overrides(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_ENVIRONMENT_TIER", "production")
    code, out, _ = run(["rules", "explain", "--rules",
                        str(REPO_ROOT / "rules" / "examples" / "per-image.yaml"),
                        "--image", "registry.example.com/apps/legacy-billing:1.0"], capsys)
    assert code == 0
    data = yaml.safe_load(out)
    assert data["selected_by"] == "CI_ENVIRONMENT_TIER=production (alias 'production')"
    assert data["image_match"] == "registry.example.com/apps/legacy-billing"
    assert data["image_rules"]["severity"]["mode"] == "warn"
    assert data["rules"]["severity"]["mode"] == "enforce"


def test_explain_unknown_env_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["rules", "explain", "--env", "qa"], capsys)
    assert code == 2 and "unknown environment 'qa' (from --env)" in err
    assert "prod (aliases: production, production/*)" in err


def test_every_command_finds_rules_the_same_way(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_ENVIRONMENT_TIER", raising=False)
    monkeypatch.delenv("CI_ENVIRONMENT_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    # No ./rules/: both commands say they use the built-in rules.
    code, out, _ = run(["rules", "validate"], capsys)
    assert code == 0 and "ok <built-in defaults> (no --rules and no ./rules/)" in out
    code, out, _ = run(["rules", "explain"], capsys)
    assert yaml.safe_load(out)["rules_found_by"] == "built-in"
    # ./rules/default.yaml: explain (like check) reads it, validate checks it.
    (tmp_path / "rules").mkdir()
    text = "environments:\n  qa: {severity: {fail_on: Low}}\n"
    (tmp_path / "rules" / "default.yaml").write_text(text)
    code, out, _ = run(["rules", "explain"], capsys)
    data = yaml.safe_load(out)
    assert (data["environment"], data["rules_found_by"]) == ("qa", "./rules/")
    assert data["source"] == "rules/default.yaml"
    assert data["rules_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    code, out, _ = run(["rules", "validate"], capsys)
    assert "rules: ./rules/ (found in the working directory)" in out
    assert "ok rules/default.yaml (environments: qa*)" in out
    # --rules wins over ./rules/.
    other = tmp_path / "other.yaml"
    other.write_text("environments:\n  dev: {}\n")
    code, out, _ = run(["rules", "explain", "--rules", str(other)], capsys)
    data = yaml.safe_load(out)
    assert (data["environment"], data["rules_found_by"]) == ("dev", "--rules")


def test_unknown_ci_environment_name_is_exit_2_naming_its_source(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI_ENVIRONMENT_TIER", raising=False)
    monkeypatch.setenv("CI_ENVIRONMENT_NAME", "prod-eu-west")
    code, out, err = run(["rules", "explain"], capsys)
    assert code == 2 and out == ""
    assert "CI_ENVIRONMENT_NAME='prod-eu-west' matches no environment" in err
    assert "known environments: dev (aliases: development, testing, review/*)" in err


def test_real_entry_point_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("environments:\n  prod:\n    extends: nowhere\n")
    proc = subprocess.run([sys.executable, "-m", "imggate", "rules", "validate", str(bad)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert f"{bad}:3: environments.prod.extends: names unknown environment 'nowhere'" \
        in proc.stderr


def test_validate_reads_what_the_rules_name(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("environments:\n  prod:\n    signatures: {keys: [cosign.pub]}\n"
                 "allowlists: [.trivyignore]\n")
    # Where the files are mounted elsewhere (a pod's rules): --no-check-files.
    assert run(["rules", "validate", "--no-check-files", str(f)], capsys)[0] == 0
    code, _, err = run(["rules", "validate", str(f)], capsys)
    assert code == 2
    assert f"{f}:4: allowlists.0: {tmp_path / '.trivyignore'}: allowlist file not found" in err
    assert f"{f}:3: environments.prod.signatures.keys.0: " in err and "cosign.pub" in err
    assert "2 problems" in err
    (tmp_path / ".trivyignore").write_text("CVE-2024-0001\n")
    (tmp_path / "cosign.pub").write_text("-----BEGIN PUBLIC KEY-----\n")
    code, _, err = run(["rules", "validate", "--check-files", str(f)], capsys)
    assert code == 2 and "not a usable PEM public key" in err and "1 problem" in err
    shutil.copy(REPO_ROOT / "examples" / "cosign.pub", tmp_path / "cosign.pub")
    assert run(["rules", "validate", str(f)], capsys)[0] == 0


def test_validate_shows_every_error_with_suggestions(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("environments:\n  prod:\n" + "".join(
        f"    key{n}: {n}\n" for n in range(7)) + "    severity:\n      fail_onn: High\n")
    code, _, err = run(["rules", "validate", str(bad)], capsys)
    assert code == 2
    assert all(f"environments.prod.key{n}: unknown key" in err for n in range(7))
    assert "fail_onn: unknown key: did you mean 'fail_on'?" in err


def _rules_with_exceptions(tmp_path: Path) -> Path:
    from datetime import date, timedelta

    today = date.today()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "environments:\n  dev: {}\n  prod: {}\nexceptions:\n"
        f"  - id: CVE-2020-0001\n    expires: {today - timedelta(days=3)}\n"
        "    reason: accepted last quarter\n"
        f"  - id: CVE-2020-0002\n    package: openssl\n    environments: [prod]\n"
        f"    expires: {today + timedelta(days=10)}\n    reason: not reachable\n"
        f"  - id: CVE-2020-0003\n    images: ['registry.example.com/team/*']\n"
        f"    expires: {today + timedelta(days=5)}\n    reason: internal only\n")
    return rules


def test_validate_warns_about_expired_exceptions(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rules = _rules_with_exceptions(tmp_path)
    code, out, err = run(["rules", "validate", str(rules)], capsys)
    assert code == 0
    assert f"ok {rules}" in out
    assert f"warning: {rules}:5: exception CVE-2020-0001 expired on" in err
    assert "CVE-2020-0002" not in err and "CVE-2020-0003" not in err


def test_explain_lists_the_exceptions_in_effect(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_ENVIRONMENT_TIER", raising=False)
    monkeypatch.delenv("CI_ENVIRONMENT_NAME", raising=False)
    rules = _rules_with_exceptions(tmp_path)

    def listed(*args: str) -> list[str]:
        code, out, _ = run(["rules", "explain", "--rules", str(rules), *args], capsys)
        assert code == 0
        return [e["id"] for e in yaml.safe_load(out)["exceptions"]]

    assert listed("--env", "prod") == ["CVE-2020-0002", "CVE-2020-0003"]  # not the expired one
    assert listed("--env", "dev") == ["CVE-2020-0003"]
    assert listed("--env", "prod", "--image", "registry.example.com/other/app:1") == \
        ["CVE-2020-0002"]
    code, out, _ = run(["rules", "explain", "--rules", str(rules), "--env", "prod"], capsys)
    assert code == 0
    entry = yaml.safe_load(out)["exceptions"][0]
    assert entry["package"] == "openssl" and entry["days_left"] == 10
    assert entry["reason"] == "not reachable" and entry["source"] == f"imggate {rules}:8"


def test_validate_warns_about_expiries_beyond_an_environments_max_days(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import date, timedelta

    far = date.today() + timedelta(days=200)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "environments:\n  dev: {}\n  prod:\n    exception_policy: {max_days: 90}\n"
        f"exceptions:\n  - id: CVE-2020-0009\n    expires: {far}\n"
        "    reason: vendor fix next year\n")
    code, out, err = run(["rules", "validate", str(rules)], capsys)
    assert code == 0 and f"ok {rules}" in out
    assert "CVE-2020-0009" in err and "prod" in err and "90" in err
    assert err.count("CVE-2020-0009") == 1  # dev has no limit: one warning, for prod


def test_explain_prints_the_namespace_map(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["rules", "explain", "--env", "staging", "--rules",
                        str(REPO_ROOT / "rules")], capsys)
    assert code == 0
    namespaces = yaml.safe_load(out)["namespaces"]
    assert namespaces["exempt"] == ["kube-system", "kube-public", "kube-node-lease", "imggate"]
    assert namespaces["map"][-1] == "* -> dev"
    assert "*-prod -> prod" in namespaces["map"] and "prod-* -> prod" in namespaces["map"]
    assert namespaces["mapped_to_staging"] == ["staging", "*-staging"]
    assert namespaces["order"].startswith("exempt, then map (first match wins)")

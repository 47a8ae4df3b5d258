"""``check`` takes every signature flag ``verify`` takes, and Trivy's severity flags.

Images are OCI layouts written in cosign's format by the test signer (a
stand-in for the cosign binary) and the real ``cosign save`` fixtures.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fixture_paths import FIXTURES
from harness_read_ahead import count_started
from registry_harness import CliResult, run_imggate
from signatures.cosign_format_signer import (
    CosignFormatSigner,
    make_image,
    simple_signing_payload,
    write_layout,
)
from signatures.fixture_cases import case_dir
from signatures.inmemory import InMemoryRepository
from signatures.test_own_pki import _pki

SLSA = "att-slsa-generator-v2.1.0-dsse"
GENERATOR = r"^https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/"
ACTIONS = "https://token.actions.githubusercontent.com"
PEM = serialization.Encoding.PEM


@pytest.fixture
def plain_rules(tmp_path: Path) -> Path:
    """Rules that check nothing by themselves: only the flags under test require anything."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nenvironments:\n  dev: {}\n")
    return rules


def check(tmp_path: Path, rules: Path, *args: str) -> tuple[CliResult, dict[str, Any]]:
    out = tmp_path / "out"
    result = run_imggate(["check", "--rules", str(rules), "--output-dir", str(out), "-q", *args])
    path = out / "imggate-verdict.json"
    return result, json.loads(path.read_text()) if path.exists() else {}


def signed_layout(tmp_path: Path) -> tuple[str, Path, Path]:
    alice, bob = CosignFormatSigner(), CosignFormatSigner()
    repo = InMemoryRepository()
    image = make_image(repo, tag="app")
    alice.sign_image(repo, image)
    (tmp_path / "alice.pub").write_bytes(alice.public_pem)
    (tmp_path / "bob.pub").write_bytes(bob.public_pem)
    layout = write_layout(repo, tmp_path / "layout")
    return f"oci:{layout}:app", tmp_path / "alice.pub", tmp_path / "bob.pub"


def test_threshold(tmp_path: Path, plain_rules: Path) -> None:
    ref, alice, bob = signed_layout(tmp_path)
    keys = ["--key", str(alice), "--key", str(bob), "--insecure-ignore-tlog"]
    res, _ = check(tmp_path, plain_rules, ref, *keys)
    assert res.code == 0, res.output
    res, verdict = check(tmp_path, plain_rules, ref, *keys, "--threshold", "2")
    assert res.code == 1, res.output
    assert "1 trusted signer(s) verified, 2 of 2 required" in json.dumps(verdict)
    assert "signatures.threshold: 2 (--threshold)" in res.stderr


def test_certificate_and_certificate_chain(tmp_path: Path, plain_rules: Path) -> None:
    root, inter, leaf, key = _pki(None)
    repo = InMemoryRepository()
    image = make_image(repo, tag="app")
    sig = key.sign(simple_signing_payload(image, repo.name), ec.ECDSA(hashes.SHA256()))
    CosignFormatSigner().sign_image(repo, image, signature=base64.b64encode(sig).decode(),
                                    annotations={
                                        "dev.sigstore.cosign/certificate":
                                            leaf.public_bytes(PEM).decode(),
                                        "dev.sigstore.cosign/chain":
                                            inter.public_bytes(PEM).decode()})
    ref = f"oci:{write_layout(repo, tmp_path / 'layout')}:app"
    (tmp_path / "root.pem").write_bytes(root.public_bytes(PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(PEM))
    res, verdict = check(tmp_path, plain_rules, ref, "--certificate-chain",
                         str(tmp_path / "root.pem"), "--insecure-ignore-tlog")
    assert res.code == 0, res.output
    assert verdict["images"][0]["signatures"][0]["signer"] == "root.pem"
    res, _ = check(tmp_path, plain_rules, ref, "--certificate", str(tmp_path / "leaf.pem"),
                   "--insecure-ignore-tlog")
    assert res.code == 0, res.output
    other_root, *_ = _pki(None)
    (tmp_path / "other.pem").write_bytes(other_root.public_bytes(PEM))
    res, _ = check(tmp_path, plain_rules, ref, "--certificate-chain",
                   str(tmp_path / "other.pem"), "--insecure-ignore-tlog")
    assert res.code == 1, res.output


def test_attestation_type_and_any_attestation(tmp_path: Path, plain_rules: Path) -> None:
    ref = f"oci:{case_dir(SLSA) / 'oci-layout'}"
    who = ["--certificate-identity-regexp", GENERATOR, "--certificate-oidc-issuer", ACTIONS]
    res, verdict = check(tmp_path, plain_rules, ref, *who, "--type", "slsaprovenance")
    rules = {r["rule"]: r for r in verdict["images"][0]["rules"]}
    assert rules["attestations"]["passed"] is True, res.output
    res, verdict = check(tmp_path, plain_rules, ref, *who, "--type", "spdxjson")
    assert res.code == 1
    rules = {r["rule"]: r for r in verdict["images"][0]["rules"]}
    assert rules["attestations"]["passed"] is False
    res, verdict = check(tmp_path, plain_rules, ref, *who, "--attestations")
    rules = {r["rule"]: r for r in verdict["images"][0]["rules"]}
    assert rules["attestations"]["passed"] is True, res.output


@pytest.mark.parametrize("ref", ["awskms:///arn:aws:kms:eu-west-1:1:key/k", "gcpkms://p/k",
                                 "azurekms://vault/key", "hashivault://transit", "k8s://ns/s"])
def test_kms_and_k8s_keys_are_refused_with_what_to_do(tmp_path: Path, plain_rules: Path,
                                                      ref: str) -> None:
    for command in (["check", "oci:x", "--rules", str(plain_rules)], ["verify", "oci:x"]):
        res = run_imggate([*command, "--key", ref])
        assert res.code == 2
        assert "not supported: export the public key with `cosign public-key" in res.stderr
        assert ref in res.stderr  # not a mangled path such as awskms:/arn...
    rules = tmp_path / "kms.yaml"
    rules.write_text(f"environments:\n  dev:\n    signatures:\n      keys: [{ref!r}]\n")
    res = run_imggate(["rules", "validate", str(rules)])
    assert res.code == 2 and "cosign public-key" in res.stderr and ref in res.stderr


def test_require_tlog_false_in_rules_accepts_unlogged_key_signatures(tmp_path: Path) -> None:
    ref, alice, _ = signed_layout(tmp_path)
    rules = tmp_path / "tlog.yaml"
    body = f"environments:\n  dev:\n    signatures:\n      keys: [{str(alice)!r}]\n"
    rules.write_text(body)
    res, _ = check(tmp_path, rules, ref)
    assert res.code == 1  # as cosign: a key signature needs a tlog entry by default
    rules.write_text(body + "      require_tlog: false\n")
    res, verdict = check(tmp_path, rules, ref)
    assert res.code == 0, res.output
    assert "UNSAFE: signatures.require_tlog: false: accepting" in res.stderr
    assert verdict["images"][0]["signatures"][0]["tlog"] is False
    rules.write_text(body + "      require_tlog: true\n")
    res, _ = check(tmp_path, rules, ref, "--insecure-ignore-tlog")
    assert res.code == 1  # required by the rules even when the flag says otherwise


def _report_layout(tmp_path: Path) -> tuple[str, Path]:
    repo = InMemoryRepository()
    image = make_image(repo, tag="app")
    ref = f"oci:{write_layout(repo, tmp_path / 'layout')}:app"
    doc = json.loads((FIXTURES / "trivy" / "debian-buster.json").read_text())
    doc["Metadata"]["RepoDigests"] = [f"oci:{tmp_path / 'layout'}@{image}"]
    doc["Metadata"].pop("ImageID", None)
    report = tmp_path / "trivy.json"
    report.write_text(json.dumps(doc))
    return ref, report


def test_trivy_severity_and_ignore_unfixed_override_the_rules(tmp_path: Path) -> None:
    ref, report = _report_layout(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text("environments:\n  dev:\n    severity:\n      fail_on: Critical\n")
    base = ["--trivy-report", str(report)]
    res, verdict = check(tmp_path, rules, ref, *base, "--severity", "CRITICAL")
    assert res.code == 1
    assert "severity.fail_on: Critical (--severity CRITICAL)" in res.stderr
    res, verdict = check(tmp_path, rules, ref, *base, "--severity", "CRITICAL,HIGH",
                         "--ignore-unfixed")
    assert "severity.fail_on: High (--severity CRITICAL,HIGH)" in res.stderr
    assert "severity.ignore_unfixed: true (--ignore-unfixed)" in res.stderr
    text = json.dumps(verdict)
    assert "High or above" in text and "ignore_unfixed" in text
    res, _ = check(tmp_path, rules, ref, *base, "--severity", "CRITICAL,LOW")
    assert res.code == 2 and "CRITICAL,HIGH,MEDIUM,LOW" in res.stderr
    res, _ = check(tmp_path, rules, ref, *base, "--severity", "SEVERE")
    assert res.code == 2 and "unknown severity" in res.stderr


def test_a_report_read_ahead_by_a_child_gives_the_same_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.scanners import read_ahead

    ref, report = _report_layout(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text("environments:\n  dev:\n    severity:\n      fail_on: High\n")
    forked = count_started(monkeypatch)
    monkeypatch.setattr(read_ahead, "MIN_BYTES", 1 << 62)
    res, here = check(tmp_path, rules, ref, "--trivy-report", str(report))
    monkeypatch.setattr(read_ahead, "MIN_BYTES", 0)
    monkeypatch.setattr(read_ahead, "can_fork", lambda: True)
    res_ahead, ahead = check(tmp_path, rules, ref, "--trivy-report", str(report))
    assert forked[0] == 0 and forked[1] > 0  # read here, then by a child
    assert (res_ahead.code, res_ahead.stderr) == (res.code, res.stderr) == (1, res.stderr)
    for verdict in (here, ahead):
        verdict.pop("generated")
        for image in verdict["images"]:
            for found in image["evidence"]:
                found.pop("age_seconds", None)
    assert ahead == here and here["images"][0]["findings"]


def _report_of(tmp_path: Path, name: str) -> tuple[str, Path]:
    repo = InMemoryRepository()
    image = make_image(repo, tag="app")
    ref = f"oci:{write_layout(repo, tmp_path / 'layout')}:app"
    doc = json.loads((FIXTURES / "trivy" / name).read_text())
    doc["Metadata"]["RepoDigests"] = [f"oci:{tmp_path / 'layout'}@{image}"]
    doc["Metadata"].pop("ImageID", None)
    report = tmp_path / "trivy.json"
    report.write_text(json.dumps(doc))
    return ref, report


def _written(out: Path) -> dict[str, bytes]:
    """The reports in ``out``, their clock readings blanked."""
    import re

    times = re.compile(rb'"(?:start_time|end_time|generated)": ?"[^"]*"|"age_seconds": \d+'
                       rb'|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC|class="age">[^<]*|'
                       rb'timestamp="[^"]*"|time="[^"]*"')
    return {p.name: times.sub(b"T", p.read_bytes()) for p in sorted(out.iterdir())}


def _forking_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   fail_on: str) -> tuple[str, Path, Path]:
    """A real Trivy report bound to an image, rules failing on ``fail_on``, and a check set
    to hand its report to a child (a fork allowed, no size too small, no secret held by
    what earlier tests left): the image's reference, the report and the rules."""
    from imggate.formats import written_ahead
    from imggate.redact import Redactor
    from imggate.scanners import read_ahead

    ref, report = _report_of(tmp_path, "defectdojo-issue_9333.json")
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"environments:\n  dev:\n    severity:\n      fail_on: {fail_on}\n")
    monkeypatch.setattr(read_ahead, "MIN_BYTES", 0)
    monkeypatch.setattr(read_ahead, "can_fork", lambda: True)
    monkeypatch.setattr(written_ahead, "SECRETS", Redactor())
    return ref, report, rules


def test_reports_written_by_the_child_that_read_them_are_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats import written_ahead

    ref, report, rules = _forking_check(tmp_path, monkeypatch, "High")
    first = json.loads(report.read_text())["Results"][0]["Vulnerabilities"][0]
    allow = tmp_path / ".trivyignore"
    allow.write_text(first["VulnerabilityID"] + "\n")  # a suppressed finding too
    args = ["--trivy-report", str(report), "--allowlist", str(allow)]
    attached: list[int] = []
    attach = written_ahead.attach

    def counted(*given: Any) -> written_ahead.WrittenAhead:
        attached.append(given[0])
        return attach(*given)

    monkeypatch.setattr(written_ahead, "attach", counted)
    (tmp_path / "here").mkdir()
    res, here = check(tmp_path / "here", rules, ref, *args)
    assert attached == [] and here["images"][0]["suppressed"]  # few findings: written here
    monkeypatch.setattr(written_ahead, "MIN_FINDINGS", 0)
    (tmp_path / "child").mkdir()
    res_child, _ = check(tmp_path / "child", rules, ref, *args)
    assert len(attached) == 1 and attached[0] > 0
    assert (res_child.code, res_child.stderr) == (res.code, res.stderr)
    assert _written(tmp_path / "child" / "out") == _written(tmp_path / "here" / "out")
    # A run holding a secret writes here: the child redacts with its fork's secrets.
    from imggate.redact import Redactor

    held = Redactor()
    held.add("a-registry-password-of-this-run")
    monkeypatch.setattr(written_ahead, "SECRETS", held)
    (tmp_path / "secret").mkdir()
    res_secret, _ = check(tmp_path / "secret", rules, ref, *args)
    assert len(attached) == 1 and res_secret.code == res.code
    assert _written(tmp_path / "secret" / "out") == _written(tmp_path / "here" / "out")


def test_a_report_the_child_cannot_write_fails_the_run_as_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats.outputs import GITLAB_FILENAME

    results = _directory_at_report_path(tmp_path, monkeypatch, GITLAB_FILENAME)
    assert results[0] == results[1]
    # The user's to change (a retry would fail the same): exit 2, and the directory is
    # not called a stale report.
    assert results[0][0] == 2 and "it is a directory" in results[0][1]
    assert "could not remove" not in results[0][1]
    assert results[0][2] == [GITLAB_FILENAME]  # nothing else left behind


def _directory_at_report_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              filename: str) -> list[tuple[int, str, list[str]]]:
    """A forking check run twice with a directory where ``filename`` goes, its reports
    written here and then by the child: each run's exit code, its stderr (the run's
    directory as ``X``) and what it left in its output directory."""
    from imggate.formats import written_ahead

    ref, report, rules = _forking_check(tmp_path, monkeypatch, "Critical")
    results = []
    for name, least in (("here", 1 << 30), ("child", 0)):
        monkeypatch.setattr(written_ahead, "MIN_FINDINGS", least)
        (tmp_path / name / "out" / filename).mkdir(parents=True)  # not writable
        res, _ = check(tmp_path / name, rules, ref, "--trivy-report", str(report))
        left = sorted(p.name for p in (tmp_path / name / "out").iterdir())
        results.append((res.code, res.stderr.replace(str(tmp_path / name), "X"), left))
    return results


def _when_the_child_is_ready(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each verdict submitted once its child has said it can write the HTML report (or
    ended; at most 30 s): whether the child was given the HTML report, per submit. Its
    reports are collected once it has handed them over (a parent that waits for them
    says so, and the child hands them over without the HTML rows: that report is then
    the parent's; see imggate.scanners.read_ahead)."""
    import select
    import time

    from imggate.formats import written_ahead
    from imggate.scanners import read_ahead

    result = read_ahead.ReadAhead.result

    def when_done(self: read_ahead.ReadAhead) -> Any:
        deadline = time.monotonic() + 30
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.01)
        return result(self)

    monkeypatch.setattr(read_ahead.ReadAhead, "result", when_done)
    submit = written_ahead.WrittenAhead.submit
    given: list[bool] = []

    def when_ready(self: written_ahead.WrittenAhead, *args: Any, **kwargs: Any) -> bool:
        assert self._result is not None
        select.select([self._result], [], [], 30)
        submitted = submit(self, *args, **kwargs)
        given.append(self.html)
        return submitted

    monkeypatch.setattr(written_ahead.WrittenAhead, "submit", when_ready)
    return given


def test_the_html_report_written_by_the_child_is_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats import written_ahead

    ref, report, rules = _forking_check(tmp_path, monkeypatch, "High")
    args = ["--trivy-report", str(report)]
    (tmp_path / "here").mkdir()
    res, _ = check(tmp_path / "here", rules, ref, *args)
    monkeypatch.setattr(written_ahead, "MIN_FINDINGS", 0)
    given = _when_the_child_is_ready(monkeypatch)
    (tmp_path / "child").mkdir()
    res_child, _ = check(tmp_path / "child", rules, ref, *args)
    assert given == [True]
    assert (res_child.code, res_child.stderr) == (res.code, res.stderr)
    assert _written(tmp_path / "child" / "out") == _written(tmp_path / "here" / "out")


def test_an_html_report_the_child_cannot_write_fails_the_run_as_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats.html import FILENAME

    given = _when_the_child_is_ready(monkeypatch)
    results = _directory_at_report_path(tmp_path, monkeypatch, FILENAME)
    assert given == [True]
    assert results[0] == results[1]
    assert results[0][0] == 2 and "it is a directory" in results[0][1]
    assert results[0][2] == [FILENAME]  # nothing else left behind


def test_a_child_that_ends_before_the_verdict_leaves_the_reports_to_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from imggate.formats import written_ahead

    ref, report, rules = _forking_check(tmp_path, monkeypatch, "Critical")
    (tmp_path / "here").mkdir()
    res, _ = check(tmp_path / "here", rules, ref, "--trivy-report", str(report))
    monkeypatch.setattr(written_ahead, "MIN_FINDINGS", 0)
    monkeypatch.setattr(written_ahead, "_child", lambda *_: os._exit(9))  # dies at once
    submit = written_ahead.WrittenAhead.submit
    gone: list[int] = []

    def after_its_end(self: written_ahead.WrittenAhead, *args: Any, **kwargs: Any) -> bool:
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped
        gone.append(self.pid)
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(written_ahead.WrittenAhead, "submit", after_its_end)
    (tmp_path / "gone").mkdir()
    res_gone, _ = check(tmp_path / "gone", rules, ref, "--trivy-report", str(report))
    assert len(gone) == 1 and (res_gone.code, res_gone.stderr) == (res.code, res.stderr)
    assert _written(tmp_path / "gone" / "out") == _written(tmp_path / "here" / "out")
    with pytest.raises(ChildProcessError):
        os.waitpid(gone[0], os.WNOHANG)

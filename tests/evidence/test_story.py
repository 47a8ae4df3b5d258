"""The evidence story on a real Distribution registry: CI attests, the deploy gate re-judges.

1. "CI": ``imggate check --attest`` with a real Trivy report (pointed at the
   pushed image, dated now) signs the findings and the verdict with a cosign
   encrypted key and appends them to the image's ``sha256-<hex>.att`` tag.
2. "Deploy": ``imggate check`` by digest, no report: the attestation is the
   evidence, verified with the rules' public key, judged with today's rules.
3. The exception that let the Critical finding through expires: deny, and
   the output says the exception expired.
4. The attestation is tampered with (findings removed, signature kept), or
   signed by another key, or missing: no valid evidence, "not scanned": deny.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fixture_paths import FIXTURES
from imggate.evidence.signing_keys import SigningKey, encrypt_cosign_key
from imggate.models import Digest
from registry_harness import CliResult, Registry, http_get, run_imggate
from signatures.cosign_format_signer import append_layer, make_image, push_repository
from signatures.inmemory import InMemoryRepository

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

CRITICAL_CVE = "CVE-2019-18224"  # debian-buster.json: libidn2-0, Critical, fixed upstream
PASSWORD = "correct horse battery staple"


class Story:
    """One registry, a CI key pair (cosign-encrypted private key) and a stranger's key."""

    def __init__(self, registry: Registry, tmp: Path) -> None:
        self.registry = registry
        self.tmp = tmp
        self.ci = SigningKey("ci", ec.generate_private_key(ec.SECP256R1()))
        self.key = tmp / "cosign.key"
        self.key.write_bytes(encrypt_cosign_key(self.ci.private, PASSWORD.encode(), n=16384))
        (tmp / "cosign.pub").write_bytes(self.ci.public_pem)
        stranger = SigningKey("stranger", ec.generate_private_key(ec.SECP256R1()))
        self.stranger_key = tmp / "stranger.key"
        self.stranger_key.write_bytes(encrypt_cosign_key(stranger.private, b"", n=16384))

    def image(self, name: str) -> tuple[str, Digest]:
        """A fresh image in its own repository: (repository, digest)."""
        repo = InMemoryRepository(f"{self.registry.host}/story/{name}")
        digest = make_image(repo, "1.0.0", f"story {name}".encode())
        push_repository(repo, self.registry.url, f"story/{name}")
        return f"story/{name}", digest

    def ref(self, repository: str, digest: Digest) -> str:
        return self.registry.ref(repository, None, str(digest))

    def report(self, repository: str, digest: Digest, created: datetime | None = None) -> Path:
        """Trivy's real debian-buster report, as Trivy would write it for this image today."""
        doc = json.loads((FIXTURES / "trivy" / "debian-buster.json").read_text())
        name = f"{self.registry.host}/{repository}"
        doc["ArtifactName"] = f"{name}@{digest}"
        doc["Metadata"]["RepoDigests"] = [f"{name}@{digest}"]
        doc["Metadata"].pop("ImageID", None)
        doc["CreatedAt"] = (created or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        out = self.tmp / f"{repository.replace('/', '-')}-trivy.json"
        out.write_text(json.dumps(doc))
        return out

    def rules(self, expires: date, name: str = "rules.yaml") -> Path:
        path = self.tmp / name
        path.write_text(f"""
version: 1
default_env: prod
environments:
  prod:
    severity:
      fail_on: High
      require_report: true
      evidence: [reports, attestations]
    signatures:
      keys: [cosign.pub]
      required: false
exceptions:
  - id: {CRITICAL_CVE}
    reason: fix scheduled, not reachable in this service
    expires: {expires.isoformat()}
""")
        return path

    def ci_check(self, repository: str, digest: Digest, rules: Path, key: Path | None = None,
                 password: str | None = PASSWORD, created: datetime | None = None) -> CliResult:
        return run_imggate(
            ["check", self.ref(repository, digest), "--rules", str(rules),
             "--trivy-report", str(self.report(repository, digest, created)), "--attest",
             "--attest-key", str(key or self.key), "-o", str(self.tmp / "ci-out"), "-q"],
            env={"COSIGN_PASSWORD": password})

    def deploy_check(self, repository: str, digest: Digest, rules: Path) -> tuple[CliResult,
                                                                                  dict[str, Any]]:
        out = self.tmp / "deploy-out"
        result = run_imggate(["check", self.ref(repository, digest), "--rules", str(rules),
                              "--insecure-ignore-tlog", "-o", str(out)])
        verdict = json.loads((out / "imggate-verdict.json").read_text())
        return result, verdict

    def att_manifest(self, repository: str, digest: Digest) -> dict[str, Any]:
        status, _, body = http_get(f"{self.registry.url}/v2/{repository}/manifests/"
                                   f"{digest.tag_form}.att",
                                   {"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 200, body
        doc: dict[str, Any] = json.loads(body)
        return doc

    def blob(self, repository: str, digest: str) -> bytes:
        status, _, body = http_get(f"{self.registry.url}/v2/{repository}/blobs/{digest}")
        assert status == 200
        return body

    def forge_attestation(self, repository: str, digest: Digest) -> None:
        """What an attacker with push rights but no key does: drop the findings from the
        signed statement, keep the signature, and make the forgery the .att tag's only layer."""
        manifest = self.att_manifest(repository, digest)
        layer = manifest["layers"][0]
        envelope = json.loads(self.blob(repository, layer["digest"]))
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["scanner"]["result"]["findings"] = []
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        forged = InMemoryRepository(f"{self.registry.host}/{repository}")
        raw = json.dumps(envelope, separators=(",", ":")).encode()
        append_layer(forged, digest, "att", raw, layer["mediaType"], layer["annotations"])
        push_repository(forged, self.registry.url, repository)


@pytest.fixture(scope="module")
def story(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Story:
    return Story(anon_registry, tmp_path_factory.mktemp("story"))


def _messages(verdict: dict[str, Any], rule: str) -> list[str]:
    return [m for r in verdict["images"][0]["rules"] if r["rule"] == rule for m in r["messages"]]


def _today() -> date:
    return datetime.now(UTC).date()


def test_ci_attests_and_the_deploy_gate_admits_then_denies_when_the_exception_expires(
        story: Story) -> None:
    repository, digest = story.image("app")
    valid = story.rules(_today() + timedelta(days=30))
    ci = story.ci_check(repository, digest, valid)
    assert ci.code == 0, ci.output
    assert "attested" in ci.stdout and f"{digest.tag_form}.att" in ci.stdout

    manifest = story.att_manifest(repository, digest)
    types = [layer["annotations"]["predicateType"] for layer in manifest["layers"]]
    assert types == ["https://cosign.sigstore.dev/attestation/vuln/v1",
                     "https://imggate.dev/verdict/v1"]

    admitted, verdict = story.deploy_check(repository, digest, valid)
    assert admitted.code == 0, admitted.output
    image = verdict["images"][0]
    assert image["decision"] == "allow"
    assert any("scanner evidence from vuln attestation" in n for n in image["notes"])

    # The exception's last day has passed since CI ran: today's date, today's rules.
    expired = story.rules(_today() - timedelta(days=1), "rules-expired.yaml")
    denied, verdict = story.deploy_check(repository, digest, expired)
    assert denied.code == 1, denied.output
    assert CRITICAL_CVE in denied.output
    why = _messages(verdict, "severity")
    assert f"counted again: {CRITICAL_CVE} (exception expired on" in why[0], why
    assert verdict["images"][0]["decision"] == "deny"


def test_a_tampered_attestation_is_refused_and_the_image_is_not_scanned(story: Story) -> None:
    repository, digest = story.image("tampered")
    valid = story.rules(_today() + timedelta(days=30))
    assert story.ci_check(repository, digest, valid).code == 0
    # An attacker with push rights drops the findings but cannot re-sign: the signature
    # stays, the payload changes, and the .att tag now holds only the forgery.
    story.forge_attestation(repository, digest)

    result, verdict = story.deploy_check(repository, digest, valid)
    assert result.code == 1, result.output
    image = verdict["images"][0]
    assert image["decision"] == "deny"
    assert "NOT SCANNED" in result.output
    why = _messages(verdict, "severity")
    assert any("refused" in m and "does not verify" in m for m in why), why


def test_an_attestation_signed_by_another_key_is_refused(story: Story) -> None:
    repository, digest = story.image("stranger")
    valid = story.rules(_today() + timedelta(days=30))
    ci = story.ci_check(repository, digest, valid, key=story.stranger_key, password="")
    assert ci.code == 0, ci.output
    result, verdict = story.deploy_check(repository, digest, valid)
    assert result.code == 1, result.output
    assert "NOT SCANNED" in result.output
    assert any("refused" in m for m in _messages(verdict, "severity"))


def test_no_attestation_where_a_report_is_required_is_not_scanned(story: Story) -> None:
    repository, digest = story.image("bare")
    result, verdict = story.deploy_check(repository, digest,
                                         story.rules(_today() + timedelta(days=30)))
    assert result.code == 1, result.output
    assert verdict["images"][0]["decision"] == "deny"
    assert "NOT SCANNED" in result.output


def test_attesting_again_appends_and_keeps_existing_layers(story: Story) -> None:
    repository, digest = story.image("twice")
    valid = story.rules(_today() + timedelta(days=30))
    assert story.ci_check(repository, digest, valid).code == 0
    first = story.att_manifest(repository, digest)["layers"]
    assert story.ci_check(repository, digest, valid).code == 0
    second = story.att_manifest(repository, digest)["layers"]
    assert second[:2] == first and len(second) == 4


def test_wrong_or_missing_cosign_password_is_exit_2_before_any_push(story: Story) -> None:
    repository, digest = story.image("password")
    valid = story.rules(_today() + timedelta(days=30))
    wrong = story.ci_check(repository, digest, valid, password="not it")
    assert wrong.code == 2 and "wrong COSIGN_PASSWORD" in wrong.output
    assert PASSWORD not in wrong.output and "not it" not in wrong.output
    missing = story.ci_check(repository, digest, valid, password=None)
    assert missing.code == 2 and "COSIGN_PASSWORD is not set" in missing.output
    status, _, _ = http_get(f"{story.registry.url}/v2/{repository}/manifests/"
                            f"{digest.tag_form}.att")
    assert status == 404


def test_a_push_failure_is_exit_3_and_said(story: Story, tmp_path: Path) -> None:
    repository, digest = story.image("readonly")
    valid = story.rules(_today() + timedelta(days=30))
    # A registry that refuses writes: the same storage, served read-only.
    import shutil

    from registry_harness import start_registry

    ro_dir = tmp_path / "ro"
    ro = start_registry(ro_dir)
    try:
        ro.stop()
        shutil.rmtree(ro.root)
        shutil.copytree(story.registry.root, ro.root)
        config = json.loads(ro.config_path.read_text())
        config["storage"]["maintenance"]["readonly"] = {"enabled": True}
        ro.config_path.write_text(json.dumps(config))
        import subprocess

        ro.process = subprocess.Popen(["docker-registry", "serve", str(ro.config_path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from registry_harness import _wait_ready

        _wait_ready(ro, 15)
        report = story.report(repository, digest)
        result = run_imggate(
            ["check", ro.ref(repository, None, str(digest)), "--rules", str(valid),
             "--trivy-report", str(report), "--attest", "--attest-key", str(story.key),
             "-o", str(tmp_path / "out"), "-q"], env={"COSIGN_PASSWORD": PASSWORD})
    finally:
        ro.stop()
    assert result.code == 3, result.output
    assert "could not push the attestations" in result.stderr


def test_verify_type_vuln_accepts_ours_and_refuses_a_result_that_is_not_a_report(
        story: Story) -> None:
    repository, digest = story.image("verify")
    valid = story.rules(_today() + timedelta(days=30))
    assert story.ci_check(repository, digest, valid).code == 0
    pub = str(story.tmp / "cosign.pub")
    ok = run_imggate(["verify", "--type", "vuln", "--key", pub, "--insecure-ignore-tlog",
                      story.ref(repository, digest)])
    assert ok.code == 0, ok.output
    assert "evidence: trivy" in ok.stdout.lower() and "2 findings" in ok.stdout

    # cosign's own test predicate (scanner.result null), signed by the same key.
    other, other_digest = story.image("verify-null")
    predicate = json.loads((FIXTURES / "evidence" / "cosign-testdata-vuln-predicate.json")
                           .read_text())
    from imggate.evidence.dsse import sign_statement, statement
    from imggate.evidence.push import push_attestations
    from imggate.registry.client import RegistryClient

    ptype = "https://cosign.sigstore.dev/attestation/vuln/v1"
    body = statement(f"{story.registry.host}/{other}", other_digest, ptype, predicate)

    async def push() -> None:
        async with RegistryClient() as client:
            repo = client.repository(story.registry.host, other)
            await push_attestations(repo, other_digest, [(sign_statement(story.ci, body), ptype)])

    asyncio.run(push())
    bad = run_imggate(["verify", "--type", "vuln", "--key", pub, "--insecure-ignore-tlog",
                       story.ref(other, other_digest)])
    assert bad.code == 1, bad.output
    assert "not a Trivy JSON report" in bad.stdout


def test_severity_evidence_says_which_sources_count(story: Story) -> None:
    repository, digest = story.image("sources")
    valid = story.rules(_today() + timedelta(days=30))
    assert story.ci_check(repository, digest, valid).code == 0
    text = valid.read_text()
    only_reports = story.tmp / "only-reports.yaml"
    only_reports.write_text(text.replace("evidence: [reports, attestations]",
                                         "evidence: [reports]"))
    result, verdict = story.deploy_check(repository, digest, only_reports)
    assert result.code == 1 and verdict["images"][0]["decision"] == "deny"
    assert not any("vuln attestation" in n for n in verdict["images"][0]["notes"])

    only_attestations = story.tmp / "only-attestations.yaml"
    only_attestations.write_text(text.replace("evidence: [reports, attestations]",
                                              "evidence: [attestations]"))
    # A clean report file on the command line does not count; the attestation does.
    empty = json.loads(story.report(repository, digest).read_text())
    empty["Results"] = []
    clean = story.tmp / "clean.json"
    clean.write_text(json.dumps(empty))
    out = story.tmp / "sources-out"
    result = run_imggate(["check", story.ref(repository, digest), "--rules",
                          str(only_attestations), "--trivy-report", str(clean),
                          "--insecure-ignore-tlog", "-o", str(out)])
    verdict = json.loads((out / "imggate-verdict.json").read_text())
    notes = verdict["images"][0]["notes"]
    assert any("not counted" in n for n in notes), notes
    assert any("scanner evidence from vuln attestation" in n for n in notes), notes
    assert result.code == 0, result.output


def test_max_report_age_measures_the_attested_scan(story: Story) -> None:
    repository, digest = story.image("aged")
    valid = story.rules(_today() + timedelta(days=30))
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    assert story.ci_check(repository, digest, valid, created=ten_days_ago).code == 0
    fresh_only = story.tmp / "fresh-only.yaml"
    fresh_only.write_text(valid.read_text().replace("require_report: true",
                                                    "require_report: true\n      "
                                                    "max_report_age: 7d"))
    result, verdict = story.deploy_check(repository, digest, fresh_only)
    assert result.code == 1, result.output
    why = _messages(verdict, "report-age")
    assert any("older than max_report_age 7d" in m for m in why), verdict["images"][0]["rules"]
    evidence = verdict["images"][0]["evidence"]
    assert evidence[0]["kind"] == "attestation", evidence

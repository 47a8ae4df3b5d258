"""Signed OpenVEX attestations beside the image suppress its findings, for its digest only.

The findings are a real Trivy report (``tests/fixtures/trivy/alpine-310.json``: CVE-2019-1549
and CVE-2019-1551 in libcrypto1.1 and libssl1.1, all Medium). cosign cannot run here, so the
attestations are written in cosign's format by the test signer (``cosign_format_signer``, a
stand-in for ``cosign attest --key --type openvex``) with keys made for the test; the images
live in an OCI layout read by ``imggate check``. Statements are OpenVEX v0.2.0 documents.
The report is bound to the test image by changing only its ``ArtifactName`` and
``Metadata.RepoDigests`` (report binding would otherwise, rightly, refuse it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fixture_paths import FIXTURES
from imggate.models import Digest
from registry_harness import run_imggate
from signatures.cosign_format_signer import CosignFormatSigner, make_image, write_layout
from signatures.inmemory import InMemoryRepository

TRIVY = FIXTURES / "trivy" / "alpine-310.json"
OPENVEX = "https://openvex.dev/ns"


def vex_doc(status: str = "not_affected") -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/alpine-310-1",
        "author": "Platform Security <security@example.com>",
        "timestamp": "2026-11-20T10:00:00Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2019-1549"},
            "products": [{"@id": "pkg:oci/app"}],
            "status": status,
            "justification": "vulnerable_code_not_in_execute_path",
            "impact_statement": "the RNG fork path is never taken in this image",
        }],
    }


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CosignFormatSigner, Path]]:
    out = {}
    for name in ("security", "mallory"):
        signer = CosignFormatSigner()
        path = tmp_path_factory.mktemp("keys") / f"{name}.pub"
        path.write_bytes(signer.public_pem)
        out[name] = (signer, path)
    return out


def _layout(tmp: Path, signer: CosignFormatSigner | None, *,
            doc: dict[str, Any] | None = None) -> Path:
    repo = InMemoryRepository("app")
    image = make_image(repo, tag="app")
    if signer is not None:
        signer.attest_image(repo, image, OPENVEX, doc or vex_doc())
    return write_layout(repo, tmp / "layout")


def _rules(tmp: Path, key: Path, **policy: Any) -> Path:
    doc = {"version": 1,
           "environments": {"prod": {"severity": {"max": {"Medium": 2}},
                                     "exception_policy": policy}},
           "exceptions": {"vex_attestations": {"keys": [str(key)], "require_tlog": False}}}
    path = tmp / "rules.yaml"
    path.write_text(json.dumps(doc))
    return path


def _bound_report(tmp: Path, layout: Path) -> Path:
    index = json.loads((layout / "index.json").read_text())
    digest = next(m["digest"] for m in index["manifests"]
                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "app")
    doc = json.loads(TRIVY.read_bytes())
    doc["ArtifactName"] = f"app@{digest}"
    doc.setdefault("Metadata", {})["RepoDigests"] = [f"app@{digest}"]
    path = tmp / "trivy-bound.json"
    path.write_text(json.dumps(doc))
    return path


def _check(tmp: Path, layout: Path, rules: Path) -> tuple[int, dict[str, Any]]:
    out = tmp / "reports"
    r = run_imggate(["check", f"oci:{layout}:app", "--rules", str(rules), "--env", "prod",
                     "--trivy-report", str(_bound_report(tmp, layout)),
                     "--output-dir", str(out)])
    assert r.code in (0, 1), r.output
    [image] = json.loads((out / "imggate-verdict.json").read_text())["images"]
    return r.code, image


def test_a_signed_vex_suppresses_exactly_its_findings(tmp_path: Path, keys: Any) -> None:
    signer, key = keys["security"]
    code, image = _check(tmp_path, _layout(tmp_path, signer), _rules(tmp_path, key))
    assert code == 0, image["rules"]
    text = json.dumps(image)
    # Both packages' CVE-2019-1549 are suppressed, CVE-2019-1551 still counts.
    assert text.count("CVE-2019-1551") >= 2
    uses = [u for u in image["exceptions"] if u["vulnerability"] == "CVE-2019-1549"]
    assert len(uses) == 1 and uses[0]["status"] == "used"
    assert uses[0]["source"].startswith("openvex attestation oci:")
    assert "signed by" in uses[0]["source"]
    reason = uses[0]["reason"]
    assert "Platform Security <security@example.com>" in reason
    assert "2026-11-20T10:00:00Z" in reason and "vulnerable_code_not_in_execute_path" in reason
    assert len(uses[0]["matched"]) == 2


def test_without_vex_the_findings_count(tmp_path: Path, keys: Any) -> None:
    _, key = keys["security"]
    code, image = _check(tmp_path, _layout(tmp_path, None), _rules(tmp_path, key))
    assert code == 1
    assert not image["exceptions"]


def test_a_wrongly_signed_vex_suppresses_nothing(tmp_path: Path, keys: Any) -> None:
    mallory, _ = keys["mallory"]
    _, key = keys["security"]
    code, image = _check(tmp_path, _layout(tmp_path, mallory), _rules(tmp_path, key))
    assert code == 1
    assert not image["exceptions"]
    assert any("not verified" in n and "suppresses nothing" in n for n in image["notes"])


def test_a_vex_about_another_image_suppresses_nothing(tmp_path: Path, keys: Any) -> None:
    # Signed by the trusted key, but its statement's subject is another digest.
    signer, key = keys["security"]
    other = Digest.parse("sha256:" + "ab" * 32)
    repo = InMemoryRepository("app")
    image_digest = make_image(repo, tag="app")
    from signatures.cosign_format_signer import in_toto_statement

    statement = in_toto_statement(other, OPENVEX, vex_doc(), "app")
    signer.attest_image(repo, image_digest, OPENVEX, vex_doc(), statement=statement)
    layout = write_layout(repo, tmp_path / "layout")
    code, image = _check(tmp_path, layout, _rules(tmp_path, key))
    assert code == 1 and not image["exceptions"]


def test_an_affected_statement_suppresses_nothing(tmp_path: Path, keys: Any) -> None:
    signer, key = keys["security"]
    layout = _layout(tmp_path, signer, doc=vex_doc("affected"))
    code, image = _check(tmp_path, layout, _rules(tmp_path, key))
    assert code == 1 and not image["exceptions"]


def test_require_expiry_refuses_vex_statements(tmp_path: Path, keys: Any) -> None:
    # OpenVEX statements carry no expiry: an environment requiring one refuses them.
    signer, key = keys["security"]
    code, image = _check(tmp_path, _layout(tmp_path, signer),
                         _rules(tmp_path, key, require_expiry=True))
    assert code == 1
    refused = [u for u in image["exceptions"] if u["status"] == "refused"]
    assert refused and refused[0]["source"].startswith("openvex attestation")
    assert "expiry" in refused[0]["reason"]


def test_vex_signers_are_validated(tmp_path: Path) -> None:
    doc = {"version": 1, "environments": {"prod": {}},
           "exceptions": {"vex_attestations": {}}}
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps(doc))
    r = run_imggate(["rules", "validate", str(path)])
    assert r.code == 2
    assert "name keys or identities to verify VEX attestations with" in r.output


def test_max_days_makes_a_vex_statement_expire(tmp_path: Path, keys: Any) -> None:
    # The statement was made 2026-11-20; with max_days 30 it holds until 2026-12-20, with
    # max_days 1 it lapsed on 2026-11-21 (today is later): its findings count again.
    signer, key = keys["security"]
    code, image = _check(tmp_path, _layout(tmp_path, signer),
                         _rules(tmp_path, key, require_expiry=True, max_days=3650))
    assert code == 0
    [use] = [u for u in image["exceptions"] if u["vulnerability"] == "CVE-2019-1549"]
    assert use["status"] == "used" and use["expires"] == "2036-11-17"
    code, image = _check(tmp_path, _layout(tmp_path, signer), _rules(tmp_path, key, max_days=1))
    assert code == 1
    [use] = [u for u in image["exceptions"] if u["vulnerability"] == "CVE-2019-1549"]
    assert use["status"] == "expired" and use["expires"] == "2026-11-21"


def test_a_vex_suppression_is_listed_in_every_output(tmp_path: Path, keys: Any) -> None:
    """Console, HTML, verdict JSON, JUnit and the GitLab report (valid against 15.2.1) each
    say which findings the signed VEX suppressed, its signer, author, timestamp and
    justification."""
    import xml.etree.ElementTree as ET

    import jsonschema

    signer, key = keys["security"]
    layout = _layout(tmp_path, signer)
    out = tmp_path / "reports"
    r = run_imggate(["check", f"oci:{layout}:app", "--rules", str(_rules(tmp_path, key)),
                     "--env", "prod", "--trivy-report", str(_bound_report(tmp_path, layout)),
                     "--output-dir", str(out)])
    assert r.code == 0, r.output
    author, stamp = "Platform Security <security@example.com>", "2026-11-20T10:00:00Z"
    justification = "vulnerable_code_not_in_execute_path"

    def said_in(text: str, where: str) -> None:
        for part in ("openvex attestation", "signed by", author, stamp, justification):
            assert part in text, f"{where}: {part!r} missing"

    # Console: grouped by the attestation that suppressed them.
    assert "SUPPRESSED 2 finding(s): 2 by openvex-attestation openvex attestation" \
        in " ".join(r.stdout.split()), r.stdout
    # HTML report and verdict JSON: every suppressed finding with why.
    html = (out / "imggate-report.html").read_text()
    assert "CVE-2019-1549" in html
    said_in(html.replace("&lt;", "<").replace("&gt;", ">"), "HTML")
    [image] = json.loads((out / "imggate-verdict.json").read_text())["images"]
    assert [s["id"] for s in image["suppressed"]] == ["CVE-2019-1549"] * 2
    said_in(image["suppressed"][0]["suppressed_by"], "verdict JSON")
    # JUnit: a passed testcase listing them, and the count as a property.
    suite = ET.parse(out / "imggate-junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["imggate.suppressed"] == "2"
    [case] = [c for c in suite.iter("testcase") if c.get("name") == "suppressed findings"]
    assert case.find("failure") is None and case.find("skipped") is None
    body = case.findtext("system-out") or ""
    assert body.count("CVE-2019-1549") == 2 and "CVE-2019-1551" not in body
    said_in(body, "JUnit")
    # GitLab: not vulnerabilities, but one info message each; the document stays valid.
    gitlab = json.loads((out / "gl-container-scanning-report.json").read_text())
    schema = json.loads((FIXTURES / "schema" / "container-scanning-report-format.json")
                        .read_text())
    jsonschema.validate(gitlab, schema)
    assert {v["identifiers"][0]["value"] for v in gitlab["vulnerabilities"]} == {
        "CVE-2019-1551"}
    messages = gitlab["scan"]["messages"]
    assert [m["level"] for m in messages] == ["info", "info"]
    for m in messages:
        assert "CVE-2019-1549" in m["value"], m
        said_in(m["value"], "GitLab")

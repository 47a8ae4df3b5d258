"""The webhook reads signed OpenVEX attestations beside the image as ``imggate check`` does.

Three images in a real Distribution registry, each with the same real Trivy report bound
to it (``tests/fixtures/trivy/alpine-310.json``: CVE-2019-1549 and CVE-2019-1551 in
libcrypto1.1 and libssl1.1, four Medium findings): one carries an OpenVEX attestation
saying CVE-2019-1549 does not affect it, signed by the key ``exceptions.vex_attestations``
names; one the same attestation signed by another key; one none. The rules allow two
Medium findings, so only a VEX that counts lets an image in. Attestations are written in
cosign's format by the test signer (cosign cannot run here); reviews go to ``imggate serve``
over TLS, and the same images through ``imggate check`` give the same decisions.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admission.serve_harness import ServeProcess, review, start_serve
from fixture_paths import FIXTURES
from imggate.models import Digest
from policy.test_vex_attestations import vex_doc
from registry_harness import Registry, run_imggate
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

OPENVEX = "https://openvex.dev/ns"
#: The OpenVEX statement the policy tests use: CVE-2019-1549 not affected.
VEX = vex_doc()
#: image -> who signed its VEX attestation (None: it has none).
IMAGES = {"vexed": "security", "forged": "mallory", "plain": None}


@dataclass(frozen=True)
class Pushed:
    registry: Registry
    digests: dict[str, Digest]
    work: Path
    rules: Path
    reports: Path

    def ref(self, name: str) -> str:
        return f"{self.registry.host}/vex/{name}:v1"


def _bound_report(repository: str, digest: Digest) -> bytes:
    doc = json.loads((FIXTURES / "trivy" / "alpine-310.json").read_bytes())
    doc["ArtifactName"] = f"{repository}@{digest}"
    doc["Metadata"]["RepoDigests"] = [f"{repository}@{digest}"]
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def pushed(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    work = tmp_path_factory.mktemp("serve-vex")
    signers = {"security": CosignFormatSigner(), "mallory": CosignFormatSigner()}
    key = work / "security.pub"
    key.write_bytes(signers["security"].public_pem)
    reports = work / "reports"
    reports.mkdir()
    digests = {}
    for name, signer in IMAGES.items():
        repository = f"{anon_registry.host}/vex/{name}"
        repo = InMemoryRepository(repository)
        digest = make_image(repo, tag="v1")
        if signer is not None:
            signers[signer].attest_image(repo, digest, OPENVEX, VEX)
        push_repository(repo, anon_registry.url, f"vex/{name}")
        (reports / f"{digest.tag_form}.trivy.json").write_bytes(_bound_report(repository,
                                                                               digest))
        digests[name] = digest
    rules = work / "rules.yaml"
    rules.write_text(textwrap.dedent(f"""\
        version: 1
        environments:
          prod:
            severity: {{max: {{Medium: 2}}}}
        exceptions:
          vex_attestations:
            keys: ["{key}"]
            require_tlog: false
        """))
    return Pushed(anon_registry, digests, work, rules, reports)


@pytest.fixture(scope="module")
def webhook(pushed: Pushed) -> Iterator[ServeProcess]:
    server = start_serve(pushed.work / "serve",
                         ["--rules", str(pushed.rules), "--env", "prod", "--reports-dir",
                          str(pushed.reports), "--deadline", "6"])
    yield server
    server.stop()


def _admit(webhook: ServeProcess, ref: str) -> dict[str, Any]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
           "spec": {"containers": [{"name": "app", "image": ref}]}}
    with webhook.client() as c:
        r = c.post("/validate", json=review(pod, namespace="shop"))
    assert r.status_code == 200, r.text
    response: dict[str, Any] = r.json()["response"]
    return response


def test_a_signed_vex_lets_the_image_in_through_the_webhook(
        pushed: Pushed, webhook: ServeProcess) -> None:
    response = _admit(webhook, pushed.ref("vexed"))
    assert response["allowed"] is True, response
    # Asked again: the cached verdict (made with the VEX) answers the same.
    assert _admit(webhook, pushed.ref("vexed"))["allowed"] is True


@pytest.mark.parametrize("name", ["forged", "plain"])
def test_a_wrongly_signed_or_missing_vex_suppresses_nothing(
        pushed: Pushed, webhook: ServeProcess, name: str) -> None:
    response = _admit(webhook, pushed.ref(name))
    assert response["allowed"] is False, response
    message = response["status"]["message"]
    assert f"{pushed.ref(name)}: severity: " in message, message


def test_check_and_the_webhook_agree(pushed: Pushed, webhook: ServeProcess,
                                     tmp_path: Path) -> None:
    for name in IMAGES:
        digest = pushed.digests[name]
        out = tmp_path / name
        r = run_imggate(["check", pushed.ref(name), "--rules", str(pushed.rules), "--env",
                         "prod", "--trivy-report",
                         str(pushed.reports / f"{digest.tag_form}.trivy.json"), "-o", str(out)])
        assert r.code in (0, 1), r.output
        allowed = _admit(webhook, pushed.ref(name))["allowed"]
        assert (r.code == 0) is allowed, (name, r.output)

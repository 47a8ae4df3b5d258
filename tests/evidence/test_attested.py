"""``attested_evidence`` over cosign-format ``.att`` tags (the test signer stands in for cosign)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from evidence.test_vuln import trivy_predicate
from imggate.evidence.attested import AttestedEvidence, attested_evidence
from imggate.evidence.vuln import VULN_PREDICATE
from imggate.models import Digest
from imggate.signatures import TrustConfig
from signatures.cosign_format_signer import CosignFormatSigner, in_toto_statement, make_image
from signatures.inmemory import InMemoryRepository

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _run(repo: InMemoryRepository, digest: Digest, signer: CosignFormatSigner
         ) -> AttestedEvidence:
    trust = TrustConfig(keys=(signer.trusted("cosign.pub"),), ignore_tlog=True)
    return asyncio.run(attested_evidence(repo, digest, trust, now=NOW))


def test_trivy_cosign_vuln_attestation_is_evidence() -> None:
    ci, repo = CosignFormatSigner(), InMemoryRepository()
    image = make_image(repo)
    ci.attest_image(repo, image, VULN_PREDICATE, trivy_predicate())
    got = _run(repo, image, ci)
    assert got.report is not None and len(got.report.findings) == 2
    assert got.report.source is not None and "signed by cosign.pub" in got.report.source


def test_subject_for_another_digest_is_refused() -> None:
    ci, repo = CosignFormatSigner(), InMemoryRepository()
    image, other = make_image(repo), make_image(repo)
    # A real attestation of another image, filed under this image's .att tag.
    body = in_toto_statement(other, VULN_PREDICATE, trivy_predicate())
    ci.attest_image(repo, image, VULN_PREDICATE, {}, statement=body)
    got = _run(repo, image, ci)
    assert got.report is None
    assert "does not include this image" in got.refused[0].reason


def test_signed_by_another_key_is_refused_and_an_expired_scan_is_still_dated() -> None:
    ci, stranger, repo = CosignFormatSigner(), CosignFormatSigner(), InMemoryRepository()
    image = make_image(repo)
    stranger.attest_image(repo, image, VULN_PREDICATE, trivy_predicate())
    got = _run(repo, image, ci)
    assert got.report is None and "does not verify" in got.refused[0].reason
    old = NOW - timedelta(days=400)
    ci.attest_image(repo, image, VULN_PREDICATE, trivy_predicate(old))
    got = _run(repo, image, ci)
    # Verified, but a year old: max_report_age judges it, from scanFinishedOn.
    assert got.report is not None and got.report.finished == old


def test_no_attestation_is_no_evidence() -> None:
    ci, repo = CosignFormatSigner(), InMemoryRepository()
    image = make_image(repo)
    got = _run(repo, image, ci)
    assert got.report is None and got.checks == ()

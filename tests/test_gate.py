"""gate.bind_reports: which scanner report goes with which image."""

from __future__ import annotations

from imggate.gate import bind_reports, identities_of
from imggate.models import Digest, ResolvedImage, ScanReport
from policy import policy_builders as build


def d(c: str) -> Digest:
    return Digest("sha256", c * 64)


def image(top: str, config: str) -> ResolvedImage:
    return build.image(build.ref(None, d(top)), digest=d(top), config_digest=d(config))


def report(*digests: Digest) -> ScanReport:
    return build.report(digests=digests)


def test_identities_include_the_config_digest_trivy_calls_image_id() -> None:
    assert identities_of(image("a", "c")) == {d("a"), d("c")}


def test_reports_go_to_the_image_they_name_by_manifest_or_config_digest() -> None:
    one, two = image("a", "c"), image("b", "e")
    by_manifest, by_config = report(d("a")), report(d("e"))
    assert bind_reports([by_manifest, by_config], [one, two]) == [(by_manifest,), (by_config,)]


def test_unnamed_and_foreign_reports_go_to_every_image_never_dropped() -> None:
    one, two = image("a", "c"), image("b", "e")
    unnamed, foreign = report(), report(d("f"))
    assert bind_reports([unnamed, foreign], [one, two]) == [(unnamed, foreign)] * 2


def test_unresolved_images_still_receive_unbound_reports() -> None:
    unnamed = report()
    assert bind_reports([unnamed], [None, image("a", "c")]) == [(unnamed,), (unnamed,)]

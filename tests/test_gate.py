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


#: Runs ``import_ahead`` for one image in a fresh interpreter; prints the modules held
#: before and after it (argv: the image, then the key file or "").
_AHEAD_PROBE = """\
import json, sys
from datetime import UTC, datetime
from pathlib import Path
from imggate.gate import CheckRequest, import_ahead
from imggate.policy.loader import load_policy
from imggate.registry.reference import parse_reference
ref, key = sys.argv[1], sys.argv[2]
policy = load_policy(None, "dev", keys=[Path(key)] if key else [])
request = CheckRequest(references=(ref,), refs=(parse_reference(ref),), policy=policy,
                       now=datetime.now(UTC))
before = set(sys.modules)
import_ahead(request)
print(json.dumps([sorted(before), sorted(sys.modules)]))
"""


def _ahead(ref: str, key: str) -> tuple[set[str], set[str]]:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _AHEAD_PROBE, ref, key], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    before, after = json.loads(out)
    return set(before), set(after)


def test_import_ahead_imports_what_a_gather_over_the_network_with_keys_uses() -> None:
    from pathlib import Path

    key = Path(__file__).resolve().parents[1] / "examples" / "cosign.pub"
    before, after = _ahead("registry.example.com/app:1.0", str(key))
    wanted = {"imggate.registry.client", "imggate.signatures.check",
              "imggate.signatures.keys", "imggate.policy.engine"}
    assert not wanted & before  # (else the test shows nothing)
    assert wanted <= after


def test_import_ahead_leaves_out_what_a_layout_without_signers_never_uses() -> None:
    _, after = _ahead("oci:examples/app", "")
    assert "imggate.policy.engine" in after
    assert not {m for m in after if m.split(".")[0] in ("httpx", "httpcore", "cryptography")}
    assert not {"imggate.registry.client", "imggate.signatures.check"} & after

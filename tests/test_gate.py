"""gate.bind_reports: which scanner report goes with which image; gather: each image's
config read while its signatures are looked up (against the real registry behind a proxy
that holds back chosen requests), the reports bound once every image is described."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imggate.gate import CheckRequest, bind_reports, gather, identities_of
from imggate.models import Digest, Evidence, ResolvedImage, ScanReport, SignatureOptions
from imggate.policy.loader import load_policy
from imggate.registry.deadline import Deadline
from imggate.registry.reference import parse_reference
from policy import policy_builders as build
from registry_harness import Registry
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository
from tcp_proxy import TcpProxy


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


# --- gather: the config read beside the lookups --------------------------------------------

@pytest.fixture(scope="module")
def signed_pair(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[list[tuple[str, Digest, Digest]], Path]:
    """Two key-signed images ``gate/pair-N:v1`` (N = 0, 1): each its repository, digest and
    config digest; the key file."""
    signer = CosignFormatSigner()
    key = tmp_path_factory.mktemp("gate-key") / "release.pub"
    key.write_bytes(signer.public_pem)
    images = []
    for n in range(2):
        name = f"gate/pair-{n}"
        repo = InMemoryRepository(f"{anon_registry.host}/{name}")
        digest = make_image(repo, tag="v1", content=f"gate pair {n}".encode())
        signer.sign_image(repo, digest)
        push_repository(repo, anon_registry.url, name)
        config = Digest.parse(json.loads(repo.manifests[digest])["config"]["digest"])
        images.append((name, digest, config))
    return images, key


def _gather(proxy: TcpProxy, names: list[str], key: Path, *, deadline: float = 10,
            concurrency: int = 16, reports: tuple[ScanReport, ...] = ()) -> list[Evidence]:
    """``gate.gather`` of ``names`` (tag ``v1``) read through ``proxy``, the key required."""

    async def go() -> list[Evidence]:
        async with proxy.running() as host:
            texts = tuple(f"{host}/{name}:v1" for name in names)
            req = CheckRequest(
                references=texts, refs=tuple(parse_reference(t) for t in texts),
                policy=load_policy(None, "dev", keys=[key]), now=datetime.now(UTC),
                reports=reports, signatures=SignatureOptions(ignore_tlog=True),
                concurrency=concurrency, deadline=Deadline.after(deadline))
            # (a bound of its own: a gather that deadlocks fails here, not at pytest's timeout)
            return await asyncio.wait_for(gather(req), 30)

    return asyncio.run(go())


@pytest.mark.registry
def test_the_signature_is_looked_up_while_the_config_is_read(
        anon_registry: Registry,
        signed_pair: tuple[list[tuple[str, Digest, Digest]], Path]) -> None:
    (name, digest, config), _ = signed_pair[0][0], signed_pair[1]
    proxy = TcpProxy(anon_registry.host, hold=f"/blobs/{config}$", hold_for=1.0)
    [found] = _gather(proxy, [name], signed_pair[1])
    assert not found.errors, found.errors
    assert found.image is not None and found.image.digest == digest
    assert found.image.config is not None and found.image.config.digest == config
    assert [c.verified for c in found.signatures] == [True], found.signatures
    # The signature's tag was asked for before the held config request was passed on (read
    # one after the other, the lookup waited for the config's answer).
    assert proxy.released, proxy.arrived
    assert proxy.first(rf"/manifests/{digest.tag_form}\.sig$") < proxy.released[0], \
        proxy.arrived


@pytest.mark.registry
def test_a_config_never_answered_leaves_the_image_unchecked_naming_it(
        anon_registry: Registry,
        signed_pair: tuple[list[tuple[str, Digest, Digest]], Path]) -> None:
    (name, _, config), key = signed_pair[0][0], signed_pair[1]
    proxy = TcpProxy(anon_registry.host, hold=f"/blobs/{config}$")
    [found] = _gather(proxy, [name], key, deadline=1.5)
    # The signature was found meanwhile: without its config the image is not described
    # (the age rule reads it), and what was looked up is not kept.
    assert found.image is None and not found.signatures, found
    [unchecked] = found.errors
    assert f"{name}@{config}" in unchecked.reason, unchecked
    assert "deadline" in unchecked.reason, unchecked


@pytest.mark.registry
def test_reports_naming_a_config_are_bound_once_every_image_is_described(
        anon_registry: Registry,
        signed_pair: tuple[list[tuple[str, Digest, Digest]], Path]) -> None:
    # One slot for two images, the second's config held: each image's round trips hold the
    # slot, never a wait on another image, and the reports are bound after both configs
    # are read (a report names an image by its config digest, as Trivy's ImageID does).
    images, key = signed_pair
    (first, _, config0), (second, _, config1) = images
    by_config = [build.report(digests=(c,)) for c in (config1, config0)]
    unnamed = build.report(digests=())
    proxy = TcpProxy(anon_registry.host, hold=f"/blobs/{config1}$", hold_for=0.5)
    found = _gather(proxy, [first, second], key, concurrency=1,
                    reports=(*by_config, unnamed))
    assert [e.errors for e in found] == [(), ()], found
    assert [e.reports for e in found] == [(by_config[1], unnamed), (by_config[0], unnamed)]

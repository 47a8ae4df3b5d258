"""The judge reads an image's config while it looks up its signatures, against the real
registry behind a proxy that holds back chosen requests.

The proxy (``tcp_proxy``) forwards bytes both ways untouched; it notes when each request
line reaches it and holds back the request for the config (the registry then answers it
that much later).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from admission.conftest import rules_text
from imggate.admission.cache import AdmissionCache, CacheTimes
from imggate.admission.judge import ImageOutcome, Judge, JudgeSettings, Progress
from imggate.admission.metrics import Metrics
from imggate.admission.policies import RulesStore
from imggate.models import Decision, Digest, Platform, SignatureOptions
from imggate.registry.client import RegistryClient
from imggate.registry.reference import parse_reference
from registry_harness import Registry
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository
from tcp_proxy import TcpProxy

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

@pytest.fixture(scope="module")
def signed(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Digest, Digest, Path]:
    """A key-signed image ``judge/overlap:v1``: its digest, its config's, the key file."""
    signer = CosignFormatSigner()
    key = tmp_path_factory.mktemp("judge-key") / "release.pub"
    key.write_bytes(signer.public_pem)
    repo = InMemoryRepository(f"{anon_registry.host}/judge/overlap")
    digest = make_image(repo, tag="v1")
    signer.sign_image(repo, digest)
    push_repository(repo, anon_registry.url, "judge/overlap")
    config = Digest.parse(json.loads(repo.manifests[digest])["config"]["digest"])
    return digest, config, key


def _judge(anon_registry: Registry, key: Path, proxy: TcpProxy, tmp_path: Path,
           deadline: float, platform: Platform | None = None) -> tuple[ImageOutcome, float]:
    """The decision about ``judge/overlap:v1`` read through ``proxy`` in env prod (its
    signature required), and how long it took."""

    async def go() -> tuple[ImageOutcome, float]:
        async with proxy.running() as host, RegistryClient() as client:
            rules = tmp_path / "rules.yaml"
            rules.write_text(rules_text(host, key))
            store = RulesStore(rules, "dev")
            assert store.load() and store.current is not None, store.last_error
            judge = Judge(client, AdmissionCache(CacheTimes()), Metrics(), (),
                          JudgeSettings(signatures=SignatureOptions(ignore_tlog=True),
                                        deadline=deadline, platform=platform))
            text = f"{host}/judge/overlap:v1"
            started = time.monotonic()
            outcome = await judge.judge(text, parse_reference(text), store.current, "prod",
                                        mutate=False, dry_run=False, progress=Progress())
            return outcome, time.monotonic() - started

    return asyncio.run(go())


def test_the_signature_is_looked_up_while_the_config_is_read(
        anon_registry: Registry, signed: tuple[Digest, Digest, Path], tmp_path: Path) -> None:
    digest, config, key = signed
    proxy = TcpProxy(anon_registry.host, hold=f"/blobs/{config}$", hold_for=1.0)
    outcome, _ = _judge(anon_registry, key, proxy, tmp_path, deadline=6)
    assert outcome.decision is Decision.ALLOW, outcome
    assert outcome.digest == str(digest)
    # The signature's tag was asked for before the held config request was passed on (read
    # one after the other, the lookup waited for the config's answer).
    assert proxy.released, proxy.arrived
    assert proxy.first(rf"/manifests/{digest.tag_form}\.sig$") < proxy.released[0], \
        proxy.arrived


def test_a_config_never_answered_fails_the_review_naming_it(
        anon_registry: Registry, signed: tuple[Digest, Digest, Path], tmp_path: Path) -> None:
    _, config, key = signed
    proxy = TcpProxy(anon_registry.host, hold=f"/blobs/{config}$")
    outcome, took = _judge(anon_registry, key, proxy, tmp_path, deadline=1.5)
    # The signature was found and verified meanwhile: the image is still not decided
    # without its config (the age rule reads it).
    assert outcome.decision is Decision.ERROR, outcome
    assert outcome.error is not None and "judge/overlap" in outcome.error, outcome
    # Named by the request that did not end: the config blob.
    assert f"judge/overlap@{config}" in outcome.error, outcome
    assert "deadline" in outcome.error, outcome
    assert took < 4, took


def test_a_config_naming_another_platform_fails_the_review_at_once(
        anon_registry: Registry, signed: tuple[Digest, Digest, Path], tmp_path: Path) -> None:
    # The registry answers the config at once (an amd64 image, arm64 asked for) and never
    # the signature's tag: the review fails on the config then, as when the config was
    # read before the lookups, not when the signature lookup runs out of time.
    _, _, key = signed
    proxy = TcpProxy(anon_registry.host, hold=r"\.sig$")
    outcome, took = _judge(anon_registry, key, proxy, tmp_path, deadline=4,
                           platform=Platform("linux", "arm64"))
    assert outcome.decision is Decision.ERROR, outcome
    assert outcome.error is not None and "not the requested linux/arm64" in outcome.error, \
        outcome
    assert took < 2, took

"""Siege: registries that drip or drop, against a real ``imggate serve`` over TLS
(issue 18, findings 1 and 6).

The hostile registries are :mod:`hostile_hosts` on loopback (one whose
accept queue is full, so connects hang as behind a firewall; one that answers
every request with a body that drips a byte at a time); the good one is a
real Distribution registry holding cosign-signed images, judged by rules that
require the signature in ``prod-*`` namespaces. Warn-mode namespaces (``dev-*``)
let a pod name images on any registry: that is the attacker's door.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from admission.conftest import rules_text
from admission.serve_harness import ServeProcess, pod, review, start_serve
from hostile_hosts import HostileProcess
from registry_harness import Registry
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository

#: Deadlines to the second under siege: measured with no other test running (under xdist).
pytestmark = pytest.mark.alone

#: The breaker's cool-down (imggate.registry.breaker's default).
COOL_DOWN = 15.0


@dataclass(frozen=True)
class Good:
    """Signed images on the real registry, and the rules that require their signature."""

    registry: Registry
    rules: Path

    def ref(self, name: str) -> str:
        return self.registry.ref(name, "v1")


@pytest.fixture(scope="module")
def good(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Good:
    signer = CosignFormatSigner()
    work = tmp_path_factory.mktemp("siege-registry")
    key = work / "release.pub"
    key.write_bytes(signer.public_pem)
    for name in ("siege/before", "siege/after", "siege/during"):
        repo = InMemoryRepository(f"{anon_registry.host}/{name}")
        signer.sign_image(repo, make_image(repo, tag="v1"))
        push_repository(repo, anon_registry.url, name)
    rules = work / "rules.json"
    rules.write_text(rules_text(anon_registry.host, key))
    return Good(anon_registry, rules)


def _serve(work: Path, good: Good, *extra: str) -> ServeProcess:
    return start_serve(work, ["--rules", str(good.rules), "--insecure-ignore-tlog", *extra])


async def _reviews(server: ServeProcess, bodies: list[dict[str, Any]],
                   timeout: float = 30) -> list[tuple[float, dict[str, Any]]]:
    """POST every body at once over warm connections; (seconds at the client, response)."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context(),
                                 timeout=timeout, limits=limits) as c:
        await asyncio.gather(*(c.get("/healthz") for _ in bodies))  # TLS done beforehand

        async def one(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            start = time.monotonic()
            r = await c.post("/validate", json=body)
            took = time.monotonic() - start
            assert r.status_code == 200, r.text[:300]
            return took, r.json()["response"]

        return await asyncio.gather(*(one(b) for b in bodies))


def _allowed(server: ServeProcess, image: str, uid: str) -> dict[str, Any]:
    with server.client(timeout=30) as c:
        r = c.post("/validate", json=review(pod([image], namespace="prod-a"),
                                            namespace="prod-a", uid=uid))
    assert r.status_code == 200
    response: dict[str, Any] = r.json()["response"]
    return response


def _attack(hosts: HostileProcess, pods: int, images: int, wave: int) -> list[dict[str, Any]]:
    bodies = []
    for p in range(pods):
        names = [f"{hosts.host('black_hole' if i % 2 else 'body')}/evil/w{wave}p{p}:i{i}"
                 for i in range(images)]
        bodies.append(review(pod(names, namespace="dev-attack", name=f"evil-{wave}-{p}"),
                             namespace="dev-attack"))
    return bodies


@pytest.mark.timeout(120)
def test_no_wedge_a_good_image_is_allowed_again_once_the_bad_registry_is_gone(
        good: Good, tmp_path: Path) -> None:
    server = _serve(tmp_path, good, "--deadline", "2", "--timeout", "1")
    hosts = HostileProcess.start(drip_gap=0.2)
    try:
        assert _allowed(server, good.ref("siege/before"), "before")["allowed"] is True
        # Waves of pods with 40 images each on registries that never answer: every
        # registry request is cancelled by the review deadline, at every stage.
        for wave in range(3):
            answers = asyncio.run(_reviews(server, _attack(hosts, 10, 40, wave)))
            assert all(not r["allowed"] for _, r in answers)
            assert max(t for t, _ in answers) < 2 + 1
        # While the bad registries are still there, a good image is judged normally.
        assert _allowed(server, good.ref("siege/during"), "during")["allowed"] is True
    finally:
        hosts.stop()
    gone = time.monotonic()
    while True:
        answer = _allowed(server, good.ref("siege/after"), f"after-{time.monotonic()}")
        if answer["allowed"]:
            break
        assert time.monotonic() - gone < min(30, COOL_DOWN), answer["status"]["message"]
        time.sleep(1)
    with server.client() as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
    log = server.log_text()
    # The breaker answered for the hosts that kept timing out, without waiting.
    assert re.search(r"registry 127\.0\.0\.1:\d+ unavailable: \d+ requests in a row failed "
                     r"or timed out; not contacted again for \d+ s", log)
    server.stop()


@pytest.mark.timeout(120)
def test_every_answer_leaves_before_the_deadline_plus_one_second(
        good: Good, tmp_path: Path) -> None:
    deadline = 8.0
    server = _serve(tmp_path, good)  # --deadline 8, --timeout 5: the defaults
    hosts = HostileProcess.start(drip_gap=0.5)
    try:
        bodies = []
        for p in range(40):
            names = [f"{hosts.host('body')}/drip/p{p}:i{i}" for i in range(16)]
            bodies.append(review(pod(names, namespace="dev-drip", name=f"drip-{p}"),
                                 namespace="dev-drip"))
        answers = asyncio.run(_reviews(server, bodies))
    finally:
        hosts.stop()
        server.stop()
    slowest = max(t for t, _ in answers)
    assert all(not r["allowed"] for _, r in answers)
    assert slowest < deadline + 1, f"slowest answer after {slowest:.2f}s"
    print(json.dumps({"slowest_s": round(slowest, 2)}))

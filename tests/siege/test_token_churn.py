"""Siege: a registry that issues a fresh bearer token for every request (issue 18, finding 2).

A real ``imggate serve`` over TLS reviews pods whose images live on the real
Distribution registry with token auth (``harness_token.TokenServer``);
anonymous tokens carry no access, so every request is refused with its
token and the next one fetches a new token. Before the fix each token stayed
in the redactor for good, and registering one rebuilt a pattern of all of
them: 214 tokens took the webhook from 66 to 668 MB, and 500 cost 428 s of
CPU on the event loop. Here hundreds of 12 KB tokens are issued; memory stays
under the bound, answers stay as fast at the end as at the start, and no
token reaches the log.
"""

from __future__ import annotations

import base64
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from admission.serve_harness import ServeProcess, pod, review, start_serve
from registry_harness import Registry, start_registry
from siege.memory import RSS_LIMIT_MB, RssSampler

#: Memory and latency under churn: measured with no other test running (under xdist).
pytestmark = [pytest.mark.registry, pytest.mark.alone]

IMAGES_PER_POD = 16
REVIEWS = 48  # 768 images: a fresh token each (before the fix 500 took 428 s of CPU)
TIME_LIMIT = 60.0
PADDING = 9 * 1024  # bytes of randomness: 12 KB of token text


@pytest.fixture(scope="module")
def churning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of its own: its token server's issue() is wrapped below."""
    registry = start_registry(tmp_path_factory.mktemp("churn-registry"), auth="token")
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = start_serve(tmp_path_factory.mktemp("churn-serve"), ["--env", "dev",
                                                                  "--deadline", "6"])
    yield server
    server.stop()


def test_token_churn_keeps_memory_and_latency_flat_and_leaks_nothing(
        churning: Registry, webhook: ServeProcess) -> None:
    server = churning.token_server
    assert server is not None
    issued: list[str] = []
    original = server.issue

    def recording(subject: str, access: list[dict[str, object]]) -> str:
        # Large, as a hostile token server makes them (12 KB: still sendable in a header);
        # the registry refuses them like any token without access.
        token = f"{original(subject, access)}.{secrets.token_urlsafe(PADDING)}"
        issued.append(token)
        return token

    server.issue = recording  # type: ignore[method-assign]
    local = threading.local()
    clients: list[httpx.Client] = []

    def one(n: int) -> tuple[float, bool]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=webhook.url, timeout=30,
                                                 verify=webhook.ssl_context())
            clients.append(client)
        images = [churning.ref(f"churn/r{(n * IMAGES_PER_POD + i) % 600}", "v1")
                  for i in range(IMAGES_PER_POD)]
        started = time.monotonic()
        r = client.post("/validate", json=review(pod(images, name=f"p{n}"),
                                                 namespace="dev-churn"))
        took = time.monotonic() - started
        assert r.status_code == 200
        return took, r.json()["response"]["allowed"]

    started = time.monotonic()
    try:
        with RssSampler(webhook.process.pid) as rss, ThreadPoolExecutor(4) as pool:
            results = list(pool.map(one, range(REVIEWS)))
    finally:
        server.issue = original  # type: ignore[method-assign]
        for c in clients:
            c.close()
    elapsed = time.monotonic() - started
    assert elapsed < TIME_LIMIT, elapsed
    # Fail closed: a registry that refuses every token never admits anything.
    assert not any(allowed for _, allowed in results)
    assert len(issued) >= REVIEWS * IMAGES_PER_POD // 2, len(issued)
    assert rss.peak < RSS_LIMIT_MB, (rss.start, rss.peak)
    # The last reviews are answered about as fast as the first ones (each token costs
    # O(its length) to register, whatever came before).
    tenth = max(REVIEWS // 10, 1)
    first = statistics.median(t for t, _ in results[:tenth])
    last = statistics.median(t for t, _ in results[-tenth:])
    assert last < 3 * first + 1.0, (first, last)
    log = webhook.log_text()
    for token in issued:
        assert token not in log
        assert base64.b64encode(token.encode()).decode()[:40] not in log
    assert "churn/r" in log  # the reviews themselves were logged
    with webhook.client(timeout=5) as c:  # and it still answers its probes at once
        probe = time.monotonic()
        assert c.get("/healthz").status_code == 200
        assert time.monotonic() - probe < 1.0

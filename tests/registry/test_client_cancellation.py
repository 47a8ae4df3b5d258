"""Cancelled registry requests give back their connection slot, at every stage.

Hundreds of requests are cancelled at random moments while they resolve a
name, connect to a host that drops SYNs, wait for a TLS handshake or headers
that never come, or read a body that drips; afterwards the same client must
still serve a real registry at once. Before the guarded pool, httpcore kept
connections assigned to cancelled requests ("CONNECTING" for ever) and every
later request to any registry waited until its deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import pytest

from hostile_hosts import HostileHosts
from imggate.errors import RegistryError
from imggate.registry.breaker import BreakerSettings
from imggate.registry.client import Asked, RegistryClient
from imggate.registry.limits import Progress, RequestLimits, review_share
from imggate.registry.options import RegistryOptions
from registry_harness import Registry

WHAT = Asked("x")


@pytest.fixture(scope="module")
def hosts() -> Iterator[HostileHosts]:
    h = HostileHosts(drip_gap=0.2).start()
    yield h
    h.stop()


async def _cancel_storm(client: RegistryClient, registry: str, n: int,
                        delays: tuple[float, float]) -> None:
    async def one() -> None:
        await client.fetch("GET", registry, "/v2/", headers={}, what=WHAT, limit=1 << 20)

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    rng = random.Random(n)
    await asyncio.gather(*(_cancel_later(t, rng.uniform(*delays)) for t in tasks))
    for t in tasks:
        with pytest.raises((asyncio.CancelledError, RegistryError)):
            await t


async def _cancel_later(task: asyncio.Task[None], delay: float) -> None:
    await asyncio.sleep(delay)
    task.cancel()


async def _good_requests(client: RegistryClient, registry: Registry, n: int) -> float:
    start = time.monotonic()
    answers = await asyncio.wait_for(asyncio.gather(*(
        client.fetch("GET", registry.host, "/v2/", headers={}, what=WHAT, limit=1 << 20)
        for _ in range(n))), 10)
    assert {a.status for a in answers} == {200}
    return time.monotonic() - start


STAGES = {
    # stage: (host, the window in which each request is cancelled)
    "dns": ("localhost:{black_hole}", (0.0, 0.01)),
    "connect": ("127.0.0.1:{black_hole}", (0.0, 0.3)),
    "tls": ("127.0.0.1:{silent}", (0.0, 0.3)),
    "headers": ("127.0.0.1:{headers}", (0.0, 0.5)),
    "body": ("127.0.0.1:{body}", (0.0, 0.5)),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_cancelled_requests_give_back_their_slot(stage: str, hosts: HostileHosts,
                                                  anon_registry: Registry) -> None:
    pattern, window = STAGES[stage]
    hostile = pattern.format(**hosts.ports)
    https = stage == "tls"

    async def main() -> None:
        opts = RegistryOptions(timeout=30, retries=0, max_connections=16,
                               insecure_registries=frozenset() if https else
                               frozenset({hostile}))
        async with RegistryClient(opts) as client:
            if not https:
                client._schemes[hostile] = "http"  # no TLS probe: straight to the stage
            for _round in range(3):
                await _cancel_storm(client, hostile, 100, window)
            # The same client still serves a healthy registry at once.
            took = await _good_requests(client, anon_registry, 40)
            assert took < 5, f"40 requests to a healthy registry took {took:.1f}s"
            assert client.guard is not None and client.guard.pool is not None
            assert client.guard.slots.in_use() == 0
            assert client.guard.slots.hosts() == 0
            stuck = [c for c in client.guard.connections() if c == "CONNECTING"]
            assert not stuck, f"connections nobody runs on: {stuck}"

    asyncio.run(main())


def test_a_host_that_keeps_timing_out_is_refused_at_once_during_its_cool_down(
        hosts: HostileHosts, anon_registry: Registry) -> None:
    hole = hosts.host("black_hole")

    async def main() -> None:
        opts = RegistryOptions(timeout=0.3, retries=0,
                               insecure_registries=frozenset({hole}),
                               breaker=BreakerSettings(threshold=3, cool_down=1.0))
        async with RegistryClient(opts) as client:
            client._schemes[hole] = "http"
            for _ in range(3):
                with pytest.raises(RegistryError) as slow:
                    await client.fetch("GET", hole, "/v2/", headers={}, what=WHAT, limit=1024)
                assert "unavailable" not in slow.value.message
            start = time.monotonic()
            with pytest.raises(RegistryError) as fast:
                await client.fetch("GET", hole, "/v2/", headers={}, what=WHAT, limit=1024)
            assert time.monotonic() - start < 0.1
            assert fast.value.message.endswith(f"registry {hole} unavailable: 3 requests in "
                                               "a row failed or timed out; not contacted again for 1 s")
            # Other hosts are not affected.
            await _good_requests(client, anon_registry, 4)
            # After the cool-down one request probes (and, failing, opens it again).
            await asyncio.sleep(1.05)
            with pytest.raises(RegistryError) as probe:
                await client.fetch("GET", hole, "/v2/", headers={}, what=WHAT, limit=1024)
            assert "unavailable" not in probe.value.message
            with pytest.raises(RegistryError) as again:
                await client.fetch("GET", hole, "/v2/", headers={}, what=WHAT, limit=1024)
            assert "unavailable" in again.value.message

    asyncio.run(main())


def test_one_host_holds_only_its_share_and_a_review_only_its_own(
        hosts: HostileHosts, anon_registry: Registry) -> None:
    hole = hosts.host("black_hole")
    headers = hosts.host("headers")

    async def main() -> None:
        opts = RegistryOptions(timeout=30, retries=0,
                               insecure_registries=frozenset({hole, headers}),
                               limits=RequestLimits(total=8, per_host=3))
        async with RegistryClient(opts) as client:
            assert client.guard is not None
            client._schemes[hole] = client._schemes[headers] = "http"
            stuck = [asyncio.create_task(client.fetch("GET", hole, "/v2/", headers={},
                                                      what=WHAT, limit=1024))
                     for _ in range(50)]
            await asyncio.sleep(0.3)
            # 3 in flight to the black hole, 47 waiting for its share: a healthy
            # registry still gets the rest of the slots.
            await _good_requests(client, anon_registry, 10)
            before = hosts.connections
            with review_share(2):
                dripping = [asyncio.create_task(client.fetch(
                    "GET", headers, "/v2/", headers={}, what=WHAT, limit=1024))
                    for _ in range(3)]
            await asyncio.sleep(0.5)
            assert hosts.connections - before == 2  # the review's share, not the host's 3
            for t in (*stuck, *dripping):
                t.cancel()
            await asyncio.gather(*stuck, *dripping, return_exceptions=True)
            assert client.guard.slots.in_use() == 0

    asyncio.run(main())


def test_the_watchdog_sees_requests_that_never_get_a_connection() -> None:
    progress = Progress()
    waiting = progress.begin()
    time.sleep(0.2)
    assert progress.stalled_for() >= 0.2
    progress.gave_up(waiting)  # cancelled while waiting: still no progress since
    assert progress.stalled_for() >= 0.2
    moving = progress.begin()
    progress.through(moving)
    assert progress.stalled_for() == 0.0

"""The progress watchdog behind /readyz and /healthz: a replica whose registry requests stop
getting through says so (readiness first, then liveness, so the kubelet restarts it)."""

from __future__ import annotations

import asyncio
import json
import time

from imggate.admission.server import AdmissionApp, ServeOptions
from imggate.registry.client import RegistryClient


def test_readyz_then_healthz_fail_when_registry_requests_stop_getting_through() -> None:
    async def main() -> None:
        app = AdmissionApp(ServeOptions(env="dev", stall_after=0.2))
        app.reload_rules()
        async with RegistryClient() as client:
            app.client = client
            assert (await app.readyz(None)).status_code == 200  # type: ignore[arg-type]
            assert client.guard is not None
            progress = client.guard.progress
            waiting = progress.begin()  # a request that never gets a connection
            await asyncio.sleep(0.3)
            ready = await app.readyz(None)  # type: ignore[arg-type]
            assert ready.status_code == 503
            assert json.loads(bytes(ready.body))["registry"].startswith(
                "stalled: no request got a connection for")
            assert (await app.healthz(None)).status_code == 200  # type: ignore[arg-type]
            await asyncio.sleep(0.2)
            health = await app.healthz(None)  # type: ignore[arg-type]
            assert health.status_code == 503
            assert "registry requests stalled" in json.loads(bytes(health.body))["status"]
            # One request getting through is progress: both are fine again.
            progress.through(waiting)
            assert (await app.readyz(None)).status_code == 200  # type: ignore[arg-type]
            assert (await app.healthz(None)).status_code == 200  # type: ignore[arg-type]

    start = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - start < 10

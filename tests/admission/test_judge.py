"""The judge reads an image's config while it looks up its signatures, against the real
registry behind a proxy that holds back chosen requests.

The proxy forwards bytes both ways untouched; it notes when each request line reaches
it and holds the forwarding of a request whose path is held (the registry then answers
it that much later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from admission.conftest import rules_text
from imggate.admission.cache import AdmissionCache, CacheTimes
from imggate.admission.judge import ImageOutcome, Judge, JudgeSettings, Progress
from imggate.admission.metrics import Metrics
from imggate.admission.policies import RulesStore
from imggate.models import Decision, Digest, SignatureOptions
from imggate.registry.client import RegistryClient
from imggate.registry.reference import parse_reference
from registry_harness import Registry
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

_REQUEST_LINE = re.compile(rb"(GET|HEAD) (\S+) HTTP/1\.1\r\n")


class HoldingProxy:
    """Loopback TCP proxy to ``target``: notes each request's arrival (seconds since the
    proxy started, path) and forwards a request whose path matches ``hold`` only after
    ``seconds`` (``None``: never)."""

    def __init__(self, target: str, hold: str, seconds: float | None) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._hold = re.compile(hold)
        self._seconds = seconds
        self._t0 = time.monotonic()
        #: (arrival, path) of every request, in arrival order.
        self.arrived: list[tuple[float, str]] = []
        #: When held requests were passed on.
        self.released: list[float] = []

    def first(self, pattern: str) -> float:
        """When the first request whose path matches ``pattern`` arrived."""
        return next(t for t, path in self.arrived if re.search(pattern, path))

    async def _upstream(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                found = _REQUEST_LINE.search(data)
                if found is not None:
                    path = found.group(2).decode()
                    self.arrived.append((time.monotonic() - self._t0, path))
                    if self._hold.search(path):
                        if self._seconds is None:
                            await asyncio.Event().wait()  # held until the test ends
                        else:
                            await asyncio.sleep(self._seconds)
                        self.released.append(time.monotonic() - self._t0)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _downstream(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        # (cancelled when the test's loop closes: nothing to report)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(self._upstream(reader, up_writer),
                                 self._downstream(up_reader, writer))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve while in the block; yields ``127.0.0.1:PORT``."""
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.close()


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


def _judge(anon_registry: Registry, key: Path, proxy: HoldingProxy, tmp_path: Path,
           deadline: float) -> tuple[ImageOutcome, float]:
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
                                        deadline=deadline))
            text = f"{host}/judge/overlap:v1"
            started = time.monotonic()
            outcome = await judge.judge(text, parse_reference(text), store.current, "prod",
                                        mutate=False, dry_run=False, progress=Progress())
            return outcome, time.monotonic() - started

    return asyncio.run(go())


def test_the_signature_is_looked_up_while_the_config_is_read(
        anon_registry: Registry, signed: tuple[Digest, Digest, Path], tmp_path: Path) -> None:
    digest, config, key = signed
    proxy = HoldingProxy(anon_registry.host, f"/blobs/{config}$", 1.0)
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
    proxy = HoldingProxy(anon_registry.host, f"/blobs/{config}$", None)
    outcome, took = _judge(anon_registry, key, proxy, tmp_path, deadline=1.5)
    # The signature was found and verified meanwhile: the image is still not decided
    # without its config (the age rule reads it).
    assert outcome.decision is Decision.ERROR, outcome
    assert outcome.error is not None and "judge/overlap" in outcome.error, outcome
    # Named by the request that did not end: the config blob.
    assert f"judge/overlap@{config}" in outcome.error, outcome
    assert "deadline" in outcome.error, outcome
    assert took < 4, took

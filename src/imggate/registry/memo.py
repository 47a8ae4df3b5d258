"""A :class:`Repository` that asks each question once: for one image's evidence.

Checking an image's signatures and reading its signed vuln attestations both
look for the same things (the ``sha256-<hex>.sig``/``.att`` tags, the OCI
referrers and their tag fallback, the manifests they list): through one
:class:`AskedOnce` around the repository, the second look is answered from
the first. On its own it lives as long as one image's evidence gathering (a
few seconds), so a tag pushed in between is seen by neither or by both;
errors are not kept, so a failure is asked again. Blobs are not kept:
payloads are already fetched once per discovery, and attestation payloads
can be large.

``imggate audit`` checks every image once per environment; its environments
share one :class:`SharedAnswers`, so an image's signatures are looked up and
their payloads fetched once for the whole audit (small blobs are kept there,
within a budget: they were verified against their digest when fetched), and
every environment judges the same signatures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from imggate.models import Digest
from imggate.registry.interface import Descriptor, Manifest, Repository

T = TypeVar("T")


_Key = tuple[str, str, str | None]
#: The largest blob :class:`SharedAnswers` keeps (signature payloads are a few hundred bytes).
SHARED_BLOB_LIMIT = 256 * 1024
#: What :class:`SharedAnswers` keeps of blobs in all.
SHARED_BLOBS_BUDGET = 64 * 1024 * 1024


class SharedAnswers:
    """Answers kept for a whole run, by repository, for the :class:`AskedOnce` views made
    with it: the same lookups from several passes (an audit's environments) are asked once."""

    def __init__(self) -> None:
        self._answers: dict[str, dict[_Key, object]] = {}
        self._blobs: dict[str, dict[str, bytes]] = {}
        self._blob_bytes = 0

    def answers(self, repository: str) -> dict[_Key, object]:
        """The kept answers of ``repository`` (a dict the views fill)."""
        return self._answers.setdefault(repository, {})

    def blob(self, repository: str, digest: Digest, max_size: int) -> bytes | None:
        """A kept blob of ``repository`` no larger than ``max_size``, or ``None``."""
        found = self._blobs.get(repository, {}).get(str(digest))
        return found if found is not None and len(found) <= max_size else None

    def keep_blob(self, repository: str, digest: Digest, data: bytes) -> None:
        """Keep ``data`` (verified against ``digest``) if it is small and the budget allows."""
        if len(data) > SHARED_BLOB_LIMIT or self._blob_bytes + len(data) > SHARED_BLOBS_BUDGET:
            return
        kept = self._blobs.setdefault(repository, {})
        if str(digest) not in kept:
            kept[str(digest)] = data
            self._blob_bytes += len(data)


class AskedOnce(Repository):
    """``inner``, with the answers of :meth:`referrers`, :meth:`try_resolve_tag`,
    :meth:`resolve` and :meth:`manifest` kept (the bytes were verified when first fetched).

    With ``shared``, the answers (and small blobs) are kept there, for the run."""

    def __init__(self, inner: Repository, shared: SharedAnswers | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self._shared = shared
        self._answers: dict[_Key, object] = shared.answers(inner.name) if shared else {}
        self._asking: dict[_Key, asyncio.Future[Any]] = {}

    async def _once(self, key: tuple[str, str, str | None],
                    ask: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if key in self._answers:
            return cast(T, self._answers[key])
        # Asked at once by several lookups of one image (signatures, vuln attestations and
        # VEX are gathered together): the later ones wait for the first's answer.
        running = self._asking.get(key)
        if running is None:
            running = asyncio.ensure_future(ask())
            self._asking[key] = running
            running.add_done_callback(lambda done: self._settle(key, done))
        # Shielded: one asker cancelled (its review's deadline) does not take the answer
        # from the others; the question itself ends by the registry deadline it runs under.
        return cast(T, await asyncio.shield(running))

    def _settle(self, key: tuple[str, str, str | None], done: asyncio.Future[Any]) -> None:
        if self._asking.get(key) is done:
            del self._asking[key]
        if not done.cancelled() and done.exception() is None:
            self._answers[key] = done.result()  # an error is not kept: asked again

    async def resolve(self, reference: str | Digest) -> Manifest:
        """As the inner repository; a digest's manifest is shared with :meth:`manifest`."""
        if isinstance(reference, Digest):
            return await self.manifest(reference)
        return await self._once(("resolve", reference, None),
                                lambda: self.inner.resolve(reference))

    async def manifest(self, digest: Digest) -> Manifest:
        """As the inner repository, fetched once."""
        return await self._once(("manifest", str(digest), None),
                                lambda: self.inner.manifest(digest))

    async def blob(self, digest: Digest, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        """As the inner repository (kept only in :class:`SharedAnswers`)."""
        if self._shared is None:
            return await self.inner.blob(digest, max_size=max_size)
        found = self._shared.blob(self.name, digest, max_size)
        if found is not None:
            return found
        data = await self.inner.blob(digest, max_size=max_size)
        self._shared.keep_blob(self.name, digest, data)
        return data

    async def tags(self) -> tuple[str, ...]:
        """As the inner repository (never kept)."""
        return await self.inner.tags()

    async def referrers(self, digest: Digest,
                        artifact_type: str | None = None) -> tuple[Descriptor, ...]:
        """As the inner repository, asked once per digest and artifact type."""
        return await self._once(("referrers", str(digest), artifact_type),
                                lambda: self.inner.referrers(digest, artifact_type))

    async def try_resolve_tag(self, tag: str) -> Manifest | None:
        """As the inner repository, asked once per tag (a missing tag included)."""
        return await self._once(("tag", tag, None), lambda: self.inner.try_resolve_tag(tag))

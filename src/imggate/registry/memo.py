"""A :class:`Repository` that asks each question once: for one image's evidence.

Checking an image's signatures and reading its signed vuln attestations both
look for the same things (the ``sha256-<hex>.sig``/``.att`` tags, the OCI
referrers and their tag fallback, the manifests they list): through one
:class:`AskedOnce` around the repository, the second look is answered from
the first. It lives as long as one image's evidence gathering (a few
seconds), so a tag pushed in between is seen by neither or by both; errors
are not kept, so a failure is asked again. Blobs are not kept: payloads are
already fetched once per discovery, and attestation payloads can be large.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from imggate.models import Digest
from imggate.registry.interface import Descriptor, Manifest, Repository

T = TypeVar("T")


class AskedOnce(Repository):
    """``inner``, with the answers of :meth:`referrers`, :meth:`try_resolve_tag`,
    :meth:`resolve` and :meth:`manifest` kept (the bytes were verified when first fetched)."""

    def __init__(self, inner: Repository) -> None:
        self.inner = inner
        self.name = inner.name
        self._answers: dict[tuple[str, str, str | None], object] = {}

    async def _once(self, key: tuple[str, str, str | None],
                    ask: Callable[[], Awaitable[T]]) -> T:
        if key not in self._answers:
            self._answers[key] = await ask()
        return cast(T, self._answers[key])

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
        """As the inner repository (never kept)."""
        return await self.inner.blob(digest, max_size=max_size)

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

"""One repository on a registry: verified manifests and blobs, tags, referrers.

Every request goes through :meth:`RegistryClient.fetch` (auth, redirects,
retries, deadline, body caps); every manifest and blob is hashed against the
digest it was asked for, or the registry announced, before it is parsed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import httpx

from imggate._aio import settle
from imggate.errors import DigestMismatch, RegistryError
from imggate.models import Digest
from imggate.registry.client import MAX_TAG_PAGES, Asked, _like
from imggate.registry.interface import (
    ACCEPT,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    Manifest,
    Repository,
)

if TYPE_CHECKING:
    from imggate.registry.client import RegistryClient


class RegistryRepository(Repository):
    """One repository on a registry."""

    def __init__(self, client: RegistryClient, registry: str, repository: str) -> None:
        self.client = client
        self.registry = registry
        self.repository = repository
        self.name = f"{registry}/{repository}"
        self._base = f"/v2/{repository}"

    def _what(self, reference: str | None) -> Asked:
        return Asked(self.registry, self.repository, reference)

    async def _get_manifest(self, reference: str, expect: Digest | None,
                            missing_ok: bool = False) -> Manifest | None:
        what = self._what(reference)
        r = await self.client.fetch("GET", self.registry, f"{self._base}/manifests/{reference}",
                                    headers={"Accept": ACCEPT}, what=what,
                                    limit=MAX_MANIFEST_BYTES,
                                    bodiless=frozenset({404}) if missing_ok else frozenset())
        if r.status == 404:
            return None
        raw = r.body
        announced = r.headers.get("Docker-Content-Digest")
        content_type = r.headers.get("Content-Type", "").split(";")[0].strip() or None
        digest = expect
        if digest is None:
            if announced:
                try:
                    digest = Digest.parse(announced.strip())
                except ValueError:
                    raise _like(what, RegistryError,
                                "Docker-Content-Digest header is not a digest") from None
            else:
                digest = Digest.of(raw)
        elif announced and announced.strip() != str(expect):
            raise _like(what, DigestMismatch,
                        f"registry announced {announced.strip()[:80]} for a request by digest")
        if not digest.matches(raw):
            raise _like(what, DigestMismatch,
                        f"manifest bytes hash to {Digest.of(raw, digest.algorithm)}, not "
                        f"{digest}: refusing it")
        try:
            return Manifest.parse(raw, digest, content_type, f"{self.name}@{digest}")
        except ValueError as e:
            raise _like(what, RegistryError, f"invalid manifest: {e}") from None

    async def resolve(self, reference: str | Digest) -> Manifest:
        """Resolve a tag (once) or digest to a verified manifest."""
        if isinstance(reference, Digest):
            return await self.manifest(reference)
        m = await self._get_manifest(reference, None)
        assert m is not None
        return m

    async def try_resolve_tag(self, tag: str) -> Manifest | None:
        """Like :meth:`resolve` for a tag; ``None`` when it does not exist."""
        return await self._get_manifest(tag, None, missing_ok=True)

    async def manifest(self, digest: Digest) -> Manifest:
        """A verified manifest by digest."""
        m = await self._get_manifest(str(digest), digest)
        assert m is not None
        return m

    async def blob(self, digest: Digest, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        """A verified blob by digest."""
        what = self._what(str(digest))
        r = await self.client.fetch("GET", self.registry, f"{self._base}/blobs/{digest}",
                                    headers={}, what=what, limit=max_size)
        data = r.body
        if not digest.matches(data):
            raise _like(what, DigestMismatch,
                        f"blob bytes hash to {Digest.of(data, digest.algorithm)}: refusing them")
        return data

    async def tags(self) -> tuple[str, ...]:
        """Every tag, following ``Link`` pagination."""
        out: list[str] = []
        async for page in self.tag_pages():
            out.extend(page)
        return tuple(out)

    async def tag_pages(
        self, page_size: int | None = None
    ) -> AsyncGenerator[tuple[str, ...], None]:
        """Every tag, a page at a time, following ``Link`` pagination.

        A page that cannot be read or parsed raises, and so does a list longer than
        :data:`MAX_TAG_PAGES` pages: what came before is never taken for all the tags.
        """
        import json

        what = self._what(None)
        url: str | None = f"{self._base}/tags/list" + (
            f"?n={int(page_size)}" if page_size is not None else "")
        for _ in range(MAX_TAG_PAGES):
            assert url is not None
            r = await self.client.fetch("GET", self.registry, url, headers={}, what=what,
                                        limit=MAX_MANIFEST_BYTES)
            body, link, current = r.body, r.headers.get("Link"), r.url
            try:
                doc = json.loads(body)
                tags = doc.get("tags") or []
                if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                    raise ValueError
            except (ValueError, AttributeError):
                raise _like(what, RegistryError, "tags/list response is malformed") from None
            yield tuple(tags)
            url = _next_link(link, current)
            if url is None:
                return
        raise _like(what, RegistryError,
                    f"the tag list goes on past {MAX_TAG_PAGES} pages: not all listed")

    async def referrers(
        self, digest: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...]:
        """The referrers API, falling back to the ``sha256-<hex>`` tag schema.

        On a registry whose API was found missing before (by this client), the fallback
        tag is asked for beside the API, not after its answer: the same two requests, a
        round trip fewer. An API that answers is still the one used."""
        what = self._what(str(digest))
        url = f"{self._base}/referrers/{digest}"
        if artifact_type:
            url += "?" + str(httpx.QueryParams({"artifactType": artifact_type}))
        index: Manifest | None = None
        tag: asyncio.Future[Manifest | None] | None = None
        if self.client.lacks_referrers_api(self.registry):
            tag = asyncio.ensure_future(self.try_resolve_tag(digest.tag_form))
        try:
            r = await self.client.fetch("GET", self.registry, url,
                                        headers={"Accept": OCI_INDEX}, what=what,
                                        limit=MAX_MANIFEST_BYTES,
                                        bodiless=frozenset({404, 400, 405}))
            self.client.note_referrers_api(self.registry, present=r.status == 200)
            if r.status == 200:
                try:
                    # A referrers response is generated, so it has no digest to check;
                    # every descriptor in it is verified when fetched by digest.
                    index = Manifest.parse(r.body, Digest.of(r.body), OCI_INDEX,
                                           f"{self.name} referrers")
                except ValueError as e:
                    raise _like(what, RegistryError,
                                f"invalid referrers response: {e}") from None
            else:
                index = await (tag if tag is not None
                               else self.try_resolve_tag(digest.tag_form))
                if index is None or not index.is_index:
                    return ()
        finally:
            if tag is not None:
                settle(tag)
        try:
            found = index.manifests
        except ValueError as e:
            raise _like(what, RegistryError, f"invalid referrers index: {e}") from None
        if artifact_type:
            found = tuple(d for d in found if d.artifact_type == artifact_type)
        return found

    async def push_blob(self, data: bytes) -> Digest:
        """Store ``data`` as a blob (a monolithic upload) unless the registry has it already."""
        digest = Digest.of(data)
        what = self._what(str(digest))
        have = await self.client.fetch("HEAD", self.registry, f"{self._base}/blobs/{digest}",
                                       headers={}, what=what, limit=0, ok=frozenset(),
                                       bodiless=frozenset({200, 404}))
        if have.status == 200:
            return digest
        started = await self.client.fetch(
            "POST", self.registry, f"{self._base}/blobs/uploads/",
            headers={"Content-Length": "0"}, what=what, limit=0, ok=frozenset(),
            bodiless=frozenset({202}))
        location = started.headers.get("Location")
        if not location:
            raise _like(what, RegistryError, "blob upload started without a Location")
        target = started.url.join(location).copy_merge_params({"digest": str(digest)})
        await self.client.fetch("PUT", self.registry, str(target),
                                headers={"Content-Type": "application/octet-stream"},
                                what=what, limit=0, ok=frozenset(),
                                bodiless=frozenset({201, 204}), content=data)
        return digest

    async def push_manifest(self, reference: str, raw: bytes, media_type: str) -> Digest:
        """Store a manifest under a tag or digest; its blobs must be pushed first."""
        await self.client.fetch("PUT", self.registry, f"{self._base}/manifests/{reference}",
                                headers={"Content-Type": media_type}, what=self._what(reference),
                                limit=0, ok=frozenset(), bodiless=frozenset({200, 201, 204}),
                                content=raw)
        return Digest.of(raw)


def _next_link(link: str | None, current: httpx.URL) -> str | None:
    if not link:
        return None
    for part in link.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if start != -1 and end > start:
                nxt = current.join(part[start + 1:end])
                if nxt.host != current.host:
                    return None  # pagination never leaves the registry
                return str(nxt)
    return None

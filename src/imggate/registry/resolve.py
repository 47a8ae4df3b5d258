"""Reference -> :class:`ResolvedImage`: pin to a digest, pick a platform, summarise the config.

The tag is resolved exactly once; everything after uses digests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imggate.errors import Error, LayoutError, RegistryError
from imggate.models import ConfigSummary, Digest, ImageRef, Platform, PlatformChild, ResolvedImage
from imggate.registry.deadline import Deadline
from imggate.registry.interface import Manifest, Repository, load_json
from imggate.registry.options import RegistryOptions
from imggate.values import replace

IMAGE_CONFIG_TYPES = frozenset({
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
})
MAX_CONFIG_BYTES = 8 * 1024 * 1024
DEFAULT_PLATFORM = Platform("linux", "amd64")
_MAX_NESTING = 2

if TYPE_CHECKING:
    # The HTTP stack is imported when a registry is used: a check of an OCI layout
    # never imports it (registry/options.py).
    from imggate.registry.client import RegistryClient


def open_repository(ref: ImageRef, client: RegistryClient | None) -> Repository:
    """The :class:`Repository` an image reference points at (``client``: ``None`` only
    when no reference of the run is to a registry)."""
    if ref.source == "oci-layout":
        # Imported here: a run against registries only never reads a layout.
        from imggate.registry.layout import OciLayout

        assert ref.layout_path is not None
        return OciLayout(ref.layout_path).repository()
    if client is None:
        raise RegistryError("no registry client for this run (an internal error)",
                            registry=ref.registry, repository=ref.repository)
    return client.repository(ref.registry, ref.repository)


def _fail(repo: Repository, message: str) -> Error:
    from imggate.registry.repository import RegistryRepository  # an error path: cost is moot

    if isinstance(repo, RegistryRepository):
        return RegistryError(message, registry=repo.registry, repository=repo.repository)
    return LayoutError(f"{repo.name}: {message}")


def _check_size(repo: Repository, what: str, digest: Digest, declared: int, actual: int) -> None:
    # The digest already pins the bytes; a size that disagrees means a malformed
    # descriptor, which a registry or builder must not be trusted to have produced.
    if declared != actual:
        raise _fail(repo, f"{what} {digest} is {actual} bytes but its descriptor says {declared}")


def _children(index: Manifest) -> tuple[PlatformChild, ...]:
    return tuple(PlatformChild(d.digest, d.media_type, d.size, d.platform)
                 for d in index.manifests)


def _pick(children: Sequence[PlatformChild], want: Platform | None,
          repo: Repository) -> PlatformChild:
    # BuildKit stores attestation manifests as unknown/unknown children.
    real = [c for c in children if c.platform is None or c.platform.os != "unknown"]
    if want is not None:
        for c in real:
            if c.platform is not None and want.matches(c.platform):
                return c
        offered = ", ".join(str(c.platform) for c in real if c.platform) or "none"
        raise _fail(repo, f"no manifest for platform {want} (offers {offered})")
    for c in real:
        if c.platform is not None and DEFAULT_PLATFORM.matches(c.platform):
            return c
    if not real:
        raise _fail(repo, "index lists no image manifests")
    return real[0]


def summarise_config(raw: bytes, digest: Digest, layer_count: int, where: str) -> ConfigSummary:
    """Summarise an image config blob; ``ValueError`` names what is malformed."""
    try:
        doc = load_json(raw)
    except (ValueError, RecursionError):
        raise ValueError(f"{where}: config blob is not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: config blob is not a JSON object")
    cfg = doc.get("config") or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: config.config is not an object")
    labels = cfg.get("Labels") or {}
    if not isinstance(labels, dict):
        raise ValueError(f"{where}: config.Labels is not an object")
    created = doc.get("created")
    return ConfigSummary(
        digest=digest,
        created=parse_time(created) if isinstance(created, str) else None,
        os=_str(doc.get("os")),
        architecture=_str(doc.get("architecture")),
        variant=_str(doc.get("variant")),
        user=_str(cfg.get("User")),
        labels={str(k): str(v) for k, v in labels.items()},
        layer_count=layer_count,
    )


def _str(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def parse_time(text: str) -> datetime | None:
    """RFC 3339 with up to nanoseconds (Go writes 9 fractional digits); ``None`` if unparsable."""
    t = text.strip().replace("Z", "+00:00")
    if "." in t:
        head, _, frac = t.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        zone = frac[len(digits):]
        t = f"{head}.{digits[:6].ljust(6, '0')}{zone}" if digits else head + zone
    try:
        parsed = datetime.fromisoformat(t)
    except ValueError:
        return None
    # A config without a zone means UTC (Go's time.Time marshals with one; others may not).
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def resolve_image(repo: Repository, ref: ImageRef,
                        platform: Platform | None = None, *,
                        details: bool = True) -> ResolvedImage:
    """Pin ``ref`` to a verified digest and, with ``details``, read its config.

    Without ``details`` and without ``platform`` only the top-level manifest
    is fetched (enough to pin the image): ``manifest_digest`` is then the
    top-level digest and ``config`` is ``None``.
    """
    return await describe_image(repo, ref, await top_manifest(repo, ref), platform,
                                details=details)


async def top_manifest(repo: Repository, ref: ImageRef) -> Manifest:
    """The verified top-level manifest ``ref`` names in ``repo`` (its tag resolved once)."""
    default_tag = "" if ref.source == "oci-layout" else "latest"
    return await repo.resolve(ref.digest if ref.digest is not None else (ref.tag or default_tag))


async def describe_image(repo: Repository, ref: ImageRef, top: Manifest,
                         platform: Platform | None = None, *,
                         details: bool = True) -> ResolvedImage:
    """The :class:`ResolvedImage` of ``ref`` pinned to the verified top-level manifest ``top``.

    The second half of :func:`resolve_image`, for a caller that has already fetched
    ``top`` (``imggate audit`` fetches each tag's manifest, then describes each distinct
    digest once, so that tags sharing an image do not fetch its config again).
    """
    if not details and platform is None:
        kids = _children(top) if top.is_index else ()
        return ResolvedImage(ref=ref.with_digest(top.digest), digest=top.digest,
                             media_type=top.media_type, platforms=kids,
                             manifest_digest=top.digest, config=None)
    pinned, manifest = await pin_platform(repo, ref, top, platform)
    return await read_config(repo, pinned, manifest, platform)


async def pin_platform(repo: Repository, ref: ImageRef, top: Manifest,
                       platform: Platform | None = None) -> tuple[ResolvedImage, Manifest]:
    """``ref`` pinned to ``top``, its platform's manifest picked (an index walked, each
    child verified): the image without its config (``config`` ``None``), and that
    manifest for :func:`read_config`.

    All that an image's signatures, attestations and reports are looked up by (its
    digests): the webhook looks them up while :func:`read_config` reads the config.
    """
    children: tuple[PlatformChild, ...] = ()
    manifest = top
    for _ in range(_MAX_NESTING):
        if not manifest.is_index:
            break
        kids = _children(manifest)
        if manifest is top:
            children = kids
        chosen = _pick(kids, platform, repo)
        manifest = await repo.manifest(chosen.digest)
        _check_size(repo, "manifest", chosen.digest, chosen.size, len(manifest.raw))
    if manifest.is_index:
        raise _fail(repo, f"{top.digest}: indexes nested too deeply")
    return ResolvedImage(ref=ref.with_digest(top.digest), digest=top.digest,
                         media_type=top.media_type, platforms=children,
                         manifest_digest=manifest.digest, config=None), manifest


async def read_config(repo: Repository, pinned: ResolvedImage, manifest: Manifest,
                      platform: Platform | None = None) -> ResolvedImage:
    """``pinned`` with its config read from ``repo`` (verified, bounded) and summarised;
    ``pinned`` and ``manifest`` as :func:`pin_platform` gave them."""
    cfg_desc = manifest.config
    if cfg_desc is None or cfg_desc.media_type not in IMAGE_CONFIG_TYPES:
        return pinned
    if cfg_desc.size > MAX_CONFIG_BYTES:
        raise _fail(repo, f"config {cfg_desc.digest} is {cfg_desc.size} bytes, over the "
                          f"{MAX_CONFIG_BYTES} byte limit")
    raw = await repo.blob(cfg_desc.digest, max_size=cfg_desc.size)
    _check_size(repo, "config", cfg_desc.digest, cfg_desc.size, len(raw))
    try:
        config = summarise_config(raw, cfg_desc.digest, manifest.layer_count,
                                  f"{repo.name}@{cfg_desc.digest}")
    except ValueError as e:
        raise _fail(repo, str(e)) from None
    if platform is not None and not pinned.platforms and config.os and config.architecture:
        have = Platform(config.os, config.architecture, config.variant)
        if not platform.matches(have):
            raise _fail(repo, f"image is {have}, not the requested {platform}")
    return replace(pinned, config=config)


async def resolve_many(
    refs: Sequence[ImageRef], options: RegistryOptions, platform: Platform | None = None,
    *, concurrency: int | None = None, details: bool = True, deadline: Deadline | None = None,
) -> list[ResolvedImage | Error]:
    """Resolve every reference concurrently; each result is the image or why it failed.

    ``concurrency`` images at a time: by default as many as the client's requests in
    flight to one host (``options.limits.per_host``, the connections its pool keeps for
    a host), so that a registry's connections are all used and no request waits in the
    pool's queue. ``deadline`` bounds every registry request (see
    :mod:`imggate.registry.deadline`).
    """
    sem = asyncio.Semaphore(concurrency or options.limits.per_host)
    from imggate.registry.client import RegistryClient

    async with RegistryClient(options, deadline=deadline) as client:
        async def one(ref: ImageRef) -> ResolvedImage | Error:
            async with sem:
                try:
                    return await resolve_image(open_repository(ref, client), ref, platform,
                                               details=details)
                except Error as e:
                    return e
        return list(await asyncio.gather(*(one(r) for r in refs)))

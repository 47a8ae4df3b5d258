"""Benchmark: verifying cosign signatures of N images vs fetching the same objects bare.

Starts a throw-away Distribution registry on loopback and pushes N distinct
small images, each signed in the cosign format (tests/signatures/
cosign_format_signer.py: a ``sha256-<hex>.sig`` manifest with a simple-signing
payload layer, ECDSA P-256). Then, in one process and one RegistryClient,
alternating rounds of:

- **bare**: resolve the tag, fetch the ``.sig`` manifest by tag and its payload
  blob (digest-checked, as every fetch is) and ask for bundle referrers (the
  registry has no referrers API, so that is the 404 plus the tag fallback),
  no signature work;
- **verify**: resolve the tag, then ``check_signatures`` (the same fetches +
  payload validation + ECDSA verification + requirement evaluation).

Optionally ``--logged N``: key signatures carrying a Rekor SET from a private
Sigstore (tests/signatures/private_sigstore.py), verified without
``--insecure-ignore-tlog``; and ``--keyless N``: the real keyless Fulcio/Rekor
signature of fixture ``keyless-cimage-fulcio-rekor`` pushed to N repositories
(chain at integrated time, SCT, SET, body checks; checked by digest, so no tag
resolution on either side). Prints per-image and total times and
the ratio verify/bare. Target: verification adds <= 20% over the bare fetches.

    python bench/verify_bench.py [--images 200] [--rounds 5] [--logged 200] [--keyless 50]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from imggate.models import Digest  # noqa: E402
from imggate.registry.client import RegistryClient  # noqa: E402
from imggate.registry.credentials import CredentialStore  # noqa: E402
from imggate.registry.options import RegistryOptions  # noqa: E402
from imggate.signatures import (  # noqa: E402
    Identity,
    TrustConfig,
    check_signatures,
    default_requirement,
    evaluate,
)
from imggate.signatures.interface import BUNDLE_MEDIA_TYPE  # noqa: E402
from registry_harness import Registry, start_registry  # noqa: E402
from signatures.cosign_format_signer import (  # noqa: E402
    CosignFormatSigner,
    make_image,
    push_repository,
    simple_signing_payload,
)
from signatures.fixture_cases import signed_repo  # noqa: E402
from signatures.inmemory import InMemoryRepository  # noqa: E402
from signatures.private_sigstore import PrivateSigstore  # noqa: E402

TARGET_OVERHEAD = 0.20


def push_signed(registry: Registry, count: int) -> tuple[list[str], TrustConfig]:
    """Push ``count`` signed images (repositories bench/img-NNNN, tag v1)."""
    signer = CosignFormatSigner()
    names = [f"bench/img-{i:04d}" for i in range(count)]

    def one(name: str) -> None:
        repo = InMemoryRepository(f"{registry.host}/{name}")
        image = make_image(repo, tag="v1")
        signer.sign_image(repo, image)
        push_repository(repo, registry.url, name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, names))
    return names, TrustConfig(keys=(signer.trusted("bench.pub"),), ignore_tlog=True)


def push_logged(registry: Registry, count: int) -> tuple[list[str], TrustConfig]:
    """``count`` key-signed images whose signatures carry a Rekor SET (private Sigstore)."""
    ps = PrivateSigstore()
    signer = CosignFormatSigner()
    names = [f"logged/img-{i:04d}" for i in range(count)]
    when = ps.start + dt.timedelta(days=1)

    def one(name: str) -> None:
        repo = InMemoryRepository(f"{registry.host}/{name}")
        image = make_image(repo, tag="v1")
        payload = simple_signing_payload(image, repo.name)
        sig = signer.sign(payload)
        bundle = ps.set_bundle(ps.hashedrekord(payload, sig, signer.public_pem.decode()), when)
        signer.sign_image(repo, image, signature=sig,
                          annotations={"dev.sigstore.cosign/bundle": bundle})
        push_repository(repo, registry.url, name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, names))
    return names, TrustConfig(keys=(signer.trusted("bench.pub"),), trusted_root=ps.trust_root())


def push_keyless(registry: Registry, count: int) -> tuple[list[str], Digest, TrustConfig]:
    """The real keyless fixture signature under ``count`` repositories (by digest)."""
    names = [f"keyless/img-{i:04d}" for i in range(count)]
    digest = Digest.parse("sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a")

    def one(name: str) -> None:
        repo, _ = signed_repo("keyless-cimage-fulcio-rekor", digest=digest)
        push_repository(repo, registry.url, name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, names))
    trust = TrustConfig(identities=(Identity(identity="mitr@redhat.com",
                                             issuer="https://github.com/login/oauth"),))
    return names, digest, trust


async def rounds(registry: Registry, names: list[str], trust: TrustConfig, n_rounds: int,
                 digest: Digest | None = None) -> tuple[list[float], list[float]]:
    """Per round, the summed time of bare fetches and of verifications.

    Both run for each image back to back (their order alternating per image),
    so registry warm-up or drift cannot favour either side.
    """
    opts = RegistryOptions(credentials=CredentialStore(),
                           insecure_registries=frozenset({registry.host}))
    requirement = default_requirement(trust)
    bare_times: list[float] = []
    verify_times: list[float] = []
    async with RegistryClient(opts) as client:
        repos = {n: client.repository(registry.host, n) for n in names}

        async def target(name: str) -> Digest:
            if digest is not None:
                return digest
            return (await repos[name].resolve("v1")).digest

        async def bare(name: str) -> None:
            repo = repos[name]
            d = await target(name)
            sig = await repo.try_resolve_tag(f"{d.tag_form}.sig")
            assert sig is not None
            for layer in sig.layers:
                await repo.blob(layer.digest, max_size=1024 * 1024)
            if trust.check_bundles:
                # verify also asks for Sigstore bundles among the referrers.
                await repo.referrers(d, BUNDLE_MEDIA_TYPE)

        async def verify(name: str) -> None:
            checks = await check_signatures(repos[name], await target(name), trust)
            ok, why = evaluate(requirement, checks)
            if not ok:
                raise SystemExit(f"{name}: not verified: {why}")

        async def clock(work: Callable[[str], Awaitable[None]], name: str) -> float:
            started = time.perf_counter()
            await work(name)
            return time.perf_counter() - started

        for name in names:  # warm connections and registry caches
            await bare(name)
        for _ in range(n_rounds):
            b = v = 0.0
            for i, name in enumerate(names):
                if i % 2:
                    v += await clock(verify, name)
                    b += await clock(bare, name)
                else:
                    b += await clock(bare, name)
                    v += await clock(verify, name)
            bare_times.append(b)
            verify_times.append(v)
    return bare_times, verify_times


def report(label: str, count: int, bare: list[float], verify: list[float]) -> float:
    b, v = statistics.median(bare), statistics.median(verify)
    overhead = v / b - 1
    print(f"{label}: {count} images, median of {len(bare)} rounds")
    print(f"  bare fetch (tag, .sig manifest, payload): {b:7.3f} s total, "
          f"{b / count * 1000:6.2f} ms/image")
    print(f"  verify (same fetches + verification):    {v:7.3f} s total, "
          f"{v / count * 1000:6.2f} ms/image")
    print(f"  ratio verify/bare = {v / b:.3f}  (overhead {overhead:+.1%}, "
          f"target <= +{TARGET_OVERHEAD:.0%})")
    return overhead


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--logged", type=int, default=0,
                    help="also time N key signatures with a Rekor SET (private Sigstore)")
    ap.add_argument("--keyless", type=int, default=0,
                    help="also time N real keyless (Fulcio/Rekor) signatures")
    args = ap.parse_args()
    # --insecure-ignore-tlog logs a warning per signature; printing 200 of them per round
    # would time the terminal, not verification.
    logging.getLogger("imggate.signatures").setLevel(logging.ERROR)
    print("note: key-based images are verified with ignore_tlog (no Rekor for fresh keys); "
          "its per-signature UNSAFE warnings are silenced here")
    with tempfile.TemporaryDirectory(prefix="imggate-verify-bench-") as tmp:
        registry = start_registry(Path(tmp) / "registry")
        try:
            t0 = time.perf_counter()
            names, trust = push_signed(registry, args.images)
            print(f"pushed {args.images} signed images in {time.perf_counter() - t0:.1f} s")
            bare, verify = asyncio.run(rounds(registry, names, trust, args.rounds))
            results = {"key-based": report("key-based (ECDSA P-256, --insecure-ignore-tlog)",
                                           args.images, bare, verify)}
            if args.logged:
                lnames, ltrust = push_logged(registry, args.logged)
                lb, lv = asyncio.run(rounds(registry, lnames, ltrust, args.rounds))
                results["key+SET"] = report("key-based with Rekor SET (private Sigstore)",
                                            args.logged, lb, lv)
            if args.keyless:
                knames, digest, ktrust = push_keyless(registry, args.keyless)
                kb, kv = asyncio.run(rounds(registry, knames, ktrust, args.rounds, digest))
                results["keyless"] = report("keyless (Fulcio chain + SCT + Rekor SET)",
                                            args.keyless, kb, kv)
        finally:
            registry.stop()
    for name, overhead in results.items():
        verdict = "MET" if overhead <= TARGET_OVERHEAD else "MISSED"
        print(f"target ({name}: overhead <= {TARGET_OVERHEAD:.0%}): {verdict} ({overhead:+.1%})")


if __name__ == "__main__":
    main()

"""A registry that serves bytes not matching their digest is refused with exit 3.

The bytes are changed on the registry's own disk (the filesystem driver's
``blobs/sha256/xx/<hex>/data``), keeping length and JSON validity, so that
only hashing can tell. The registry keeps announcing the original digest.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from harness_images import ImageSpec, LayoutBuilder, PushedImage, Skopeo
from registry_harness import CliResult, Registry, run_imggate, tampered

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]


def resolve(*args: str, **kwargs: Any) -> CliResult:
    return run_imggate(["resolve", *args], **kwargs)


def assert_refused(result: CliResult, image: PushedImage, digest: str) -> None:
    """Exit 3, nothing pinned, and a message naming registry, repository and digest."""
    assert result.code == 3, result.output
    assert image.pinned not in result.stdout
    assert image.registry.host in result.stderr
    assert image.repository in result.stderr
    assert digest in result.stderr, f"{digest} not named in: {result.stderr}"
    assert "Traceback" not in result.stderr


@pytest.fixture
def fresh_multiarch(skopeo: Skopeo, harness_dir: Path, anon_registry: Registry) -> PushedImage:
    """A two-platform index whose blobs no other test shares."""
    name = secrets.token_hex(4)
    layout = LayoutBuilder(harness_dir / f"fresh-multi-{name}")
    for arch in ("amd64", "arm64"):
        layout.build(ImageSpec(tag=arch, architecture=arch, labels={"fresh": name},
                               content=f"{name} {arch}\n".encode()))
    platforms = (("amd64", "linux/amd64"), ("arm64", "linux/arm64"))
    layout.build_index("multi", platforms)
    digest = skopeo.push(layout.path, "multi", anon_registry, f"fresh/multi-{name}", "v1",
                         all_platforms=True)
    return PushedImage(anon_registry, f"fresh/multi-{name}", "v1", digest,
                       tuple(p for _, p in platforms))


def _manifest(skopeo: Skopeo, image: PushedImage, digest: str | None = None) -> dict[str, Any]:
    ref = image.registry.ref(image.repository, digest=digest) if digest else image.ref
    doc: dict[str, Any] = json.loads(skopeo.raw(ref, image.registry))
    return doc


def test_fresh_image_resolves_before_tampering(fresh_image: PushedImage) -> None:
    result = resolve(fresh_image.ref)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{fresh_image.pinned}\n"


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_tampered_manifest_is_refused(fresh_image: PushedImage, by: str) -> None:
    text = fresh_image.ref if by == "tag" else fresh_image.pinned
    with tampered(fresh_image.registry, fresh_image.digest):
        result = resolve(text)
    assert_refused(result, fresh_image, fresh_image.digest)


def test_tampered_config_blob_is_refused(skopeo: Skopeo, fresh_image: PushedImage) -> None:
    config_digest = _manifest(skopeo, fresh_image)["config"]["digest"]
    with tampered(fresh_image.registry, config_digest):
        result = resolve("--json", fresh_image.ref)
    assert_refused(result, fresh_image, config_digest)
    assert fresh_image.digest not in result.stdout


def test_tampered_image_fails_the_run_but_others_still_resolve(
        fresh_image: PushedImage, anon_image: PushedImage) -> None:
    with tampered(fresh_image.registry, fresh_image.digest):
        result = resolve(anon_image.ref, fresh_image.ref)
    assert result.code == 3
    assert result.stdout == f"{anon_image.pinned}\n"
    assert fresh_image.digest in result.stderr


def test_tampered_index_is_refused(fresh_multiarch: PushedImage) -> None:
    with tampered(fresh_multiarch.registry, fresh_multiarch.digest):
        result = resolve(fresh_multiarch.ref)
    assert_refused(result, fresh_multiarch, fresh_multiarch.digest)


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_tampered_child_manifest_is_refused(skopeo: Skopeo, fresh_multiarch: PushedImage,
                                            platform: str) -> None:
    index = _manifest(skopeo, fresh_multiarch)
    child = next(m["digest"] for m in index["manifests"]
                 if f"{m['platform']['os']}/{m['platform']['architecture']}" == platform)
    with tampered(fresh_multiarch.registry, child):
        result = resolve("--platform", platform, fresh_multiarch.ref)
    assert_refused(result, fresh_multiarch, child)


def test_untouched_child_still_resolves_when_sibling_is_tampered(
        skopeo: Skopeo, fresh_multiarch: PushedImage) -> None:
    index = _manifest(skopeo, fresh_multiarch)
    arm = next(m["digest"] for m in index["manifests"]
               if m["platform"]["architecture"] == "arm64")
    with tampered(fresh_multiarch.registry, arm):
        result = resolve("--platform", "linux/amd64", fresh_multiarch.ref)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{fresh_multiarch.pinned}\n"


def test_tampered_child_config_is_refused(skopeo: Skopeo, fresh_multiarch: PushedImage) -> None:
    index = _manifest(skopeo, fresh_multiarch)
    arm = next(m["digest"] for m in index["manifests"]
               if m["platform"]["architecture"] == "arm64")
    config_digest = _manifest(skopeo, fresh_multiarch, arm)["config"]["digest"]
    with tampered(fresh_multiarch.registry, config_digest):
        result = resolve("--platform", "linux/arm64", fresh_multiarch.ref)
    assert_refused(result, fresh_multiarch, config_digest)


def test_tampering_on_token_registry_is_refused(skopeo: Skopeo, harness_dir: Path,
                                                token_registry: Registry) -> None:
    """Auth does not change the verdict: bad bytes behind a token are still bad bytes."""
    name = secrets.token_hex(4)
    layout = LayoutBuilder(harness_dir / f"fresh-token-{name}")
    layout.build(ImageSpec(tag="t", content=f"token {name}\n".encode()))
    digest = skopeo.push(layout.path, "t", token_registry, f"group/fresh-{name}", "v1")
    image = PushedImage(token_registry, f"group/fresh-{name}", "v1", digest)
    assert token_registry.username
    with tampered(token_registry, digest):
        result = resolve("--username", token_registry.username, "--password-stdin", image.ref,
                         stdin=f"{token_registry.password}\n")
    assert_refused(result, image, digest)

"""The registry client's Python API (tags, referrers, blobs) against a real registry.

``imggate resolve`` only exercises manifests and config blobs; signatures and
attestations need tags and referrers too. Distribution 2.8 has no referrers
API, so the client must fall back to the ``sha256-<hex>`` tag schema (what
cosign and oras do against such registries).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from harness_images import APP_SPEC, LayoutBuilder, PushedImage, Skopeo, put_manifest, upload_blob
from registry_harness import Registry

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

T = TypeVar("T")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SBOM = "application/spdx+json"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"


def with_repo(registry: Registry, repository: str,
              call: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``call(repo)`` with a fresh client, using the registry's own credentials."""
    from imggate.registry.client import RegistryClient
    from imggate.registry.credentials import Credentials, CredentialStore
    from imggate.registry.options import RegistryOptions

    explicit = None
    if registry.username and registry.password:
        explicit = Credentials(registry.username, registry.password, False, "test")
    options = RegistryOptions(credentials=CredentialStore(
        explicit=explicit, explicit_hosts=frozenset({registry.host}), environ={}))

    async def go() -> T:
        async with RegistryClient(options) as client:
            return await call(client.repository(registry.host, repository))

    return asyncio.run(go())


@pytest.mark.parametrize("fixture", ["anon_registry", "token_registry"])
def test_tags_match_skopeo(request: pytest.FixtureRequest, skopeo: Skopeo,
                           image_layout: LayoutBuilder, fixture: str) -> None:
    registry: Registry = request.getfixturevalue(fixture)
    repo = f"tags/{secrets.token_hex(4)}"
    for tag in ("v1", "v1.1", "latest", "2024-01-02", "sha256-" + "a" * 64 + ".sig"):
        skopeo.push(image_layout.path, APP_SPEC.tag, registry, repo, tag)
    tags = with_repo(registry, repo, lambda r: r.tags())
    assert sorted(tags) == sorted(skopeo.list_tags(repo, registry))
    assert len(tags) == 5


def test_tags_of_unknown_repository_is_not_found(anon_registry: Registry) -> None:
    from imggate.errors import NotFound

    with pytest.raises(NotFound) as info:
        with_repo(anon_registry, "tags/never-pushed", lambda r: r.tags())
    assert anon_registry.host in str(info.value)


def test_try_resolve_tag(anon_image: PushedImage) -> None:
    found = with_repo(anon_image.registry, anon_image.repository,
                      lambda r: r.try_resolve_tag(anon_image.tag))
    assert found is not None
    assert str(found.digest) == anon_image.digest
    missing = with_repo(anon_image.registry, anon_image.repository,
                        lambda r: r.try_resolve_tag("no-such-tag"))
    assert missing is None


def test_blob_size_limit_is_enforced(skopeo: Skopeo, anon_image: PushedImage) -> None:
    from imggate.errors import RegistryError
    from imggate.models import Digest

    config = Digest.parse(json.loads(skopeo.raw(anon_image.ref, anon_image.registry))
                          ["config"]["digest"])
    data = with_repo(anon_image.registry, anon_image.repository, lambda r: r.blob(config))
    assert config.matches(data)
    with pytest.raises(RegistryError):
        with_repo(anon_image.registry, anon_image.repository,
                  lambda r: r.blob(config, max_size=10))


def _artifact(registry: Registry, repo: str, subject: PushedImage, artifact_type: str,
              payload: bytes) -> tuple[str, int]:
    empty = upload_blob(registry, repo, b"{}")
    layer = upload_blob(registry, repo, payload)
    body = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                   "size": 2},
        "layers": [{"mediaType": artifact_type, "digest": layer, "size": len(payload)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": 0},
    }).encode()
    return put_manifest(registry, repo, secrets.token_hex(4), body, OCI_MANIFEST), len(body)


def test_referrers_fall_back_to_the_tag_schema(skopeo: Skopeo, image_layout: LayoutBuilder,
                                               anon_registry: Registry) -> None:
    from imggate.models import Digest

    repo = f"referrers/{secrets.token_hex(4)}"
    digest = skopeo.push(image_layout.path, APP_SPEC.tag, anon_registry, repo, "v1")
    subject = PushedImage(anon_registry, repo, "v1", digest)
    sbom, sbom_size = _artifact(anon_registry, repo, subject, SBOM, b'{"spdxVersion":"2.3"}')
    sig, sig_size = _artifact(anon_registry, repo, subject, SIG, b'{"critical":{}}')
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sbom, "size": sbom_size, "artifactType": SBOM},
        {"mediaType": OCI_MANIFEST, "digest": sig, "size": sig_size, "artifactType": SIG},
    ]}).encode()
    put_manifest(anon_registry, repo, "sha256-" + digest.split(":", 1)[1], index, OCI_INDEX)

    subject_digest = Digest.parse(digest)
    found = with_repo(anon_registry, repo, lambda r: r.referrers(subject_digest))
    assert {str(d.digest) for d in found} == {sbom, sig}
    only_sbom = with_repo(anon_registry, repo, lambda r: r.referrers(subject_digest, SBOM))
    assert [str(d.digest) for d in only_sbom] == [sbom]
    assert only_sbom[0].artifact_type == SBOM


def test_no_referrers_is_empty(anon_image: PushedImage) -> None:
    from imggate.models import Digest

    found = with_repo(anon_image.registry, anon_image.repository,
                      lambda r: r.referrers(Digest.parse(anon_image.digest)))
    assert found == ()

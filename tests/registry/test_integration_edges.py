"""``imggate resolve`` on unusual but real registry content, PUT by hand to a real registry.

skopeo only pushes well-formed images; these documents (attestation
children, nested and empty indexes, artifacts, descriptors whose size is
wrong, deleted children) are accepted by Distribution and do occur in the
wild, so the client has to decide about them.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from harness_images import (
    APP_SPEC,
    ARM_SPEC,
    ImageSpec,
    LayoutBuilder,
    Skopeo,
    put_manifest,
    upload_blob,
)
from registry_harness import CliResult, Registry, http_get, run_imggate

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64"}


def resolve(*args: str) -> CliResult:
    return run_imggate(["resolve", *args])


class Repo:
    """A fresh repository on the anonymous registry with the two standard images in it."""

    def __init__(self, registry: Registry, name: str, amd: str, amd_raw: bytes, arm: str,
                 arm_raw: bytes) -> None:
        self.registry, self.name = registry, name
        self.amd, self.amd_raw, self.arm, self.arm_raw = amd, amd_raw, arm, arm_raw

    def child(self, which: str, platform: dict[str, str] | None, **override: Any
              ) -> dict[str, Any]:
        digest, raw = (self.amd, self.amd_raw) if which == "amd" else (self.arm, self.arm_raw)
        desc: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)}
        if platform is not None:
            desc["platform"] = platform
        desc.update(override)
        return desc

    def put_index(self, tag: str, children: list[dict[str, Any]]) -> tuple[str, bytes]:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": children}).encode()
        return put_manifest(self.registry, self.name, tag, body, OCI_INDEX), body

    def ref(self, tag: str) -> str:
        return self.registry.ref(self.name, tag)


@pytest.fixture
def repo(skopeo: Skopeo, image_layout: LayoutBuilder, anon_registry: Registry) -> Repo:
    name = f"edges/{secrets.token_hex(4)}"
    amd = skopeo.push(image_layout.path, APP_SPEC.tag, anon_registry, name, "amd")
    arm = skopeo.push(image_layout.path, ARM_SPEC.tag, anon_registry, name, "arm")
    return Repo(anon_registry, name, amd, image_layout.read_blob(amd), arm,
                image_layout.read_blob(arm))


def test_digest_wins_over_tag(repo: Repo) -> None:
    """``repo:tag@digest`` means the digest, as in docker; the tag is not consulted."""
    result = resolve(f"{repo.ref('amd')}@{repo.arm}")
    assert result.code == 0, result.stderr
    assert result.stdout == f"{repo.registry.ref(repo.name, digest=repo.arm)}\n"


def test_attestation_children_are_not_picked(repo: Repo) -> None:
    """BuildKit lists provenance as ``unknown/unknown`` children; the default is the image."""
    digest, _ = repo.put_index("attested", [
        repo.child("arm", {"os": "unknown", "architecture": "unknown"}),
        repo.child("amd", AMD64),
    ])
    result = resolve("--json", repo.ref("attested"))
    assert result.code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert doc["digest"] == digest
    assert doc["manifestDigest"] == repo.amd
    assert doc["config"]["architecture"] == "amd64"


def test_index_without_manifests_is_exit_3(repo: Repo) -> None:
    repo.put_index("empty", [])
    result = resolve(repo.ref("empty"))
    assert result.code == 3
    assert result.stdout == ""
    assert repo.name in result.stderr


def test_index_of_index_resolves_to_the_image(repo: Repo) -> None:
    inner, inner_body = repo.put_index("inner", [repo.child("amd", AMD64)])
    outer, _ = repo.put_index("outer", [{"mediaType": OCI_INDEX, "digest": inner,
                                         "size": len(inner_body)}])
    result = resolve("--json", repo.ref("outer"))
    assert result.code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert doc["digest"] == outer
    assert doc["manifestDigest"] == repo.amd


def test_deeply_nested_indexes_are_refused(repo: Repo) -> None:
    digest, body = repo.put_index("level0", [repo.child("amd", AMD64)])
    for level in range(1, 6):
        digest, body = repo.put_index(f"level{level}", [
            {"mediaType": OCI_INDEX, "digest": digest, "size": len(body)}])
    result = resolve(repo.ref("level5"))
    assert result.code == 3
    assert result.stdout == ""


def test_deleted_child_manifest_is_exit_3(repo: Repo) -> None:
    repo.put_index("both", [repo.child("amd", AMD64), repo.child("arm", ARM64)])
    status, _, _ = http_get(f"{repo.registry.url}/v2/{repo.name}/manifests/{repo.arm}",
                            method="DELETE")
    assert status == 202
    result = resolve("--platform", "linux/arm64", repo.ref("both"))
    assert result.code == 3
    assert result.stdout == ""
    assert repo.arm in result.stderr
    # The other platform is still there and still resolves.
    assert resolve("--platform", "linux/amd64", repo.ref("both")).code == 0


def test_artifact_manifest_has_no_image_config(repo: Repo) -> None:
    """An OCI artifact (SBOM, signature) is pinned, but has no image config to summarise."""
    empty = b"{}"
    config = upload_blob(repo.registry, repo.name, empty)
    layer = upload_blob(repo.registry, repo.name, b'{"spdxVersion": "SPDX-2.3"}')
    body = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config,
                   "size": len(empty)},
        "layers": [{"mediaType": "application/spdx+json", "digest": layer, "size": 27}],
    }).encode()
    digest = put_manifest(repo.registry, repo.name, "sbom", body, OCI_MANIFEST)
    result = resolve("--json", repo.ref("sbom"))
    assert result.code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert doc["digest"] == digest
    assert doc["config"] is None


# Descriptor sizes: the OCI image spec says content whose length differs from the
# descriptor's ``size`` SHOULD NOT be trusted. Distribution does not check them on PUT.


def test_index_child_with_wrong_size_is_refused(repo: Repo) -> None:
    repo.put_index("size-lie", [repo.child("amd", AMD64, size=len(repo.amd_raw) + 7)])
    result = resolve(repo.ref("size-lie"))
    assert result.code == 3, f"accepted a child whose size is wrong: {result.stdout}"
    assert repo.amd in result.stderr


def test_config_descriptor_with_wrong_size_is_refused(repo: Repo) -> None:
    manifest = json.loads(repo.amd_raw)
    manifest["config"]["size"] += 3
    digest = put_manifest(repo.registry, repo.name, "config-size-lie",
                          json.dumps(manifest).encode(), OCI_MANIFEST)
    result = resolve(repo.ref("config-size-lie"))
    assert result.code == 3, f"accepted a config blob whose size is wrong: {result.stdout}"
    assert manifest["config"]["digest"] in result.stderr
    assert digest not in result.stdout


def test_platform_variant_is_matched(skopeo: Skopeo, harness_dir: Path,
                                     anon_registry: Registry) -> None:
    """``linux/arm/v7`` picks the v7 child, not v6; ``linux/arm`` alone takes either."""
    name = secrets.token_hex(4)
    layout = LayoutBuilder(harness_dir / f"variants-{name}")
    for tag in ("v6", "v7"):
        layout.build(ImageSpec(tag=tag, architecture="arm", labels={"variant": tag},
                               content=f"{name} {tag}\n".encode()))
    layout.build_index("multi", [("v6", "linux/arm/v6"), ("v7", "linux/arm/v7")])
    digest = skopeo.push(layout.path, "multi", anon_registry, f"variants/{name}", "v1",
                         all_platforms=True)
    ref = anon_registry.ref(f"variants/{name}", "v1")
    result = resolve("--json", "--platform", "linux/arm/v7", ref)
    assert result.code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert doc["digest"] == digest
    assert doc["manifestDigest"] == layout.digest("v7")
    assert doc["config"]["labels"] == {"variant": "v7"}
    assert {p["platform"] for p in doc["platforms"]} == {"linux/arm/v6", "linux/arm/v7"}
    assert resolve("--platform", "linux/arm/v8", ref).code == 3

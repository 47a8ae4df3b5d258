"""``imggate resolve`` against a real anonymous Distribution registry.

Digests are compared with what ``skopeo inspect`` reports for the same
references; the config summary with what the images were built with.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness_images import APP_SPEC, ARM_SPEC, LayoutBuilder, PushedImage, Skopeo
from registry_harness import CliResult, Registry, free_port, run_imggate, start_registry

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def resolve(*args: str, **kwargs: Any) -> CliResult:
    return run_imggate(["resolve", *args], **kwargs)


def resolve_json(*args: str) -> list[dict[str, Any]]:
    result = resolve("--json", *args)
    assert result.code == 0, result.stderr
    docs = json.loads(result.stdout)
    assert isinstance(docs, list)
    return docs


def test_tag_pins_to_the_digest_skopeo_sees(skopeo: Skopeo, anon_image: PushedImage) -> None:
    result = resolve(anon_image.ref)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{anon_image.pinned}\n"
    assert result.stdout.strip().rsplit("@", 1)[1] == skopeo.digest(anon_image.ref,
                                                                   anon_image.registry)


@pytest.mark.parametrize("form", ["digest", "tag+digest"])
def test_digest_references_are_kept(anon_image: PushedImage, form: str) -> None:
    text = anon_image.pinned if form == "digest" else f"{anon_image.ref}@{anon_image.digest}"
    result = resolve(text)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{anon_image.pinned}\n"


def test_json_single_platform_fields(skopeo: Skopeo, anon_image: PushedImage) -> None:
    [doc] = resolve_json(anon_image.ref)
    manifest = json.loads(skopeo.raw(anon_image.ref, anon_image.registry))
    assert doc["reference"] == anon_image.ref
    assert doc["digest"] == anon_image.digest
    # umoci's manifest has no mediaType field: it must come from Content-Type.
    assert doc["mediaType"] == OCI_MANIFEST
    assert doc["platforms"] == []
    cfg = doc["config"]
    assert cfg["digest"] == manifest["config"]["digest"]
    assert datetime.fromisoformat(cfg["created"]) == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (cfg["os"], cfg["architecture"]) == ("linux", "amd64")
    assert cfg["labels"] == dict(APP_SPEC.labels)
    assert cfg["user"] == APP_SPEC.user
    assert cfg["layers"] == len(manifest["layers"]) == 1


def test_json_multiarch_lists_children_and_defaults_to_amd64(
        skopeo: Skopeo, anon_multiarch: PushedImage) -> None:
    index = json.loads(skopeo.raw(anon_multiarch.ref, anon_multiarch.registry))
    [doc] = resolve_json(anon_multiarch.ref)
    assert doc["digest"] == anon_multiarch.digest == skopeo.digest(anon_multiarch.ref,
                                                                   anon_multiarch.registry)
    assert doc["mediaType"] == OCI_INDEX
    children = {p["platform"]: p["digest"] for p in doc["platforms"]}
    expected = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                for m in index["manifests"]}
    assert children == expected
    assert set(children) == set(anon_multiarch.platforms)
    assert doc["config"]["architecture"] == "amd64"
    assert doc["manifestDigest"] == children["linux/amd64"]


def test_platform_flag_picks_the_child(anon_multiarch: PushedImage) -> None:
    [doc] = resolve_json("--platform", "linux/arm64", anon_multiarch.ref)
    children = {p["platform"]: p["digest"] for p in doc["platforms"]}
    # The pinned digest stays the index: a deploy pins what the user named.
    assert doc["digest"] == anon_multiarch.digest
    assert doc["manifestDigest"] == children["linux/arm64"]
    cfg = doc["config"]
    assert cfg["architecture"] == "arm64"
    assert cfg["user"] == ARM_SPEC.user
    assert cfg["labels"] == dict(ARM_SPEC.labels)
    assert datetime.fromisoformat(cfg["created"]) == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_platform_line_output_pins_the_index(anon_multiarch: PushedImage) -> None:
    result = resolve("--platform", "linux/arm64", anon_multiarch.ref)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{anon_multiarch.pinned}\n"


def test_platform_not_offered_is_exit_3(anon_multiarch: PushedImage) -> None:
    result = resolve("--platform", "linux/s390x", anon_multiarch.ref)
    assert result.code == 3
    assert result.stdout == ""
    assert "linux/s390x" in result.stderr
    assert anon_multiarch.repository in result.stderr


def test_platform_mismatch_on_single_image_is_exit_3(anon_image: PushedImage) -> None:
    result = resolve("--platform", "linux/arm64", anon_image.ref)
    assert result.code == 3
    assert "linux/arm64" in result.stderr


def test_bad_platform_syntax_is_usage_error(anon_image: PushedImage) -> None:
    assert resolve("--platform", "linux", anon_image.ref).code == 2


def test_several_references_keep_their_order(anon_image: PushedImage,
                                             anon_multiarch: PushedImage) -> None:
    result = resolve(anon_multiarch.ref, anon_image.ref, anon_multiarch.pinned)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [anon_multiarch.pinned, anon_image.pinned,
                                          anon_multiarch.pinned]


@pytest.mark.parametrize("what", ["tag", "repository", "digest"])
def test_unknown_image_is_exit_3(anon_image: PushedImage, what: str) -> None:
    reg = anon_image.registry
    text = {
        "tag": reg.ref(anon_image.repository, "no-such-tag"),
        "repository": reg.ref("team/no-such-repo", "v1"),
        "digest": reg.ref(anon_image.repository, digest="sha256:" + "0" * 64),
    }[what]
    result = resolve(text)
    assert result.code == 3
    assert result.stdout == ""
    assert reg.host in result.stderr
    assert "Traceback" not in result.stderr


def test_one_unknown_among_good_ones_still_fails(anon_image: PushedImage) -> None:
    missing = anon_image.registry.ref(anon_image.repository, "no-such-tag")
    result = resolve(anon_image.ref, missing)
    assert result.code == 3
    assert result.stdout == f"{anon_image.pinned}\n"
    assert "no-such-tag" in result.stderr


@pytest.mark.parametrize("text", [
    "127.0.0.1:5000/Team/App:v1",                # upper case in the repository
    "127.0.0.1:5000/team/app:bad tag",           # space in the tag
    "127.0.0.1:5000/team/app@sha256:abc",        # short digest
    "127.0.0.1:5000/team/app:" + "t" * 129,      # tag longer than 128
    "127.0.0.1:5000/team//app",                  # empty path component
    ":v1",
    "",
])
def test_bad_reference_is_exit_2(text: str) -> None:
    result = resolve(text)
    assert result.code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_bad_reference_stops_before_any_registry_traffic(anon_image: PushedImage) -> None:
    result = resolve(anon_image.ref, "127.0.0.1:5000/Bad/Name:v1")
    assert result.code == 2
    assert result.stdout == ""


def test_registry_down_is_exit_3(tmp_path: Path, skopeo: Skopeo,
                                 image_layout: LayoutBuilder) -> None:
    """A port nobody ever listened on, and a registry that stopped after a push."""
    reg = start_registry(tmp_path / "short-lived")
    try:
        digest = skopeo.push(image_layout.path, "app", reg, "team/app", "v1")
        assert resolve(reg.ref("team/app", "v1")).code == 0
    finally:
        reg.stop()
    never = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    # One run for both: the retries of the two wait concurrently.
    result = resolve("--timeout", "2", f"{never}/team/app:v1", reg.ref("team/app", digest=digest))
    assert result.code == 3
    assert never in result.stderr
    assert f"{reg.host}/team/app@{digest}" in result.stderr
    assert result.stdout == ""
    assert time.monotonic() - started < 30  # retries are bounded


def test_module_entry_point(anon_image: PushedImage) -> None:
    """``python -m imggate`` behaves like the in-process entry point."""
    result = resolve(anon_image.ref, subprocess_mode=True)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{anon_image.pinned}\n"
    bad = resolve("127.0.0.1:5000/Bad:v1", subprocess_mode=True)
    assert bad.code == 2


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def test_docker_schema2_manifest(skopeo: Skopeo, anon_docker_image: PushedImage) -> None:
    [doc] = resolve_json(anon_docker_image.ref)
    assert doc["digest"] == anon_docker_image.digest == skopeo.digest(
        anon_docker_image.ref, anon_docker_image.registry)
    assert doc["mediaType"] == DOCKER_MANIFEST
    cfg = doc["config"]
    assert cfg["labels"] == dict(APP_SPEC.labels)
    assert cfg["user"] == APP_SPEC.user
    assert cfg["layers"] == 1


def test_docker_manifest_list_with_platform(skopeo: Skopeo,
                                            anon_docker_list: PushedImage) -> None:
    raw = json.loads(skopeo.raw(anon_docker_list.ref, anon_docker_list.registry))
    assert raw["mediaType"] == DOCKER_LIST
    [doc] = resolve_json("--platform", "linux/arm64", anon_docker_list.ref)
    assert doc["digest"] == anon_docker_list.digest
    assert doc["mediaType"] == DOCKER_LIST
    children = {p["platform"]: p["digest"] for p in doc["platforms"]}
    assert children == {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                        for m in raw["manifests"]}
    assert {p["mediaType"] for p in doc["platforms"]} == {DOCKER_MANIFEST}
    assert doc["manifestDigest"] == children["linux/arm64"]
    assert doc["config"]["architecture"] == "arm64"


def test_missing_tag_means_latest(skopeo: Skopeo, image_layout: LayoutBuilder,
                                  anon_registry: Registry) -> None:
    digest = skopeo.push(image_layout.path, "app", anon_registry, "team/latest-app", "latest")
    result = resolve(anon_registry.ref("team/latest-app"))
    assert result.code == 0, result.stderr
    assert result.stdout == f"{anon_registry.ref('team/latest-app', digest=digest)}\n"


@pytest.mark.parametrize("args", [
    ["resolve", "--no-such-flag", "127.0.0.1:5000/team/app:v1"],
    ["resolve"],
    ["no-such-command"],
], ids=["unknown-flag", "no-reference", "unknown-command"])
def test_cli_usage_errors_are_exit_2(args: list[str]) -> None:
    result = run_imggate(args)
    assert result.code == 2, result.output
    assert "internal error" not in result.output


def test_ipv6_loopback_registry(tmp_path: Path, image_layout: LayoutBuilder) -> None:
    """``[::1]:PORT/repo`` is a loopback registry too: plain HTTP, same digest."""
    reg = start_registry(tmp_path / "ipv6", address="::1")
    try:
        # skopeo 1.9 cannot parse [::1] references, so this push is plain HTTP.
        digest = image_layout.push_http(APP_SPEC.tag, reg, "team/app", "v1")
        assert digest == image_layout.digest(APP_SPEC.tag)
        result = resolve(reg.ref("team/app", "v1"))
        assert result.code == 0, result.stderr
        assert result.stdout == f"[::1]:{reg.host.rsplit(':', 1)[1]}/team/app@{digest}\n"
    finally:
        reg.stop()


def test_localhost_name_is_loopback(anon_image: PushedImage) -> None:
    port = anon_image.registry.host.rsplit(":", 1)[1]
    result = resolve(f"localhost:{port}/{anon_image.repository}:{anon_image.tag}")
    assert result.code == 0, result.stderr
    assert result.stdout == f"localhost:{port}/{anon_image.repository}@{anon_image.digest}\n"


def test_single_name_repository_on_a_private_registry(skopeo: Skopeo,
                                                      image_layout: LayoutBuilder,
                                                      anon_registry: Registry) -> None:
    """``library/`` is only for Docker Hub: ``host:port/alpine`` stays ``alpine``."""
    digest = skopeo.push(image_layout.path, APP_SPEC.tag, anon_registry, "alpine", "3")
    result = resolve(anon_registry.ref("alpine", "3"))
    assert result.code == 0, result.stderr
    assert result.stdout == f"{anon_registry.host}/alpine@{digest}\n"

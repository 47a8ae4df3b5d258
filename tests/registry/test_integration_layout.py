"""``imggate resolve oci:DIR[:TAG]`` on layouts written by umoci and by ``skopeo copy``.

The same images are also in the registry, so the offline source must pin
them to the very digests the registry and skopeo report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness_images import APP_SPEC, ARM_SPEC, MULTI_TAG, LayoutBuilder, PushedImage, Skopeo
from registry_harness import CliResult, run_imggate, tamper_bytes

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]


def resolve(*args: str) -> CliResult:
    return run_imggate(["resolve", *args])


def resolve_json(*args: str) -> dict[str, Any]:
    result = resolve("--json", *args)
    assert result.code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def layout_copy(tmp_path: Path, image_layout: LayoutBuilder) -> LayoutBuilder:
    """A private copy of the session layout, safe to damage."""
    target = tmp_path / "layout"
    shutil.copytree(image_layout.path, target)
    return LayoutBuilder(target)


def test_umoci_layout_pins_to_the_registry_digest(image_layout: LayoutBuilder,
                                                  anon_image: PushedImage) -> None:
    doc = resolve_json(f"oci:{image_layout.path}:{APP_SPEC.tag}")
    assert doc["digest"] == image_layout.digest(APP_SPEC.tag) == anon_image.digest
    assert doc["config"]["labels"] == dict(APP_SPEC.labels)
    assert doc["config"]["user"] == APP_SPEC.user


def test_layout_line_output_names_the_digest(image_layout: LayoutBuilder) -> None:
    result = resolve(f"oci:{image_layout.path}:{APP_SPEC.tag}")
    assert result.code == 0, result.stderr
    assert result.stdout.strip().endswith("@" + image_layout.digest(APP_SPEC.tag))


def test_layout_index_with_platform(image_layout: LayoutBuilder,
                                    anon_multiarch: PushedImage) -> None:
    doc = resolve_json("--platform", "linux/arm64", f"oci:{image_layout.path}:{MULTI_TAG}")
    assert doc["digest"] == image_layout.digest(MULTI_TAG) == anon_multiarch.digest
    assert doc["manifestDigest"] == image_layout.digest(ARM_SPEC.tag)
    assert doc["config"]["architecture"] == "arm64"


def test_layout_by_digest(image_layout: LayoutBuilder) -> None:
    digest = image_layout.digest(ARM_SPEC.tag)
    doc = resolve_json(f"oci:{image_layout.path}@{digest}")
    assert doc["digest"] == digest


def test_skopeo_written_layout_matches_the_registry(tmp_path: Path, skopeo: Skopeo,
                                                    anon_multiarch: PushedImage) -> None:
    """``skopeo copy docker://… oci:DIR:TAG`` (what CI jobs save) resolves to the same digest."""
    target = tmp_path / "saved"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--all",
                    "--src-tls-verify=false", "--authfile", str(skopeo.authfile),
                    f"docker://{anon_multiarch.ref}", f"oci:{target}:saved"],
                   check=True, capture_output=True, env=skopeo.env)
    doc = resolve_json(f"oci:{target}:saved")
    assert doc["digest"] == anon_multiarch.digest
    registry_doc = resolve_json(anon_multiarch.ref)
    assert doc["platforms"] == registry_doc["platforms"]
    assert doc["config"] == registry_doc["config"]


@pytest.mark.parametrize("what", ["manifest", "config", "index"])
def test_tampered_layout_blob_is_exit_3(layout_copy: LayoutBuilder, what: str) -> None:
    tag = MULTI_TAG if what == "index" else APP_SPEC.tag
    manifest_digest = layout_copy.digest(tag)
    digest = manifest_digest if what != "config" else json.loads(
        layout_copy.read_blob(manifest_digest))["config"]["digest"]
    blob = layout_copy.path / "blobs" / "sha256" / digest.split(":", 1)[1]
    blob.write_bytes(tamper_bytes(blob.read_bytes()))
    result = resolve(f"oci:{layout_copy.path}:{tag}")
    assert result.code == 3
    assert result.stdout == ""
    assert digest in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_blob_in_layout_is_exit_3(layout_copy: LayoutBuilder) -> None:
    digest = layout_copy.digest(APP_SPEC.tag)
    (layout_copy.path / "blobs" / "sha256" / digest.split(":", 1)[1]).unlink()
    result = resolve(f"oci:{layout_copy.path}:{APP_SPEC.tag}")
    assert result.code == 3
    assert digest in result.stderr


def test_unknown_layout_tag_is_exit_3(image_layout: LayoutBuilder) -> None:
    result = resolve(f"oci:{image_layout.path}:no-such-tag")
    assert result.code == 3
    assert "no-such-tag" in result.stderr


def test_directory_that_is_not_a_layout_is_exit_3(tmp_path: Path) -> None:
    result = resolve(f"oci:{tmp_path}:latest")
    assert result.code == 3
    assert str(tmp_path) in result.stderr

"""OCI image layouts (umoci and cosign save) resolve offline with the same digest checks."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from fixture_paths import FIXTURES as _FIXTURES
from imggate.errors import DigestMismatch, LayoutError, NotFound
from imggate.models import Digest, Platform
from imggate.registry.layout import OciLayout
from imggate.registry.reference import parse_reference
from imggate.registry.resolve import resolve_image

FIXTURES = _FIXTURES / "cosign"
ATT = FIXTURES / "att-slsa-generator-v1.9.0-intoto" / "oci-layout"


def resolve(text: str, platform: Platform | None = None):  # type: ignore[no-untyped-def]
    ref = parse_reference(text)
    assert ref.layout_path is not None
    return asyncio.run(resolve_image(OciLayout(ref.layout_path).repository(), ref, platform))


def test_cosign_save_layout_resolves_to_the_signed_index() -> None:
    img = resolve(f"oci:{ATT}")
    assert str(img.digest) == "sha256:5b146084201148bf151871fa779767f013c47706d031106af0d727fb5b88f5ac"
    assert img.config is not None and img.config.architecture == "amd64"
    assert [str(c.platform) for c in img.platforms] == ["linux/amd64", "unknown/unknown"]
    with pytest.raises(LayoutError, match="no manifest for platform linux/arm64"):
        resolve(f"oci:{ATT}", Platform("linux", "arm64"))


def test_cosign_tag_scheme_maps_to_the_attestation_manifest() -> None:
    repo = OciLayout(ATT).repository()
    digest = Digest.parse("sha256:5b146084201148bf151871fa779767f013c47706d031106af0d727fb5b88f5ac")
    m = asyncio.run(repo.try_resolve_tag(f"{digest.tag_form}.att"))
    assert m is not None and str(m.digest).startswith("sha256:d86a56f0")
    assert asyncio.run(repo.try_resolve_tag(f"{digest.tag_form}.sig")) is None


def test_tampered_layout_blob_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "lay"
    shutil.copytree(ATT, copy)
    index_blob = copy / "blobs" / "sha256" / "5b146084201148bf151871fa779767f013c47706d031106af0d727fb5b88f5ac"
    index_blob.write_bytes(index_blob.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(DigestMismatch, match="does not match"):
        resolve(f"oci:{copy}")


def test_missing_and_malformed_layouts(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="not a directory"):
        resolve(f"oci:{tmp_path / 'nope'}")
    (tmp_path / "oci-layout").write_text("{}")
    with pytest.raises(LayoutError, match="imageLayoutVersion"):
        resolve(f"oci:{tmp_path}")
    with pytest.raises(NotFound):
        resolve(f"oci:{ATT}:no-such-tag")


def test_umoci_layout_by_tag(tmp_path: Path) -> None:
    if not shutil.which("umoci"):
        pytest.fail("umoci is required (apt-get install umoci)")
    lay = tmp_path / "img"
    subprocess.run(["umoci", "init", "--layout", str(lay)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{lay}:v1"], check=True)
    subprocess.run(["umoci", "config", "--image", f"{lay}:v1", "--config.label", "team=core",
                    "--config.user", "1000", "--created", "2024-01-02T03:04:05Z"], check=True)
    img = resolve(f"oci:{lay}:v1")
    assert img.config is not None
    assert img.config.labels["team"] == "core" and img.config.user == "1000"
    assert img.config.created is not None and img.config.created.year == 2024
    assert resolve(f"oci:{lay}@{img.digest}").digest == img.digest

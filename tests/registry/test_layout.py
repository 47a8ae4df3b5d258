"""OCI image layouts (umoci and cosign save) resolve offline with the same digest checks."""

from __future__ import annotations

import asyncio
import os
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


# --------------------------------------------------------------- hostile files
# Each failed before: a blob or index.json linked to /dev/zero was read until
# MemoryError, a FIFO blocked forever, a long name was an OSError traceback.

INDEX_BLOB = "5b146084201148bf151871fa779767f013c47706d031106af0d727fb5b88f5ac"


def _resolve_cli(target: str) -> subprocess.CompletedProcess[str]:
    """``imggate resolve`` in a child limited to 1 GiB and 20 s, so a regression fails, not hangs."""
    import resource
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "imggate", "resolve", f"oci:{target}"],
                          capture_output=True, text=True, timeout=20, preexec_fn=limit,
                          check=False)


def test_index_linked_to_dev_zero_is_exit_3_with_a_clear_error(tmp_path: Path) -> None:
    copy = tmp_path / "lay"
    shutil.copytree(ATT, copy)
    (copy / "index.json").unlink()
    (copy / "index.json").symlink_to("/dev/zero")
    proc = _resolve_cli(str(copy))
    assert proc.returncode == 3, proc.stderr
    assert f"oci:{copy}/index.json: refused: a device: only regular files are read" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.timeout(30)  # a FIFO used to block forever
@pytest.mark.parametrize(("name", "make", "kind"), [
    (f"blobs/sha256/{INDEX_BLOB}", lambda p: p.symlink_to("/dev/zero"), "a device"),
    (f"blobs/sha256/{INDEX_BLOB}", lambda p: p.symlink_to("/dev/urandom"), "a device"),
    ("index.json", os.mkfifo, "a FIFO"),
    (f"blobs/sha256/{INDEX_BLOB}", os.mkfifo, "a FIFO"),
    ("oci-layout", os.mkfifo, "a FIFO"),
    (f"blobs/sha256/{INDEX_BLOB}", lambda p: p.mkdir(), "a directory"),
])
def test_layout_files_that_are_not_regular_are_refused(tmp_path: Path, name: str, make,  # type: ignore[no-untyped-def]
                                                      kind: str) -> None:
    copy = tmp_path / "lay"
    shutil.copytree(ATT, copy)
    (copy / name).unlink()
    make(copy / name)
    with pytest.raises(LayoutError, match=f"{name}: refused: {kind}.*only regular files"):
        resolve(f"oci:{copy}")


def test_oversized_layout_files_are_refused_unread(tmp_path: Path) -> None:
    copy = tmp_path / "lay"
    shutil.copytree(ATT, copy)
    with open(copy / "index.json", "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(LayoutError, match="67,108,864 bytes, over the"):
        resolve(f"oci:{copy}")


def test_blob_symlinked_to_a_regular_file_is_read_and_verified(tmp_path: Path) -> None:
    copy = tmp_path / "lay"
    shutil.copytree(ATT, copy)
    blob = copy / "blobs" / "sha256" / INDEX_BLOB
    elsewhere = tmp_path / "moved-blob"
    blob.rename(elsewhere)
    blob.symlink_to(elsewhere)
    assert str(resolve(f"oci:{copy}").digest) == f"sha256:{INDEX_BLOB}"


def test_layout_path_component_over_255_characters(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="unusable path: File name too long"):
        resolve(f"oci:{tmp_path / ('a' * 300)}")


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("oci-layout", b'{"imageLayoutVersion": ', "line 1, column 24"),
    ("oci-layout", b'{"imageLayoutVersion": "\xff"}', "not UTF-8 text"),
    ("oci-layout", b"[" * 50_000, "nested too deeply"),
    ("index.json", b'{"schemaVersion": 2,\n "manifests": [}', "line 2, column 16"),
], ids=["cut-short", "not-utf8", "deep", "index"])
def test_a_layout_file_that_is_not_json_is_named_in_imggates_words(
        tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    (tmp_path / name).write_bytes(content)
    with pytest.raises(LayoutError) as caught:
        OciLayout(tmp_path).index()
    assert caught.value.message == f"oci:{tmp_path}/{name}: " + (
        f"not JSON ({problem})" if name == "oci-layout"
        else f"manifest is not JSON ({problem})")

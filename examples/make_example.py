"""Regenerate the bundled example (run once; the outputs are committed).

    python examples/make_example.py

Writes, under ``examples/``:

- ``app/``: an OCI image layout built with ``umoci`` (image tagged ``1.0.0``,
  with OCI labels), plus a cosign-format key-based signature of its manifest
  stored the way ``cosign save`` stores it (an index entry of kind
  ``dev.cosignproject.cosign/sigs``);
- ``cosign.pub``: the public key that verifies it. The private key lives
  only in memory while this script runs and is then discarded;
- ``trivy-report.json``: a real Trivy report (Trivy's ``alpine-310``
  integration golden from ``../shared/fixtures/trivy``) with ``ArtifactName``
  and ``Metadata.RepoDigests`` pointed at this example image, so imggate binds
  it to the image being checked. Its four Medium findings are Trivy's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "fixtures"
LAYOUT = HERE / "app"
NAME = "registry.example.com/demo/app"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(data: bytes) -> str:
    d = sha(data)
    (LAYOUT / "blobs" / "sha256" / d.split(":")[1]).write_bytes(data)
    return d


def main() -> None:
    if LAYOUT.exists():
        shutil.rmtree(LAYOUT)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rootfs"
        (root / "app").mkdir(parents=True)
        (root / "app" / "hello.txt").write_text("hello from the imggate example\n")
        subprocess.run(["umoci", "init", "--layout", str(LAYOUT)], check=True)
        subprocess.run(["umoci", "new", "--image", f"{LAYOUT}:1.0.0"], check=True)
        subprocess.run(["umoci", "insert", "--image", f"{LAYOUT}:1.0.0", str(root / "app"),
                        "/app"], check=True)
    labels = {
        "org.opencontainers.image.source": "https://example.com/demo/app",
        "org.opencontainers.image.version": "1.0.0",
        "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
    }
    cmd = ["umoci", "config", "--image", f"{LAYOUT}:1.0.0", "--os", "linux",
           "--architecture", "amd64", "--config.user", "10001",
           "--created", "2026-11-01T12:00:00Z", "--config.cmd", "/app/hello.txt"]
    for k, v in labels.items():
        cmd += ["--config.label", f"{k}={v}"]
    subprocess.run(cmd, check=True)
    subprocess.run(["umoci", "gc", "--layout", str(LAYOUT)], check=True)

    index = json.loads((LAYOUT / "index.json").read_bytes())
    image = index["manifests"][0]
    digest = image["digest"]
    manifest = json.loads((LAYOUT / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
    config_digest = manifest["config"]["digest"]

    key = ec.generate_private_key(ec.SECP256R1())
    payload = json.dumps({
        "critical": {"identity": {"docker-reference": NAME},
                     "image": {"docker-manifest-digest": digest},
                     "type": "cosign container image signature"},
        "optional": None,
    }, separators=(",", ":")).encode()
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    sig_config = json.dumps({"architecture": "", "os": "", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [sha(payload)]}}).encode()
    sig_manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": len(sig_config), "digest": put_blob(sig_config)},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "size": len(payload), "digest": put_blob(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": signature}}],
    }, indent=2).encode()
    sig_digest = put_blob(sig_manifest)
    image.setdefault("annotations", {})["kind"] = "dev.cosignproject.cosign/image"
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(sig_manifest),
        "digest": sig_digest, "annotations": {"kind": "dev.cosignproject.cosign/sigs"}})
    (LAYOUT / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (HERE / "cosign.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    report = json.loads((SHARED / "trivy" / "alpine-310.json").read_bytes())
    report["ArtifactName"] = f"{NAME}:1.0.0"
    report["Metadata"]["RepoTags"] = [f"{NAME}:1.0.0"]
    report["Metadata"]["RepoDigests"] = [f"{NAME}@{digest}"]
    report["Metadata"]["ImageID"] = config_digest
    report["Metadata"].pop("Reference", None)
    (HERE / "trivy-report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"example image {NAME}@{digest}")


if __name__ == "__main__":
    main()

"""Test images: built with umoci in OCI layouts, pushed and inspected with skopeo."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from registry_harness import Registry, http_get, require_binaries, run_tool


@dataclass(frozen=True)
class ImageSpec:
    """What one single-platform test image contains."""

    tag: str
    architecture: str = "amd64"
    os: str = "linux"
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str | None = "1000:1000"
    created: str = "2024-01-02T03:04:05Z"
    content: bytes = b"hello from imggate tests\n"


# The images the fixtures push; tests compare imggate's config summary with these.
APP_SPEC = ImageSpec(
    tag="app",
    architecture="amd64",
    labels={
        "org.opencontainers.image.source": "https://gitlab.example.com/team/app",
        "com.example.team": "payments",
    },
    user="1000:1000",
    created="2024-01-02T03:04:05Z",
    content=b"app amd64 payload\n",
)
ARM_SPEC = ImageSpec(
    tag="app-arm64",
    architecture="arm64",
    labels={"com.example.team": "payments", "com.example.arch": "arm64"},
    user="65532",
    created="2024-02-03T04:05:06Z",
    content=b"app arm64 payload\n",
)
MULTI_TAG = "multi"
MULTI_PLATFORMS = (("app", "linux/amd64"), ("app-arm64", "linux/arm64"))


class LayoutBuilder:
    """Builds images in one OCI image layout directory with umoci."""

    def __init__(self, path: Path) -> None:
        require_binaries("umoci")
        self.path = path
        if not (path / "index.json").exists():
            run_tool(["umoci", "init", "--layout", str(path)])

    def build(self, spec: ImageSpec) -> str:
        """Build ``spec`` under its tag; return the manifest digest."""
        image = f"{self.path}:{spec.tag}"
        run_tool(["umoci", "new", "--image", image])
        src = self.path.parent / f".{self.path.name}-{spec.tag}.content"
        src.write_bytes(spec.content)
        try:
            run_tool(["umoci", "insert", "--rootless", "--image", image, str(src), "/imggate.txt"])
        finally:
            src.unlink()
        self.configure(spec.tag, spec)
        return self.digest(spec.tag)

    def configure(self, tag: str, spec: ImageSpec, *, new_tag: str | None = None) -> str:
        """Apply ``spec``'s config (labels, user, created, os/arch) to ``tag``."""
        cmd = ["umoci", "config", "--image", f"{self.path}:{tag}", "--created", spec.created,
               "--os", spec.os, "--architecture", spec.architecture, "--no-history"]
        if spec.user:
            cmd += ["--config.user", spec.user]
        for key, value in spec.labels.items():
            cmd += ["--config.label", f"{key}={value}"]
        if new_tag:
            cmd += ["--tag", new_tag]
        run_tool(cmd)
        return self.digest(new_tag or tag)

    def _index(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.path / "index.json").read_text())
        return data

    def descriptor(self, tag: str) -> dict[str, object]:
        """The ``index.json`` descriptor named ``tag``."""
        for desc in self._index()["manifests"]:  # type: ignore[attr-defined]
            if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return dict(desc)
        raise KeyError(f"{self.path}: no tag {tag!r}")

    def digest(self, tag: str) -> str:
        """The manifest digest ``tag`` names in the layout."""
        return str(self.descriptor(tag)["digest"])

    def read_blob(self, digest: str) -> bytes:
        """Bytes of a blob in the layout."""
        algo, _, hexpart = digest.partition(":")
        return (self.path / "blobs" / algo / hexpart).read_bytes()

    def push_http(self, tag: str, registry: Registry, repository: str, dest_tag: str) -> str:
        """Push one single-platform image with plain HTTP calls (anonymous registries only).

        For registries skopeo cannot address (skopeo 1.9 rejects ``[::1]`` references).
        """
        desc = self.descriptor(tag)
        raw = self.read_blob(str(desc["digest"]))
        manifest = json.loads(raw)
        for blob in [manifest["config"], *manifest["layers"]]:
            upload_blob(registry, repository, self.read_blob(blob["digest"]))
        return put_manifest(registry, repository, dest_tag, raw, str(desc["mediaType"]))

    def build_index(self, tag: str, children: Sequence[tuple[str, str]]) -> str:
        """Assemble an OCI image index over ``(child_tag, "os/arch[/variant]")``; return digest.

        umoci cannot make indexes, so the index blob is written by hand and
        tagged in ``index.json`` the way skopeo expects.
        """
        manifests = []
        for child_tag, platform in children:
            desc = self.descriptor(child_tag)
            parts = platform.split("/")
            plat = {"os": parts[0], "architecture": parts[1]}
            if len(parts) > 2:
                plat["variant"] = parts[2]
            manifests.append({"mediaType": desc["mediaType"], "digest": desc["digest"],
                              "size": desc["size"], "platform": plat})
        body = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": manifests}, separators=(",", ":")).encode()
        hexpart = hashlib.sha256(body).hexdigest()
        (self.path / "blobs" / "sha256" / hexpart).write_bytes(body)
        index = self._index()
        entries = [d for d in index["manifests"]  # type: ignore[attr-defined]
                   if d.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        entries.append({"mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": f"sha256:{hexpart}", "size": len(body),
                        "annotations": {"org.opencontainers.image.ref.name": tag}})
        index["manifests"] = entries
        (self.path / "index.json").write_text(json.dumps(index, separators=(",", ":")))
        return f"sha256:{hexpart}"


class Skopeo:
    """skopeo with an empty auth file so nothing from the user's machine leaks in."""

    def __init__(self, workdir: Path) -> None:
        require_binaries("skopeo")
        workdir.mkdir(parents=True, exist_ok=True)
        self.authfile = workdir / "skopeo-auth.json"
        self.authfile.write_text('{"auths": {}}')
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG")}

    def push(self, layout: Path, tag: str, registry: Registry, repository: str,
             dest_tag: str | None = None, *, all_platforms: bool = False,
             docker_format: bool = False) -> str:
        """``skopeo copy oci:LAYOUT:TAG docker://REG/REPO:DEST_TAG``; return the pushed digest.

        ``docker_format`` converts to Docker schema 2 (manifest list for indexes).
        """
        digestfile = layout.parent / f".digest-{secrets.token_hex(6)}"
        # --insecure-policy: no dependence on /etc/containers/policy.json being installed.
        cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", "--authfile", str(self.authfile),
               "--dest-tls-verify=false", "--digestfile", str(digestfile)]
        if registry.creds:
            cmd += ["--dest-creds", registry.creds]
        if all_platforms:
            cmd.append("--all")
        if docker_format:
            cmd += ["--format", "v2s2"]
        cmd += [f"oci:{layout}:{tag}", f"docker://{registry.ref(repository, dest_tag or tag)}"]
        run_tool(cmd, env=self.env)
        try:
            return digestfile.read_text().strip()
        finally:
            digestfile.unlink(missing_ok=True)

    def _inspect(self, ref: str, registry: Registry, extra: Sequence[str]) -> str:
        cmd = ["skopeo", "inspect", "--authfile", str(self.authfile), "--tls-verify=false",
               *extra]
        if registry.creds:
            cmd += ["--creds", registry.creds]
        return run_tool([*cmd, f"docker://{ref}"], env=self.env)

    def digest(self, ref: str, registry: Registry) -> str:
        """The manifest digest skopeo sees for ``ref`` (the index digest for multi-arch)."""
        return self._inspect(ref, registry, ["--format", "{{.Digest}}"]).strip()

    def raw(self, ref: str, registry: Registry) -> bytes:
        """The raw manifest bytes (``skopeo inspect --raw``)."""
        return self._inspect(ref, registry, ["--raw"]).encode()

    def config(self, ref: str, registry: Registry) -> dict[str, object]:
        """The image config blob (``skopeo inspect --config``), parsed."""
        data: dict[str, object] = json.loads(self._inspect(ref, registry, ["--config"]))
        return data

    def list_tags(self, repository: str, registry: Registry) -> list[str]:
        """``skopeo list-tags`` of ``registry/repository``."""
        cmd = ["skopeo", "list-tags", "--authfile", str(self.authfile), "--tls-verify=false"]
        if registry.creds:
            cmd += ["--creds", registry.creds]
        out = run_tool([*cmd, f"docker://{registry.ref(repository)}"], env=self.env)
        tags: list[str] = json.loads(out)["Tags"]
        return tags


@dataclass(frozen=True)
class PushedImage:
    """An image pushed to a test registry, with the digest skopeo reported."""

    registry: Registry
    repository: str
    tag: str
    digest: str
    platforms: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """``HOST:PORT/repo:tag``."""
        return self.registry.ref(self.repository, self.tag)

    @property
    def pinned(self) -> str:
        """``HOST:PORT/repo@sha256:...``: what ``imggate resolve`` prints."""
        return self.registry.ref(self.repository, digest=self.digest)


def upload_blob(registry: Registry, repository: str, data: bytes) -> str:
    """Monolithic blob upload (POST then PUT ``?digest=``) to an anonymous registry."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers, _ = http_get(f"{registry.url}/v2/{repository}/blobs/uploads/",
                                  method="POST")
    if status != 202:
        raise RuntimeError(f"blob upload start: HTTP {status}")
    location = urllib.parse.urljoin(registry.url, headers["Location"])
    sep = "&" if "?" in location else "?"
    status, _, body = http_get(f"{location}{sep}digest={urllib.parse.quote(digest)}",
                               {"Content-Type": "application/octet-stream"}, method="PUT",
                               data=data)
    if status != 201:
        raise RuntimeError(f"blob upload {digest}: HTTP {status}: {body[:300]!r}")
    return digest


def put_manifest(registry: Registry, repository: str, reference: str, body: bytes,
                 media_type: str) -> str:
    """PUT a hand-made manifest or index (anonymous registry); return its digest."""
    status, headers, answer = http_get(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        {"Content-Type": media_type}, method="PUT", data=body)
    if status != 201:
        raise RuntimeError(f"manifest PUT {repository}:{reference}: HTTP {status}: "
                           f"{answer[:300]!r}")
    return str(headers["Docker-Content-Digest"])

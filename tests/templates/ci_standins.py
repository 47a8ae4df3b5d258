"""Stand-ins for the tools GitLab jobs run in their own images: buildah, docker, kaniko, trivy,
cosign and kubectl.

Under ``gitlab-ci-local --force-shell-executor`` a job's ``image:`` is ignored and its script
runs on this machine, where none of those tools can do its work (no container engine, no
Trivy database, no cosign binary, no cluster). Each stand-in does the part of the job that the
pipeline depends on, with real components and real data:

- the builders push the test's umoci-built image with ``skopeo`` to the loopback registry,
  logged in with the job's credentials, and write the digest where the real tool writes it
  (``buildah push --digestfile``, kaniko ``--digest-file``, buildx ``--metadata-file``
  ``containerimage.digest``);
- ``trivy image`` writes a Trivy JSON report: the results of a real Trivy report from
  tests/fixtures, and the metadata of the pushed image read back with ``skopeo`` (digest,
  config, diff IDs), as ``trivy image`` writes them, created now;
- ``cosign sign --key env://…`` signs with a key ``cosign generate-key-pair`` wrote, in
  cosign's format (signatures/cosign_format_signer), pushed to the registry;
- ``kubectl set image`` records the image it would deploy.

A stand-in reads its arguments, the job's variables and ``STANDIN_*`` set by the test
(``STANDIN_STATE`` a scratch directory, ``STANDIN_LAYOUT`` the image as ``oci:DIR:TAG``,
``STANDIN_TRIVY_REPORT`` the Trivy report whose results to use). Run as
``python ci_standins.py TOOL ARGS…``; :func:`install` writes the ``TOOL`` commands.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

TESTS = Path(__file__).resolve().parents[1]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TOOLS = ("buildah", "docker", "trivy", "cosign", "kubectl")


def install(bindir: Path, kaniko_dir: Path) -> None:
    """Write the stand-in commands into ``bindir`` and kaniko's ``executor`` into ``kaniko_dir``."""
    bindir.mkdir(parents=True, exist_ok=True)
    kaniko_dir.mkdir(parents=True, exist_ok=True)
    for tool, where in [*((t, bindir / t) for t in TOOLS), ("kaniko", kaniko_dir / "executor")]:
        # kaniko's executor finds its docker config beside itself (/kaniko/.docker).
        where.write_text(f'#!/bin/sh\nKANIKO_DIR="$(dirname "$0")" '
                         f'exec "{sys.executable}" "{Path(__file__)}" {tool} "$@"\n')
        where.chmod(0o755)


def _fail(message: str) -> NoReturn:
    print(f"stand-in: {message}", file=sys.stderr)
    sys.exit(1)


def _state() -> Path:
    return Path(os.environ["STANDIN_STATE"])


def _skopeo(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], input=stdin, text=True,
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        _fail(f"skopeo {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _login(authfile: Path, argv: Sequence[str]) -> None:
    """``TOOL login -u USER --password-stdin HOST``, checked against the registry by skopeo."""
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("-u", "--username", required=True)
    p.add_argument("--password-stdin", action="store_true", required=True)
    a = p.parse_args(argv)
    _skopeo("login", "--tls-verify=false", "--authfile", str(authfile), "-u", a.username,
            "--password-stdin", a.host, stdin=sys.stdin.read().rstrip("\n"))


def _push(destination: str, authfile: Path, digestfile: Path) -> str:
    """Push the test's image to ``docker://destination``; the pushed manifest's digest."""
    if not authfile.is_file():
        _fail(f"no credentials for {destination}: the job did not log in")
    _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--authfile", str(authfile),
            "--digestfile", str(digestfile), os.environ["STANDIN_LAYOUT"],
            f"docker://{destination}")
    return digestfile.read_text().strip()


def buildah(argv: Sequence[str]) -> None:
    """``buildah login``, ``buildah build -t REF .``, ``buildah push --digestfile F REF``."""
    auth = _state() / "buildah-auth.json"
    if argv[:1] == ["login"]:
        _login(auth, argv[1:])
    elif argv[:1] == ["build"]:
        p = argparse.ArgumentParser()
        p.add_argument("-t", "--tag", required=True)
        p.add_argument("context")
        a = p.parse_args(argv[1:])
        if not (Path(a.context) / "Dockerfile").is_file():
            _fail(f"no Dockerfile in {a.context}")
        (_state() / "buildah-built").write_text(a.tag)
    elif argv[:1] == ["push"]:
        p = argparse.ArgumentParser()
        p.add_argument("--digestfile", required=True)
        p.add_argument("image")
        a = p.parse_args(argv[1:])
        built = _state() / "buildah-built"
        if not built.is_file() or built.read_text() != a.image:
            _fail(f"buildah push {a.image}: no such image was built")
        _push(a.image, auth, Path(a.digestfile))
    else:
        _fail(f"buildah {argv[:1]}: not stood in for")


def docker(argv: Sequence[str]) -> None:
    """``docker login`` and ``docker buildx build --push --metadata-file F -t REF .``."""
    auth = _state() / "docker-auth.json"
    if argv[:1] == ["login"]:
        _login(auth, argv[1:])
    elif argv[:2] == ["buildx", "build"]:
        p = argparse.ArgumentParser()
        p.add_argument("--push", action="store_true", required=True)
        p.add_argument("--metadata-file", required=True)
        p.add_argument("-t", "--tag", required=True)
        p.add_argument("context")
        a = p.parse_args(argv[2:])
        digest = _push(a.tag, auth, _state() / "docker-digest")
        raw = _skopeo("inspect", "--raw", "--tls-verify=false", "--authfile", str(auth),
                      f"docker://{a.tag}")
        manifest = json.loads(raw)
        # The keys buildx writes for a pushed image (the config digest and descriptor too).
        Path(a.metadata_file).write_text(json.dumps({
            "containerimage.config.digest": manifest["config"]["digest"],
            "containerimage.descriptor": {"mediaType": manifest.get("mediaType", OCI_MANIFEST),
                                          "digest": digest, "size": len(raw.encode())},
            "containerimage.digest": digest,
            "image.name": a.tag,
        }, indent=2))
    else:
        _fail(f"docker {argv[:2]}: not stood in for")


def kaniko(argv: Sequence[str]) -> None:
    """kaniko's ``executor --destination REF --digest-file F`` with ``/kaniko/.docker``'s auth."""
    p = argparse.ArgumentParser()
    p.add_argument("--context", required=True)
    p.add_argument("--dockerfile", required=True)
    p.add_argument("--destination", required=True)
    p.add_argument("--digest-file", required=True)
    a = p.parse_args(argv)
    if not Path(a.dockerfile).is_file():
        _fail(f"no Dockerfile at {a.dockerfile}")
    # kaniko reads the docker config the job wrote into /kaniko/.docker (its DOCKER_CONFIG).
    _push(a.destination, Path(os.environ["KANIKO_DIR"]) / ".docker" / "config.json",
          Path(a.digest_file))


def trivy(argv: Sequence[str]) -> None:
    """``trivy image --format json --output F REF``: the fixture's results about REF."""
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["image"])
    p.add_argument("--format", choices=["json"], required=True)
    p.add_argument("--output", required=True)
    p.add_argument("image")
    a = p.parse_args(argv)
    user, password = os.environ.get("TRIVY_USERNAME"), os.environ.get("TRIVY_PASSWORD")
    if not user or not password:
        _fail("TRIVY_USERNAME/TRIVY_PASSWORD are not set: the registry needs them")
    creds = ["--tls-verify=false", "--creds", f"{user}:{password}", f"docker://{a.image}"]
    raw = _skopeo("inspect", "--raw", *creds).encode()
    config = json.loads(_skopeo("inspect", "--config", "--raw", *creds))
    manifest = json.loads(raw)
    name = a.image.partition("@")[0]
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    report: dict[str, Any] = json.loads(Path(os.environ["STANDIN_TRIVY_REPORT"]).read_text())
    report["CreatedAt"] = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    report["ArtifactName"] = a.image
    report["ArtifactType"] = "container_image"
    md = report["Metadata"]
    md.update({"ImageID": manifest["config"]["digest"],
               "DiffIDs": config["rootfs"]["diff_ids"],
               "RepoTags": [], "RepoDigests": [f"{name}@{digest}"],
               "Reference": a.image, "ImageConfig": config})
    md.pop("Layers", None)  # the fixture image's layers, not this one's
    Path(a.output).write_text(json.dumps(report, indent=2))


def cosign(argv: Sequence[str]) -> None:
    """``cosign login`` and ``cosign sign --yes --tlog-upload=false --key env://VAR REF@DIGEST``."""
    sys.path[:0] = [str(TESTS)]
    from imggate.evidence.signing_keys import parse_signing_key, password_from_env
    from imggate.models import Digest
    from signatures.cosign_format_signer import (
        append_layer,
        push_repository,
        simple_signing_payload,
    )
    from signatures.inmemory import InMemoryRepository

    auth = _state() / "cosign-auth.json"
    if argv[:1] == ["login"]:
        _login(auth, argv[1:])
        return
    if argv[:1] != ["sign"]:
        _fail(f"cosign {argv[:1]}: not stood in for")
    p = argparse.ArgumentParser()
    p.add_argument("--yes", action="store_true")
    p.add_argument("--tlog-upload", choices=["false"], required=True,
                   help="the stand-in has no Rekor to upload to")
    p.add_argument("--key", required=True)
    p.add_argument("image")
    a = p.parse_args(argv[1:])
    if not a.key.startswith("env://"):
        _fail("the stand-in reads the key from env://VAR only")
    name, _, digest_text = a.image.partition("@")
    if not digest_text:
        _fail(f"sign {a.image}: sign a digest, never a tag")
    key = parse_signing_key(os.environ[a.key.removeprefix("env://")].encode(), "COSIGN_KEY",
                            password=password_from_env())
    host, _, repository = name.partition("/")
    digest = Digest.parse(digest_text)
    repo = InMemoryRepository(name)
    payload = simple_signing_payload(digest, name)
    sig = base64.b64encode(key.sign(payload)).decode()
    append_layer(repo, digest, "sig", payload,
                 "application/vnd.dev.cosign.simplesigning.v1+json",
                 {"dev.cosignproject.cosign/signature": sig})
    token = json.loads(auth.read_text())["auths"][host]["auth"]
    push_repository(repo, f"http://{host}", repository, {"Authorization": f"Basic {token}"})
    print(f"Pushing signature to: {name}")


def kubectl(argv: Sequence[str]) -> None:
    """``kubectl set image deployment/NAME CONTAINER=IMAGE``, recorded in the state directory."""
    if argv[:2] != ["set", "image"] or len(argv) != 4:
        _fail(f"kubectl {argv[:2]}: not stood in for")
    with (_state() / "deployed").open("a") as f:
        f.write(f"{argv[2]} {argv[3]}\n")


def main(argv: Sequence[str]) -> None:
    """Dispatch ``TOOL ARGS…`` to the stand-in for ``TOOL``."""
    tools = {"buildah": buildah, "docker": docker, "kaniko": kaniko, "trivy": trivy,
             "cosign": cosign, "kubectl": kubectl}
    tools[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])

"""Webhook fixtures: cosign-format signed images in the real registry, rules, and servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from admission.serve_harness import RedisServer, ServeProcess, start_redis, start_serve
from fixture_paths import FIXTURES
from imggate.models import Digest
from registry_harness import MissingComponentError, Registry, missing_component
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository


@dataclass(frozen=True)
class Images:
    """Images pushed for the webhook tests: ``signed[name]`` / ``unsigned[name]`` -> digest."""

    registry: Registry
    signed: dict[str, Digest]
    unsigned: dict[str, Digest]

    def ref(self, repository: str, tag: str = "v1") -> str:
        """``127.0.0.1:PORT/repository:tag``."""
        return self.registry.ref(repository, tag)


SIGNED = ("adm/signed", "adm/rs", "adm/mutate", "adm/nomutate", "adm/dry", "adm/scanned",
          "adm/clean", "adm/shared", "adm/burst", "adm/warned")
UNSIGNED = ("adm/unsigned",)


@pytest.fixture(scope="session")
def webhook_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[CosignFormatSigner, Path]:
    """The signing key the webhook's rules trust."""
    signer = CosignFormatSigner()
    path = tmp_path_factory.mktemp("webhook-keys") / "release.pub"
    path.write_bytes(signer.public_pem)
    return signer, path


@pytest.fixture(scope="session")
def images(anon_registry: Registry, webhook_key: tuple[CosignFormatSigner, Path]) -> Images:
    """One image per repository, tag v1; those in SIGNED carry a cosign signature."""
    signer, _ = webhook_key
    signed, unsigned = {}, {}
    for name in (*SIGNED, *UNSIGNED):
        repo = InMemoryRepository(f"{anon_registry.host}/{name}")
        digest = make_image(repo, tag="v1")
        if name in SIGNED:
            signer.sign_image(repo, digest)
            signed[name] = digest
        else:
            unsigned[name] = digest
        push_repository(repo, anon_registry.url, name)
    return Images(anon_registry, signed, unsigned)


def rules_text(host: str, key: Path) -> str:
    """Rules with dev, prod (signed, local registry only, no latest) and scanned envs."""
    return json.dumps({
        "version": 1,
        "default_env": "dev",
        "environments": {
            "dev": {"aliases": ["dev-*"]},
            "prod": {
                "aliases": ["prod-*"],
                "tags": {"deny": ["latest"]},
                "registries": {"allowed": [host]},
                "signatures": {"keys": [str(key)]},
                "severity": {"fail_on": "Critical"},
                "age": {"max_days": 100000, "mode": "warn"},
                "images": [{"match": f"{host}/adm/nomutate", "mutate": False},
                           {"match": f"{host}/adm/warned",
                            "labels": {"required": ["team"], "mode": "warn"}}],
            },
            "scanned": {"aliases": ["scanned-*"],
                        "severity": {"require_report": True, "fail_on": "High"}},
        },
        "namespaces": {"exempt": ["kube-system"], "map": [{"match": "shop-*", "env": "prod"}],
                       "exempt_images": [f"{host}/adm/exempt-*"]},
    }, indent=2)


def trivy_report_for(repository: str, digest: Digest, fixture: str) -> bytes:
    """A real Trivy report re-bound (RepoDigests) to ``repository@digest``."""
    doc = json.loads((FIXTURES / "trivy" / fixture).read_text())
    doc["Metadata"]["RepoDigests"] = [f"{repository}@{digest}"]
    doc["ArtifactName"] = f"{repository}@{digest}"
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class Webhook:
    """A running webhook with its rules file and reports directory."""

    server: ServeProcess
    rules: Path
    reports: Path


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory, images: Images,
            webhook_key: tuple[CosignFormatSigner, Path]) -> Iterator[Webhook]:
    """``imggate serve`` over TLS with the rules above and a reports directory."""
    work = tmp_path_factory.mktemp("webhook")
    rules = work / "rules.yaml"
    rules.write_text(rules_text(images.registry.host, webhook_key[1]))
    reports = work / "reports"
    reports.mkdir()
    server = start_serve(work, ["--rules", str(rules), "--insecure-ignore-tlog",
                                "--reports-dir", str(reports), "--deadline", "6"])
    yield Webhook(server, rules, reports)
    server.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on loopback."""
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except MissingComponentError as e:
        missing_component(str(e))
    yield server
    server.stop()

"""Load the real cosign fixtures (``tests/fixtures/cosign``) into repositories.

Where a case has no ``.sig`` manifest (containers/image and stackrox keep only
payload + annotations), the manifest is rebuilt around the *exact* payload
bytes and annotation values, the way cosign lays them out; nothing signed is
re-created.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fixture_paths import FIXTURES as _FIXTURES
from imggate.models import Digest, SignatureCheck
from imggate.registry.interface import Repository
from imggate.signatures import TrustConfig, check_signatures, default_requirement, evaluate
from signatures.cosign_format_signer import SIMPLESIGNING, append_layer
from signatures.inmemory import InMemoryRepository

FIXTURES = _FIXTURES / "cosign"

ANNOTATION_FILES = {
    "signature.b64": "dev.cosignproject.cosign/signature",
    "certificate.pem": "dev.sigstore.cosign/certificate",
    "chain.pem": "dev.sigstore.cosign/chain",
    "rekor-bundle.json": "dev.sigstore.cosign/bundle",
}


def case_dir(name: str) -> Path:
    """The directory of one fixture case."""
    return FIXTURES / name


def case_json(name: str) -> dict[str, Any]:
    """A case's ``case.json``."""
    data: dict[str, Any] = json.loads((case_dir(name) / "case.json").read_text())
    return data


def annotations(name: str, *, signature: str = "signature.b64",
                drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The layer annotations of a case, read from its exact files."""
    d = case_dir(name)
    out = {}
    for fname, key in ANNOTATION_FILES.items():
        src = signature if fname == "signature.b64" else fname
        if fname in drop or not (d / src).exists():
            continue
        out[key] = (d / src).read_text()
    return out


def signed_repo(name: str, *, payload: str = "payload.json", signature: str = "signature.b64",
                digest: Digest | None = None, drop: tuple[str, ...] = (),
                ann_override: dict[str, str] | None = None,
                repo: InMemoryRepository | None = None,
                media_type: str = SIMPLESIGNING) -> tuple[InMemoryRepository, Digest]:
    """A repository holding the case's signature layer under the image's ``.sig`` tag."""
    c = case_json(name)
    d = case_dir(name)
    repo = repo or InMemoryRepository()
    image = c.get("image") or next(iter(c["images"].values()))
    subject = digest or Digest.parse(image["digest"])
    manifest_file = image.get("manifest_file")
    if manifest_file and digest is None:
        repo.put_file(d / manifest_file)
    ann = annotations(name, signature=signature, drop=drop)
    ann.update(ann_override or {})
    append_layer(repo, subject, "sig", (d / payload).read_bytes(), media_type, ann)
    return repo, subject


def run(repo: Repository, digest: Digest, trust: TrustConfig,
        **kw: Any) -> tuple[SignatureCheck, ...]:
    """``check_signatures`` synchronously."""
    return asyncio.run(check_signatures(repo, digest, trust, **kw))


def passes(checks: tuple[SignatureCheck, ...], trust: TrustConfig,
           threshold: int | None = None) -> bool:
    """Whether cosign's default requirement holds."""
    return evaluate(default_requirement(trust, threshold), checks)[0]

"""Inclusion proofs (RFC 9162) and checkpoints: real Rekor data, and trees built here."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imggate.signatures.merkle import leaf_hash, verify_bundle_proof, verify_inclusion
from imggate.signatures.rekor import TlogError
from imggate.signatures.trustroot import production_trusted_root
from signatures.fixture_cases import case_dir

TLE: dict[str, Any] = json.loads(
    (case_dir("bundle-cosign-oci-attestation") / "bundle.sigstore.json").read_bytes()
)["verificationMaterial"]["tlogEntries"][0]


def _node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def tree_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH, written straight from the definition."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return _node(tree_root(leaves[:k]), tree_root(leaves[k:]))


def audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return [*audit_path(index, leaves[:k]), tree_root(leaves[k:])]
    return [*audit_path(index - k, leaves[k:]), tree_root(leaves[:k])]


@given(st.integers(min_value=1, max_value=70), st.data())
def test_every_leaf_of_every_tree_size_proves(size: int, data: st.DataObject) -> None:
    leaves = [leaf_hash(b"entry %d" % i) for i in range(size)]
    root = tree_root(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = audit_path(index, leaves)
    verify_inclusion(leaves[index], index, size, path, root)
    with pytest.raises(TlogError):
        verify_inclusion(leaf_hash(b"other"), index, size, path, root)
    if size > 1:
        with pytest.raises(TlogError):
            verify_inclusion(leaves[index], (index + 1) % size, size, path, root)


def test_real_rekor_proof_and_checkpoint() -> None:
    assert verify_bundle_proof(TLE, production_trusted_root()) is True


def _b64_flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("mutate", ["hash", "root", "size", "checkpoint-sig", "body", "no-sig"])
def test_tampered_real_proof_fails(mutate: str) -> None:
    tle = copy.deepcopy(TLE)
    proof = tle["inclusionProof"]
    if mutate == "hash":
        proof["hashes"][3] = _b64_flip(proof["hashes"][3])
    elif mutate == "root":
        proof["rootHash"] = _b64_flip(proof["rootHash"])
    elif mutate == "size":
        proof["treeSize"] = str(int(proof["treeSize"]) + 1)
    elif mutate == "body":
        tle["canonicalizedBody"] = _b64_flip(tle["canonicalizedBody"])
    else:
        note, _, sig = proof["checkpoint"]["envelope"].partition("\n\n")
        if mutate == "no-sig":
            proof["checkpoint"]["envelope"] = note + "\n\n"
        else:
            name, blob = sig.rstrip("\n").rsplit(" ", 1)
            proof["checkpoint"]["envelope"] = f"{note}\n\n{name} {_b64_flip(blob)}\n"
    with pytest.raises(TlogError):
        verify_bundle_proof(tle, production_trusted_root())


def test_no_proof_means_set_only() -> None:
    tle = {k: v for k, v in TLE.items() if k != "inclusionProof"}
    assert verify_bundle_proof(tle, production_trusted_root()) is False

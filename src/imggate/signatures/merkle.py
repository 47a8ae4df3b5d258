"""Transparency log inclusion proofs (RFC 9162 §2.1.3.2) and signed checkpoints.

Sigstore bundles carry, beside the SET, an inclusion proof: the audit path
from the entry's leaf (``SHA-256(0x00 || canonicalizedBody)``) to a root hash,
and a checkpoint (a signed note: ``origin\\nsize\\nbase64(root)\\n…`` then a
blank line and ``— name base64(keyhint[4] || signature)`` lines) signed by
the same log key. Verifying both proves the entry is in the log the trusted
key commits to, not only that the log promised to add it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from typing import Any

from imggate.signatures.keys import BadSignature, verify_raw
from imggate.signatures.rekor import TlogError
from imggate.signatures.trustroot import SigstoreTrustRoot

_EM_DASH = "\u2014"
_MAX_PROOF = 64


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_hash(body: bytes) -> bytes:
    """The RFC 6962 leaf hash of a log entry body."""
    return hashlib.sha256(b"\x00" + body).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes],
                     root: bytes) -> None:
    """The audit ``path`` leads from ``leaf`` at ``index`` to ``root`` of a ``size`` tree."""
    if not 0 <= index < size:
        raise TlogError("inclusion proof index is outside the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise TlogError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise TlogError("inclusion proof does not lead to the logged root hash")


def verify_checkpoint(envelope: str, log_id: bytes, root: SigstoreTrustRoot,
                      size: int, root_hash: bytes) -> None:
    """The checkpoint is signed by the log ``log_id`` and commits to ``size``/``root_hash``."""
    if envelope.count("\n\n") != 1:
        raise TlogError("checkpoint is not a signed note")
    split = envelope.index("\n\n")
    note, sigs = envelope[:split + 1], envelope[split + 2:]
    lines = note.split("\n")
    if len(lines) < 4:
        raise TlogError("checkpoint note is too short")
    try:
        if int(lines[1]) != size or base64.b64decode(lines[2], validate=True) != root_hash:
            raise TlogError("checkpoint does not commit to the proof's tree size and root")
    except (ValueError, binascii.Error):
        raise TlogError("checkpoint note is malformed") from None
    log = root.tlog(log_id)
    if log is None:
        raise TlogError("checkpoint log is not in the trusted root")
    for line in sigs.split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _EM_DASH:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            continue
        if len(blob) < 5 or blob[:4] != log_id[:4]:
            continue
        try:
            verify_raw(log.key, blob[4:], note.encode())
        except BadSignature:
            raise TlogError("checkpoint signature does not verify") from None
        return
    raise TlogError("checkpoint carries no signature by the trusted log key")


def verify_bundle_proof(tle: Any, root: SigstoreTrustRoot) -> bool:
    """Check a bundle tlog entry's inclusion proof and checkpoint when present.

    Returns ``False`` when the entry has no proof (the SET then stands alone);
    raises :class:`TlogError` when a proof is present but does not hold.
    """
    proof = tle.get("inclusionProof") if isinstance(tle, dict) else None
    if proof is None:
        return False
    try:
        body = base64.b64decode(tle["canonicalizedBody"], validate=True)
        log_id = base64.b64decode(tle["logId"]["keyId"], validate=True)
        index, size = int(proof["logIndex"]), int(proof["treeSize"])
        root_hash = base64.b64decode(proof["rootHash"], validate=True)
        hashes = [base64.b64decode(h, validate=True) for h in proof.get("hashes") or []]
        envelope = proof["checkpoint"]["envelope"]
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise TlogError("bundle inclusion proof is malformed") from None
    if len(hashes) > _MAX_PROOF or not isinstance(envelope, str):
        raise TlogError("bundle inclusion proof is malformed")
    verify_inclusion(leaf_hash(body), index, size, hashes, root_hash)
    verify_checkpoint(envelope, log_id, root, size, root_hash)
    return True

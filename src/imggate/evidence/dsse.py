"""Writing what ``cosign attest --key`` writes: an in-toto statement in a signed DSSE envelope.

Byte layout (cosign, go-securesystemslib ``dsse``; the tests compare bytes):

* statement: compact JSON ``{"_type": "https://in-toto.io/Statement/v0.1",
  "predicateType": …, "subject": [{"name": repo, "digest": {"sha256": hex}}],
  "predicate": …}`` in that key order;
* signature: over the DSSE v1 pre-authentication encoding
  ``DSSEv1 <len(type)> <type> <len(payload)> <payload>`` of the statement
  bytes (:func:`imggate.signatures.attestations.pae`, shared with the verifier);
* envelope: compact ``{"payloadType": "application/vnd.in-toto+json",
  "payload": std-base64(statement), "signatures": [{"keyid": "", "sig": std-base64}]}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from imggate.evidence.signing_keys import SigningKey
from imggate.models import Digest
from imggate.signatures.attestations import IN_TOTO_PAYLOAD_TYPE, pae

STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"


def compact(doc: Any) -> bytes:
    """Compact JSON as Go's encoder writes it (no spaces; UTF-8, not ``\\u`` escapes)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def statement(subject_name: str, digest: Digest, predicate_type: str,
              predicate: Mapping[str, Any]) -> bytes:
    """An in-toto v0.1 statement about one image, as cosign's ``GenerateStatement`` makes it."""
    return compact({
        "_type": STATEMENT_V01,
        "predicateType": predicate_type,
        "subject": [{"name": subject_name, "digest": {digest.algorithm: digest.hex}}],
        "predicate": dict(predicate),
    })


def envelope(payload: bytes, signature: bytes,
             payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    """The DSSE envelope bytes for ``payload`` and one signature (cosign's empty ``keyid``)."""
    return compact({
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    })


def sign_statement(key: SigningKey, payload: bytes) -> bytes:
    """Sign an in-toto statement over its PAE and wrap it: the ``.att`` layer blob."""
    return envelope(payload, key.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload)))

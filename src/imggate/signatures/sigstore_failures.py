"""imggate's words for sigstore-python's verification failures.

sigstore-python reports every failed step as one ``VerificationError`` whose
message is the library's; imggate shows its own phrase for the step instead
(project rule: reasons are imggate's words, never a library's message text),
and names only the exception class for a message it does not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from imggate.signatures.keyless import CertificateError, verify_fulcio_chain
from imggate.signatures.timestamped import TimestampError, bundle_certificate, tlog_entries
from imggate.signatures.trustroot import SigstoreTrustRoot

# sigstore-python raises one VerificationError type for every step; its message's opening
# words say which step failed. They are matched here to choose imggate's phrase and never
# shown: an unknown message gets the generic phrase.
_SIGSTORE_STEPS: tuple[tuple[str, str], ...] = (
    ("failed to build timestamp certificate chain",
     "the certificate does not chain to a trusted Fulcio CA at the logged time"),
    ("not enough sources of verified time",
     "no verified time for the signature (no usable log entry or timestamp)"),
    ("failed to verify SCT",
     "the certificate's embedded SCT does not verify against a trusted CT log"),
    ("Key usage is not", "the certificate is not for digital signatures"),
    ("Extended usage does not", "the certificate lacks the code-signing extended key usage"),
    ("invalid log entry",
     "the transparency log entry does not verify (inclusion promise, proof or checkpoint)"),
    ("invalid signing cert", "the logged time is outside the certificate's validity"),
    ("DSSE: invalid signature", "the DSSE envelope's signature does not verify with the "
                                "certificate's key"),
    ("DSSE: exactly 1 signature", "the DSSE envelope must carry exactly one signature"),
    ("cannot perform DSSE verification", "the bundle has no DSSE envelope"),
    ("invalid DSSE log entry", "the transparency log entry does not record this envelope"),
    ("expected SHA256 payload hash",
     "the transparency log entry does not record this envelope"),
    ("log entry payload hash does not match",
     "the transparency log entry records another payload"),
    ("log entry signatures do not match",
     "the transparency log entry records other signatures"),
    ("Unsupported DSSE log entry type",
     "the transparency log entry is of a kind imggate does not verify"),
    ("too many signed timestamp", "the bundle carries too many RFC 3161 timestamps"),
    ("duplicate timestamp", "the bundle carries the same RFC 3161 timestamp twice"),
    ("no Timestamp Authorities", "the bundle has an RFC 3161 timestamp and the trusted root "
                                 "no timestamp authority"),
    ("Integrated time only supported",
     "the transparency log entry is of a kind imggate does not verify"),
)


def sigstore_failure(e: BaseException, doc: Any = None,
                     root: SigstoreTrustRoot | None = None) -> str:
    """imggate's words for a sigstore-python verification failure (never the library's).

    A chain failure is diagnosed again by imggate's own chain check at the
    bundle's logged time (given ``doc`` and ``root``), which says which check failed.
    """
    from sigstore.errors import CertValidationError

    if isinstance(e, CertValidationError):
        return (_chain_failure(doc, root) if root is not None else None) or \
            "the certificate does not chain to a trusted Fulcio CA at the logged time"
    text = str(e)
    for opening, phrase in _SIGSTORE_STEPS:
        if text.startswith(opening):
            return phrase
    return f"Sigstore verification failed ({type(e).__name__})"


def _chain_failure(doc: Any, root: SigstoreTrustRoot) -> str | None:
    """imggate's own chain check at the bundle's logged time, when it fails (else None).

    The logged time is the entry's unverified ``integratedTime``: it only
    words a failure that sigstore-python has already decided.
    """
    entries = tlog_entries(doc)
    first = entries[0] if entries and isinstance(entries[0], dict) else {}
    try:
        when = datetime.fromtimestamp(int(first.get("integratedTime", "")), UTC)
        leaf = bundle_certificate(doc)
        verify_fulcio_chain(leaf, root, when)
    except (ValueError, OverflowError, OSError, TimestampError):
        return None
    except CertificateError as e:
        return str(e)
    return None

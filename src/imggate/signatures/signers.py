"""Which trust anchor, if any, vouches for a signed attachment.

Shared by ``.sig`` signatures and ``.att`` attestations: both carry the same
annotations (certificate, chain, Rekor bundle) and differ only in what bytes
are signed and what the Rekor body must contain. Work that does not depend
on the anchor (parsing the certificate, the SET, the Fulcio chain) is done
once per attachment, whatever the number of anchors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from msgspec import Struct, field

from imggate.signatures.interface import (
    ANN_BUNDLE,
    ANN_CERTIFICATE,
    ANN_CHAIN,
    Attachment,
    CertificateAuthority,
    Identity,
    TrustConfig,
)
from imggate.signatures.keys import (
    BadSignature,
    CertificateError,
    TrustedKey,
    VerifyingKey,
    certificate_key,
    verify_raw,
)
from imggate.signatures.rekor import RekorEntry, TlogError, parse_rekor_bundle, verify_set

if TYPE_CHECKING:
    from cryptography import x509

# imggate.signatures.keyless (and with it cryptography.x509, ~20-30 ms to import) is
# imported where a certificate is read: a check with keys only never needs it (issue 22).
logger = logging.getLogger("imggate.signatures")

#: Checks a Rekor body against (entry, the signature that verified, the signer
#: as a certificate or the DER SPKI of a key); raises :class:`TlogError`.
EntryCheck = Callable[[RekorEntry, bytes, "x509.Certificate | bytes"], None]


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class SignedContent(Struct, frozen=True):
    """What an attachment signs: the exact bytes, the candidate signatures, the body rule."""

    data: bytes
    signatures: tuple[bytes, ...]
    check_entry: EntryCheck


class SignerResult(Struct, frozen=True):
    """Who verified (``signer`` is ``None`` when nobody did), with or without a tlog entry."""

    signer: str | None
    tlog: bool
    reason: str
    #: The Fulcio certificate's build claims when a keyless identity verified.
    claims: Mapping[str, str] = field(default_factory=dict)


def verify_any(key: VerifyingKey, content: SignedContent) -> bytes:
    """The first signature that ``key`` verifies over the content; :class:`BadSignature` else."""
    for sig in content.signatures:
        try:
            verify_raw(key, sig, content.data)
        except BadSignature:
            continue
        return sig
    raise BadSignature("signature does not verify with this key")


class _Material:
    """Certificate and Rekor evidence of one attachment, parsed lazily and once."""

    def __init__(self, att: Attachment, trust: TrustConfig) -> None:
        self.att = att
        self.trust = trust
        self._cert: x509.Certificate | None = None
        self._cert_error: str | None = None
        self._cert_done = False
        self._entry: RekorEntry | None = None
        self._entry_error: str | None = None
        self._entry_done = False
        self._fulcio: tuple[tuple[str, ...], str] | str | None = None

    def cert(self) -> x509.Certificate:
        if not self._cert_done:
            self._cert_done = True
            pem = self.att.annotations.get(ANN_CERTIFICATE)
            if not pem:
                self._cert_error = "no certificate on the signature"
            else:
                from imggate.signatures.keyless import load_certificate

                try:
                    self._cert = load_certificate(pem, "signature certificate")
                except CertificateError as e:
                    self._cert_error = str(e)
        if self._cert is None:
            raise CertificateError(self._cert_error or "no certificate")
        return self._cert

    def entry(self) -> RekorEntry:
        """The SET-verified Rekor entry; :class:`TlogError` when absent or invalid."""
        if not self._entry_done:
            self._entry_done = True
            text = self.att.annotations.get(ANN_BUNDLE)
            if not text:
                self._entry_error = "no Rekor entry (dev.sigstore.cosign/bundle) on the signature"
            else:
                try:
                    entry = parse_rekor_bundle(text)
                    errors = []
                    for root in self.trust.roots():  # the root whose Rekor logged it
                        try:
                            verify_set(entry, root)
                        except TlogError as e:
                            errors.append(str(e))
                            continue
                        self._entry = entry
                        break
                    else:
                        raise TlogError(errors[0])
                except TlogError as e:
                    self._entry_error = str(e)
        if self._entry is None:
            raise TlogError(self._entry_error or "no Rekor entry")
        return self._entry

    def fulcio(self) -> tuple[tuple[str, ...], str]:
        """(SANs, issuer) of a Fulcio certificate valid at the logged time; raises otherwise."""
        if self._fulcio is None:
            from imggate.signatures.keyless import (
                identities,
                oidc_issuer,
                verify_fulcio_chain,
                verify_sct,
            )

            try:
                cert = self.cert()
                entry = self.entry()
                errors: list[str] = []
                for root in self.trust.roots():  # the root whose Fulcio issued it
                    try:
                        chain = verify_fulcio_chain(cert, root, entry.time)
                        verify_sct(cert, chain, root)
                    except CertificateError as e:
                        errors.append(str(e))
                        continue
                    self._fulcio = (identities(cert), oidc_issuer(cert))
                    break
                else:
                    raise CertificateError(errors[0])
            except (CertificateError, TlogError) as e:
                self._fulcio = str(e)
        if isinstance(self._fulcio, str):
            raise CertificateError(self._fulcio)
        return self._fulcio


def _tlog(mat: _Material, sig: bytes, signer: x509.Certificate | bytes,
          content: SignedContent) -> bool:
    """Check the Rekor entry for a key/PKI signature; ``False`` only when unsafely ignored."""
    if mat.trust.ignore_tlog:
        logger.warning("UNSAFE: %s: accepting %s without checking a "
                       "transparency log entry", mat.trust.ignore_tlog_by, mat.att.location)
        return False
    try:
        entry = mat.entry()
    except TlogError as e:
        raise TlogError(f"{e} (pass --insecure-ignore-tlog to accept signatures that were "
                        "never logged)") from None
    content.check_entry(entry, sig, signer)
    return True


def _tlog_note(tlog: bool) -> str:
    # Reports must show that a signature was accepted without a log entry, not only the log.
    return ", Rekor entry checked" if tlog else \
        ", UNSAFE: no transparency log entry checked (--insecure-ignore-tlog)"


def _by_key(mat: _Material, key: TrustedKey, content: SignedContent) -> SignerResult:
    sig = verify_any(key.key, content)
    tlog = _tlog(mat, sig, key.spki, content)
    return SignerResult(key.label, tlog, f"verified with key {key.label}" + _tlog_note(tlog))


def _by_identity(mat: _Material, ident: Identity, content: SignedContent) -> SignerResult:
    from imggate.signatures.keyless import fulcio_claims

    sans, issuer = mat.fulcio()
    san = ident.match(sans, issuer)
    if san is None:
        raise CertificateError(f"certificate identity {', '.join(sans)[:200]} "
                               f"(issuer {issuer[:100]}) does not match")
    cert = mat.cert()
    key = certificate_key(cert)
    sig = verify_any(key, content)
    content.check_entry(mat.entry(), sig, cert)
    return SignerResult(f"{san} ({issuer})", True,
                        f"verified keyless: {san} ({issuer}), logged at "
                        f"{mat.entry().time.isoformat()}", fulcio_claims(cert))


def _by_authority(mat: _Material, ca: CertificateAuthority,
                  content: SignedContent) -> SignerResult:
    from imggate.signatures.keyless import load_certificates, verify_pki_chain

    cert = mat.cert()
    chain_pem = mat.att.annotations.get(ANN_CHAIN)
    intermediates = load_certificates(chain_pem, "certificate chain") if chain_pem else ()
    try:
        when = mat.entry().time
    except TlogError:
        when = datetime.now(UTC)
    verify_pki_chain(cert, intermediates, ca.roots, when)
    key = certificate_key(cert)
    sig = verify_any(key, content)
    tlog = _tlog(mat, sig, cert, content)
    return SignerResult(ca.label, tlog, f"verified with a certificate issued by {ca.label}"
                        + _tlog_note(tlog))


def find_signer(att: Attachment, trust: TrustConfig, content: SignedContent) -> SignerResult:
    """Try every anchor of ``trust`` in order; the first that verifies wins.

    Never raises: every failure becomes a reason, one per anchor.
    """
    mat = _Material(att, trust)
    reasons: list[str] = []
    for anchor in trust.anchors:
        try:
            if isinstance(anchor, TrustedKey):
                return _by_key(mat, anchor, content)
            if isinstance(anchor, Identity):
                return _by_identity(mat, anchor, content)
            return _by_authority(mat, anchor, content)
        except (BadSignature, CertificateError, TlogError, ValueError) as e:
            reasons.append(f"{anchor.label}: {e}")
    if not reasons:
        return SignerResult(None, False, "no trust anchors configured")
    return SignerResult(None, False, "; ".join(reasons)[:2000])

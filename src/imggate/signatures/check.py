"""The entry point the gate and ``imggate verify`` call: discover, then verify each attachment.

``check_signatures`` returns one :class:`~imggate.models.SignatureCheck` per
signature, attestation or bundle found (verified, or why not); deciding whether
that is enough is a :class:`~imggate.signatures.interface.Requirement`'s job
(:func:`~imggate.signatures.interface.evaluate`).

Multi-arch: a signature on the index digest covers every platform manifest
in it. With ``platform_digest`` and ``trust.accept_platform_signatures``, the
platform manifest's own signatures are checked too and count as well; each
check's ``signed_digest`` says which digest it was made for.
"""

from __future__ import annotations

import logging

from imggate.errors import ConfigError, Error
from imggate.models import Digest, SignatureCheck, SignatureKind
from imggate.registry.interface import Repository
from imggate.signatures.discovery import describe, discover
from imggate.signatures.interface import (
    BUNDLE_MEDIA_TYPE,
    Attachment,
    AttachmentKind,
    TrustConfig,
)

logger = logging.getLogger("imggate.signatures")


def verify_attachment(att: Attachment, trust: TrustConfig) -> SignatureCheck:
    """Verify one attachment with the verifier for its kind; never raises.

    The verifiers turn every expected failure into a reason; anything else a
    hostile attachment might provoke is still a failed check (fail closed),
    so one odd signature cannot make the whole image undecidable.
    """
    try:
        return _verify(att, trust)
    except Error:
        raise
    except Exception as e:  # last line of defence, see docstring
        logger.debug("unexpected error verifying %s", att.location, exc_info=True)
        kind = SignatureKind.SIGNATURE if att.kind is AttachmentKind.SIGNATURE \
            else SignatureKind.ATTESTATION
        return SignatureCheck(kind, att.location, False,
                              f"could not be verified ({type(e).__name__})",
                              signed_digest=att.subject)


def _verify(att: Attachment, trust: TrustConfig) -> SignatureCheck:
    if att.kind is AttachmentKind.SIGNATURE:
        from imggate.signatures.cosign import verify_signature
        return verify_signature(att, trust)
    if att.kind is AttachmentKind.ATTESTATION:
        from imggate.signatures.attestations import verify_attestation
        return verify_attestation(att, trust)
    from imggate.signatures.bundle import verify_bundle
    return verify_bundle(att, trust)


async def check_signatures(repo: Repository, digest: Digest, trust: TrustConfig, *,
                           signature_repo: Repository | None = None,
                           platform_digest: Digest | None = None) -> tuple[SignatureCheck, ...]:
    """Every signature/attestation/bundle of ``digest`` in ``repo``, verified against ``trust``.

    Raises :class:`~imggate.errors.SignatureError` only when the registry
    cannot be asked (exit 3); anything found but bad is a failed check.
    """
    subjects = [digest]
    if (platform_digest is not None and platform_digest != digest
            and trust.accept_platform_signatures):
        subjects.append(platform_digest)
    checks: list[SignatureCheck] = []
    for subject in subjects:
        found = await discover(repo, subject, trust, signature_repo=signature_repo)
        logger.debug("%s@%s: found %s", repo.name, subject, describe(found))
        checks.extend(verify_attachment(a, trust) for a in found)
    return tuple(checks)


#: Most bundles read from one file (``gh attestation download`` writes JSON lines).
MAX_BUNDLES_PER_FILE = 64


def check_bundle_file(data: bytes, source: str, digest: Digest,
                      trust: TrustConfig) -> tuple[SignatureCheck, ...]:
    """Verify the Sigstore bundle(s) of a file for ``digest``, offline (``verify --bundle``).

    The file holds one bundle, or several as JSON lines; each is verified like a bundle
    found beside an image (signature, log or timestamp evidence, identity) and must name
    ``digest`` as its subject. Nothing is fetched. :class:`ConfigError` when the file
    holds no bundle at all.
    """
    import json

    try:
        whole = isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        whole = False
    docs = [data] if whole else [ln for ln in data.splitlines() if ln.strip()]
    if not docs or not data.strip():
        raise ConfigError(f"{source}: no Sigstore bundle in this file")
    if len(docs) > MAX_BUNDLES_PER_FILE:
        raise ConfigError(f"{source}: {len(docs)} bundles, at most {MAX_BUNDLES_PER_FILE}")
    out = []
    for i, raw in enumerate(docs):
        where = source if len(docs) == 1 else f"{source} line {i + 1}"
        out.append(verify_attachment(Attachment(AttachmentKind.BUNDLE, where, digest,
                                                BUNDLE_MEDIA_TYPE, {}, raw), trust))
    return tuple(out)

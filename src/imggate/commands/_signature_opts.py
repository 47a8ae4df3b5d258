"""Signature flags shared by ``verify`` and ``check``, named as cosign names them."""

from __future__ import annotations

from typing import Annotated

import typer

IdentityOpt = Annotated[str | None, typer.Option(
    "--certificate-identity", help="Keyless: exact SAN (email or URI).")]
IdentityRegexpOpt = Annotated[str | None, typer.Option(
    "--certificate-identity-regexp", help="Keyless: SAN regular expression.")]
IssuerOpt = Annotated[str | None, typer.Option(
    "--certificate-oidc-issuer", help="Keyless: exact OIDC issuer.")]
IssuerRegexpOpt = Annotated[str | None, typer.Option(
    "--certificate-oidc-issuer-regexp", help="Keyless: OIDC issuer regexp.")]
IgnoreTlogOpt = Annotated[bool, typer.Option(
    "--insecure-ignore-tlog", help="UNSAFE: accept key signatures with no Rekor entry.")]
TrustedRootOpt = Annotated[str | None, typer.Option(
    "--trusted-root", help="Sigstore trusted_root.json (default: production).")]
SignatureRepositoryOpt = Annotated[str | None, typer.Option(
    "--signature-repository",
    help="Where signatures live (default: $COSIGN_REPOSITORY, else beside the image).")]
CertificateOpt = Annotated[list[str] | None, typer.Option(
    "--certificate", help="PEM certificate whose key verifies (repeatable).")]
CertificateChainOpt = Annotated[list[str] | None, typer.Option(
    "--certificate-chain", help="PEM roots of your own PKI (repeatable).")]
TypeOpt = Annotated[list[str] | None, typer.Option(
    "--type", help="Require an attestation of this predicate type (cosign short name or URI; "
                   "repeatable). verify then checks attestations instead of signatures.")]
AttestationsOpt = Annotated[bool, typer.Option(
    "--attestations", help="Require an attestation of any predicate type (like --type "
                           "without a filter).")]
ThresholdOpt = Annotated[int | None, typer.Option(
    "--threshold", help="Require this many distinct trusted signers.", min=1)]

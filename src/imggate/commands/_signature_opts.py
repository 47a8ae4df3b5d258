"""Signature flags shared by ``verify`` and ``check``, named as cosign names them."""


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
    "--trusted-root", help="Sigstore trusted_root.json, or several as JSON lines (gh "
                           "attestation trusted-root); default: production. No TUF request "
                           "is made either way.")]
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

# ``check`` gates on the rules: each flag adds a requirement to the environment's rules
# (or overrides one) rather than choosing what to verify, so its help says so.
CheckCertificateOpt = Annotated[list[str] | None, typer.Option(
    "--certificate", help="Require a signature verified by the public key of this PEM "
                          "certificate, as --key does (repeatable).")]
CheckCertificateChainOpt = Annotated[list[str] | None, typer.Option(
    "--certificate-chain", help="Require a keyless signature whose certificate chains to "
                                "these PEM roots of your own PKI (repeatable).")]
CheckIdentityOpt = Annotated[str | None, typer.Option(
    "--certificate-identity", help="Require a keyless signature whose certificate has this "
                                   "exact SAN (email or URI); with an issuer flag.")]
CheckIdentityRegexpOpt = Annotated[str | None, typer.Option(
    "--certificate-identity-regexp", help="As --certificate-identity, a regular expression "
                                          "searched in the SAN (anchor it).")]
CheckIssuerOpt = Annotated[str | None, typer.Option(
    "--certificate-oidc-issuer", help="The exact OIDC issuer of that keyless signature.")]
CheckIssuerRegexpOpt = Annotated[str | None, typer.Option(
    "--certificate-oidc-issuer-regexp", help="As --certificate-oidc-issuer, a regular "
                                             "expression (anchor it).")]
CheckTypeOpt = Annotated[list[str] | None, typer.Option(
    "--type", help="Require a verified attestation of this predicate type (cosign short name "
                   "or URI), besides the rules' attestations.required (repeatable).")]
CheckAttestationsOpt = Annotated[bool, typer.Option(
    "--attestations", help="Require a verified attestation of any predicate type.")]
CheckThresholdOpt = Annotated[int | None, typer.Option(
    "--threshold", help="Require this many distinct trusted signers (overrides the rules' "
                        "signatures.threshold).", min=1)]

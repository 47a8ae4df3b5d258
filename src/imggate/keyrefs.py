"""Key references imggate cannot use directly: cosign's KMS and Kubernetes schemes.

cosign accepts ``--key awskms://…``, ``gcpkms://…``, ``azurekms://…``,
``hashivault://…``, ``k8s://namespace/secret`` (and ``gitlab://``,
``pkcs11:``); imggate verifies offline with public keys only. Such a
reference must be refused with what to do instead, before it is mistaken for
a file path (``Path`` would turn ``awskms:///arn`` into ``awskms:/arn``).
"""

from __future__ import annotations

import re

from imggate.errors import UsageError

_SCHEMES = ("awskms", "gcpkms", "azurekms", "hashivault", "k8s", "gitlab")
_KEY_REF = re.compile(rf"^(?:(?P<scheme>{'|'.join(_SCHEMES)})://|(?P<pkcs11>pkcs11:))",
                      re.IGNORECASE)


def unsupported_key_ref(text: str) -> str | None:
    """Why ``text`` cannot be used as a key (``None`` when it is a file path)."""
    m = _KEY_REF.match(text.strip())
    if m is None:
        return None
    scheme = (m.group("scheme") or "pkcs11").lower()
    kind = "Kubernetes secret" if scheme == "k8s" else f"{scheme} key"
    return (f"{text[:200]!r}: {kind} references are not supported: export the public key "
            f"with `cosign public-key --key {text[:200]} > cosign.pub` and pass that file")


def key_path(text: str, flag: str = "--key") -> str:
    """``text`` when it can name a key file; a :class:`UsageError` for a KMS/k8s reference."""
    why = unsupported_key_ref(text)
    if why is not None:
        raise UsageError(f"{flag} {why}")
    return text

"""In-toto predicate types by cosign's ``--type`` short names.

Shared by the rules schema and the attestation verifier; imports nothing so
either can use it without pulling in the other's stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: cosign's short names for predicate types (``cosign attest --type``).
PREDICATE_SHORT_NAMES: Mapping[str, str] = MappingProxyType({
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "link": "https://in-toto.io/Link/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
})

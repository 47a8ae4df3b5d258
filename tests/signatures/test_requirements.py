"""Requirements compose like sigstore-python's policies and fail closed when empty."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imggate.errors import ConfigError
from imggate.models import SignatureCheck, SignatureKind
from imggate.signatures import (
    AllOf,
    AnyOf,
    Identity,
    NotVerified,
    SignedBy,
    Threshold,
    TrustConfig,
    default_requirement,
    evaluate,
)
from signatures.cosign_format_signer import CosignFormatSigner

KEYS = [CosignFormatSigner().trusted(n) for n in ("alice", "bob", "carol")]


def check(signer: str | None, verified: bool = True,
          kind: SignatureKind = SignatureKind.SIGNATURE,
          ptype: str | None = None) -> SignatureCheck:
    return SignatureCheck(kind, "loc", verified, "r", signer=signer, predicate_type=ptype)


@pytest.mark.parametrize("empty", [AllOf(), AnyOf(), Threshold(1, ()), Threshold(0, (SignedBy(),))])
def test_empty_requirements_never_pass(empty) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotVerified, match="never satisfied"):
        empty.verify([check("alice")])
    assert evaluate(empty, [check("alice")])[0] is False


def test_default_requirement_without_anchors_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no trust anchors"):
        default_requirement(TrustConfig())


def test_duplicate_labels_are_rejected() -> None:
    with pytest.raises(ConfigError, match="share a label"):
        TrustConfig(keys=(KEYS[0], KEYS[0]))


def test_unverified_checks_never_count() -> None:
    req = SignedBy(KEYS[0])
    assert not req.satisfied([check("alice", verified=False)])
    assert req.satisfied([check("alice")])


def test_kind_and_predicate_type_must_match() -> None:
    att = check("alice", kind=SignatureKind.ATTESTATION, ptype="https://slsa.dev/provenance/v1")
    assert not SignedBy(KEYS[0]).satisfied([att])
    assert SignedBy(KEYS[0], SignatureKind.ATTESTATION).satisfied([att])
    assert not SignedBy(KEYS[0], SignatureKind.ATTESTATION, "https://x").satisfied([att])


def test_identity_anchor_matches_signer_text() -> None:
    ident = Identity(identity_regexp=r"@example\.com$", issuer="https://issuer")
    assert SignedBy(ident).satisfied([check("a@example.com (https://issuer)")])
    assert not SignedBy(ident).satisfied([check("a@example.com (https://other)")])
    assert not SignedBy(ident).satisfied([check("a@evil.com (https://issuer)")])


def test_invalid_identity_configs() -> None:
    with pytest.raises(ConfigError):
        Identity(identity="a", identity_regexp="b", issuer="x")
    with pytest.raises(ConfigError):
        Identity(identity="a")
    with pytest.raises(ConfigError) as caught:
        Identity(identity_regexp="(", issuer="x")
    # imggate's words and where, not the re module's ("missing ), unterminated subpattern").
    assert caught.value.message == ("invalid regular expression '(': it does not compile "
                                    "at position 0")


def test_nested_composition() -> None:
    a, b, c = (SignedBy(k) for k in KEYS)
    req = AllOf((a, AnyOf((b, c))))
    assert req.satisfied([check("alice"), check("carol")])
    assert not req.satisfied([check("bob"), check("carol")])
    met, why = evaluate(req, [check("alice")])
    assert not met and "bob" in why


@given(st.lists(st.sampled_from(["alice", "bob", "carol", "mallory"]), max_size=8),
       st.integers(min_value=1, max_value=4))
def test_threshold_counts_distinct_anchors(signers: list[str], k: int) -> None:
    req = Threshold(k, tuple(SignedBy(key) for key in KEYS))
    distinct = len(set(signers) - {"mallory"})
    assert req.satisfied([check(s) for s in signers]) is (distinct >= k)


def test_requirements_are_frozen_values() -> None:
    a, b = (SignedBy(k) for k in KEYS[:2])
    req = AllOf((a, AnyOf((b,)), Threshold(1, (a, b))))
    same = AllOf((SignedBy(KEYS[0]), AnyOf((SignedBy(KEYS[1]),)), Threshold(1, (a, b))))
    assert req == same and hash(req) == hash(same) and len({req, same}) == 1
    assert AllOf((a,)) != AnyOf((a,)) and AnyOf((a,)) != AnyOf((b,)) and AllOf() == AllOf()
    assert repr(AnyOf((a,))) == f"AnyOf(children=({a!r},))"
    for value, name in ((req, "children"), (a, "kind"), (Threshold(1, ()), "k")):
        with pytest.raises(AttributeError):
            setattr(value, name, None)

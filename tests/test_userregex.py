"""Every validation regex anchors at the very end: a final newline never slips through.

Python's ``$`` matches before a final newline; cosign, Go and JSON Schema do
not. These tests each failed before the patterns were made exact.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imggate.formats.gitlab import _vector_ok
from imggate.formats.html import safe_url
from imggate.models import Digest
from imggate.policy.checks import parse_signer
from imggate.policy.patterns import tag_matches
from imggate.signatures import (
    Identity,
    TrustConfig,
    check_signatures,
    default_requirement,
    evaluate,
)
from imggate.userregex import compile_user_regex, go_anchors, user_search
from signatures.cosign_format_signer import CosignFormatSigner, make_image, simple_signing_payload
from signatures.inmemory import InMemoryRepository

HEX = "ab" * 32


def test_digest_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid digest"):
        Digest.parse(f"sha256:{HEX}\n")
    assert str(Digest.parse(f"sha256:{HEX}")) == f"sha256:{HEX}"


def test_signed_payload_whose_digest_ends_in_newline_does_not_verify() -> None:
    """The reported attack: a genuine signature over ``sha256:<hex>\\n`` is not a signature of
    ``sha256:<hex>`` (cosign compares the strings exactly)."""
    signer = CosignFormatSigner()
    repo = InMemoryRepository()
    image = make_image(repo)
    signer.sign_image(repo, image, payload=simple_signing_payload(f"{image}\n"))
    trust = TrustConfig(keys=(signer.trusted("k"),), ignore_tlog=True)
    checks = asyncio.run(check_signatures(repo, image, trust))
    assert checks and not any(c.verified for c in checks)
    assert "invalid digest" in checks[0].reason
    assert not evaluate(default_requirement(trust, None), checks)[0]


def test_identity_regexp_dollar_means_end_of_text() -> None:
    ident = Identity(identity_regexp=r"^https://github\.com/org/app/.*@refs/tags/v1$",
                     issuer_regexp=r"^https://token\.actions\.githubusercontent\.com$")
    good = "https://github.com/org/app/.github/workflows/r.yml@refs/tags/v1"
    issuer = "https://token.actions.githubusercontent.com"
    assert ident.matches_identity(good)
    assert not ident.matches_identity(good + "\n")
    assert ident.matches_issuer(issuer)
    assert not ident.matches_issuer(issuer + "\n")


def test_rules_regexes_use_go_dollar() -> None:
    assert tag_matches("v[0-9]+", "v1")
    assert not tag_matches("v[0-9]+$", "v1\n")
    assert compile_user_regex("^team-a$").search("team-a") is not None
    assert compile_user_regex("^team-a$").search("team-a\n") is None
    # Multi-line patterns mean "end of any line" in Go too: left as written.
    assert user_search("(?m)^a$", "a\nb")


def test_signer_label_with_trailing_newline_is_not_split() -> None:
    assert parse_signer("me@example.com (https://issuer)") == ("me@example.com", "https://issuer")
    assert parse_signer("me@example.com (https://issuer)\n")[1] is None


def test_report_patterns_are_exact() -> None:
    vec = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert _vector_ok(vec)
    assert not _vector_ok(vec + "\n")
    assert safe_url("https://example.com/a") == "https://example.com/a"
    assert safe_url("https://example.com/a\n\njavascript:x") is None


@pytest.mark.parametrize(("pattern", "rewritten"), [
    ("^a$", r"^a\Z"), (r"a\$", r"a\$"), ("[$]", "[$]"), ("[]$]", "[]$]"),
    ("[^]$]$", r"[^]$]\Z"), ("(a|$)", r"(a|\Z)"), ("a$|b$", r"a\Z|b\Z"),
])
def test_go_anchors(pattern: str, rewritten: str) -> None:
    assert go_anchors(pattern) == rewritten


@settings(max_examples=300, deadline=None)
@given(pair=st.sampled_from([("^[a-z]+$", r"^[a-z]+\Z"), ("x$", r"x\Z"), ("^(a|b)*$", r"^(a|b)*\Z"),
                             ("[$a]+$", r"[$a]+\Z"), (r"\$$", r"\$\Z"), ("^$", r"^\Z")]),
       text=st.text(alphabet="ab$x\n", max_size=8))
def test_user_regex_is_the_go_meaning(pair: tuple[str, str], text: str) -> None:
    """Each pattern behaves exactly as its hand-written ``\\Z`` form, newlines or not."""
    import re

    pattern, go_form = pair
    assert user_search(pattern, text) == (re.search(go_form, text) is not None)
    if "\n" not in text:  # without a newline the two meanings of "$" agree
        assert user_search(pattern, text) == (re.search(pattern, text) is not None)

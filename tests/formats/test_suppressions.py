"""Suppressed findings as lines (JUnit's system-out, the GitLab report's scan messages)."""

from __future__ import annotations

from formats.verdict_samples import allow_image, finding
from imggate.formats.suppressions import suppression_lines
from imggate.models import Severity
from imggate.values import replace


def test_each_suppression_is_a_line_with_why_worst_first() -> None:
    iv = replace(allow_image(), suppressed=(
        (finding(1, Severity.LOW), "exception rules.yaml:3: patched"),
        (finding(2, Severity.CRITICAL), "openvex-attestation openvex attestation r@sha256:ab "
                                        "signed by ci: Sec, 2026-11-20T10:00:00Z: "
                                        "not_affected (component_not_present)")))
    lines = suppression_lines(iv)
    assert lines[0].startswith("CVE-2024-00002 (Critical")
    assert lines[0].endswith(": suppressed by openvex-attestation openvex attestation "
                             "r@sha256:ab signed by ci: Sec, 2026-11-20T10:00:00Z: "
                             "not_affected (component_not_present)")
    assert lines[1].startswith("CVE-2024-00001 (Low") and "patched" in lines[1]


def test_the_list_is_bounded_and_says_how_many_more() -> None:
    iv = replace(allow_image(), suppressed=tuple(
        (finding(i, Severity.MEDIUM), "exception x.yaml:1: ok") for i in range(5)))
    lines = suppression_lines(iv, limit=3)
    assert len(lines) == 4
    assert lines[-1] == "and 2 more suppressed finding(s): see imggate-verdict.json"
    assert suppression_lines(replace(iv, suppressed=())) == []

"""Suppressed findings as lines of text, for the outputs that list them that way.

Every output lists every suppression with why (the exception's kind, source and reason;
for a signed OpenVEX attestation, where it was found, who signed it, the document's
author and timestamp, the status and justification): the console groups them, the HTML
report and verdict JSON carry them as data, and JUnit (a testcase's ``system-out``) and
the GitLab report (``scan.messages``) carry these lines.
"""

from __future__ import annotations

from imggate.formats.verdict_json import finding_sort_key
from imggate.models import ImageVerdict, describe_finding

#: Most suppressions listed per image as lines; the rest are counted in a last line.
MAX_LINES = 1000


def suppression_lines(iv: ImageVerdict, limit: int = MAX_LINES) -> list[str]:
    """``"<finding>: suppressed by <why>"`` per suppressed finding, worst first."""
    ordered = sorted(iv.suppressed, key=lambda p: finding_sort_key(p[0]))
    lines = [f"{describe_finding(f)}: suppressed by {why}" for f, why in ordered[:limit]]
    if len(ordered) > limit:
        lines.append(f"and {len(ordered) - limit} more suppressed finding(s): see "
                     "imggate-verdict.json")
    return lines

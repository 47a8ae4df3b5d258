"""A huge ``.trivyignore``: linear to read and apply, and reports list a bounded number
of unused entries and count the rest.

Before: a million-line file took 141 s and 2.7 GB here, and wrote a 274 MB
verdict and a 318 MB HTML page because every unused entry was listed.
"""

from __future__ import annotations

import json
from pathlib import Path

from imggate.formats import console, html, verdict_json
from imggate.models import Severity, Verdict
from imggate.policy.allowlists import load_allowlist
from imggate.policy.engine import evaluate
from imggate.policy.exceptions import MAX_UNUSED_LISTED
from imggate.policy.loader import load_rules
from policy.policy_builders import DIGEST, NOW, evidence, finding, ref, report

ENTRIES = 50_000
FINDINGS = report(finding("CVE-2024-0001", Severity.CRITICAL), finding("CVE-2024-0002"),
                  finding("CVE-2024-0003", Severity.LOW))


def _trivyignore(tmp_path: Path) -> Path:
    path = tmp_path / ".trivyignore"
    lines = ["# accepted: tracked in APP-1", "CVE-2024-0001", "", "CVE-2024-0003 exp:2020-01-01"]
    lines += [f"CVE-2099-{i}" for i in range(ENTRIES - 2)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unused_entries_beyond_the_bound_are_counted_not_listed(tmp_path: Path) -> None:
    exceptions = load_allowlist(_trivyignore(tmp_path))
    assert len(exceptions) == ENTRIES
    iv = evaluate(evidence(ref(None, DIGEST), reports=(FINDINGS,)), load_rules().effective("dev"),
                  exceptions=exceptions, now=NOW)
    assert [f.id for f, _ in iv.suppressed] == ["CVE-2024-0001"]
    assert {f.id for f in iv.findings} == {"CVE-2024-0002", "CVE-2024-0003"}
    statuses = [u.status for u in iv.exceptions]
    assert statuses[:2] == ["used", "expired"]  # what matched is always listed
    assert statuses[2:] == ["stale"] * MAX_UNUSED_LISTED
    assert iv.exceptions_unlisted == ENTRIES - 2 - MAX_UNUSED_LISTED

    warning = next(r for r in iv.rules if r.rule == "exceptions")
    # One message per expired or unused entry (ENTRIES - 1), the first few shown.
    assert warning.messages[-1] == f"... and {ENTRIES - 1 - (len(warning.messages) - 1)} more"

    verdict = Verdict(env="dev", images=(iv,), generated=NOW)
    doc = json.loads(verdict_json.render(verdict))
    image = doc["images"][0]
    assert len(image["exceptions"]) == 2 + MAX_UNUSED_LISTED
    assert image["exceptions_unlisted"] == ENTRIES - 2 - MAX_UNUSED_LISTED
    page = html.render(verdict)
    assert f"and {ENTRIES - 2 - MAX_UNUSED_LISTED} more exceptions that matched nothing" in page
    assert len(page) < 500_000 and len(verdict_json.render(verdict)) < 200_000
    text = console.render(verdict, width=200)
    assert f"(+{ENTRIES - 2} more)" in text  # every message after the first, counted

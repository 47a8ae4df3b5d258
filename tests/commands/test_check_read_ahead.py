"""``imggate check`` of a large report as a program: the reading child, the reports it
writes, and what the parent imports while it waits, against the same check read in one
process. Every path must write the same reports (the run's time aside)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: ``python -c`` runs of the program as ``imggate`` runs it (``main()`` without
#: arguments: the early child), with read-ahead off, or with the parent always taking
#: the child for busy (what it imports meanwhile, then), or with the child told that
#: the parent waits for it before its block ("waited") or after two steps of its rows
#: ("waited-rows"). argv: the mode, then the args.
_RUN = """\
import sys
from imggate.scanners import read_ahead
mode = sys.argv.pop(1)
if mode == "alone":
    read_ahead.MIN_BYTES = 1 << 62
elif mode == "busy":
    read_ahead.ReadAhead.busy = lambda self: self.pid > 0
elif mode == "waited":
    read_ahead._waited_for = lambda fd: True
elif mode == "waited-rows":
    looks = iter([False, False, False])
    read_ahead._waited_for = lambda fd: next(looks, True)
    read_ahead._ROWS_PER_STEP = 300
writer = read_ahead.ReadAhead.writer
def said(self, *plan):
    got = writer(self, *plan)
    sys.stderr.write(f"TEST: the reports' child writes: {got is not None}\\n")
    return got
read_ahead.ReadAhead.writer = said
from imggate import gate
ahead = gate.import_ahead
def imported(request):
    sys.stderr.write("TEST: imported ahead\\n")
    ahead(request)
gate.import_ahead = imported
from imggate.formats import gitlab
many = gitlab._Renderer.many
def made(self, findings):
    got = many(self, findings)
    ahead = type(got) is gitlab._Vulnerabilities
    sys.stderr.write(f"TEST: the GitLab vulnerabilities made before the verdict: {ahead}\\n")
    return got
gitlab._Renderer.many = made
from imggate._cli import main
sys.argv[0] = "imggate"
main()
"""
#: The run's time, as each report writes it (and a report's age, measured from it).
_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?|\"age_seconds\": \d+")
_REPORTS = ("gl-container-scanning-report.json", "imggate-verdict.json", "imggate-junit.xml",
            "imggate-report.html")


@pytest.fixture(scope="module")
def large_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example's Trivy report, its entries repeated under other ids: 2,000
    findings, past the size from which a child reads reports."""
    doc = json.loads((ROOT / "examples" / "trivy-report.json").read_text())
    entries = doc["Results"][0]["Vulnerabilities"]
    many = []
    for n in range(2000):
        entry = copy.deepcopy(entries[n % len(entries)])
        entry["VulnerabilityID"] = f"CVE-2099-{n:05d}"
        many.append(entry)
    doc["Results"][0]["Vulnerabilities"] = many
    path = tmp_path_factory.mktemp("large") / "trivy.json"
    path.write_text(json.dumps(doc))
    from imggate.scanners import read_ahead

    assert path.stat().st_size >= read_ahead.MIN_BYTES
    return path


#: The example image, pinned by digest as a CI job names what it built.
_PINNED = ("oci:examples/app@sha256:"
           "f41e9a845abd009489a7f2ce16ff1294db80ee19b3cb805dfc7d45aad7bf64f5")


def _check(mode: str, report: Path, out: Path, ref: str = "oci:examples/app"
           ) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, mode, "check", ref, "--key",
         "examples/cosign.pub", "--trivy-report", str(report), "--insecure-ignore-tlog",
         "-q", "-o", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120,
        check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    writes = mode != "alone"
    assert f"TEST: the reports' child writes: {writes}" in proc.stderr or not writes
    # (Early, it depends on which of the two is first.)
    if mode in ("alone", "busy"):
        assert ("TEST: imported ahead" in proc.stderr) is (mode == "busy")
    # Made before the verdict only in the child, for the image the command line pins.
    ahead = "TEST: the GitLab vulnerabilities made before the verdict: True" in proc.stderr
    assert ahead is (writes and ref == _PINNED)
    return {name: (out / name).read_text("utf-8") for name in _REPORTS}


@pytest.mark.parametrize(("mode", "ref"), [("early", "oci:examples/app"),
                                           ("busy", "oci:examples/app"), ("early", _PINNED),
                                           ("waited", _PINNED), ("waited-rows", _PINNED)])
def test_a_large_check_writes_the_same_reports_as_one_read_in_one_process(
        mode: str, ref: str, large_report: Path, tmp_path: Path) -> None:
    alone = _check("alone", large_report, tmp_path / "alone", ref)
    ahead = _check(mode, large_report, tmp_path / mode, ref)
    verdict = json.loads(alone["imggate-verdict.json"])
    assert verdict["images"][0]["findings_total"] == 2000  # the report was used
    for name in _REPORTS:
        assert _TIME.sub("TIME", ahead[name]) == _TIME.sub("TIME", alone[name]), name

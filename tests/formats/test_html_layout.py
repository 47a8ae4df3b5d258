"""The HTML report as laid out by headless Chromium, on a laptop (1280 px) and a phone (390 px).

The report is a real one: ``imggate check`` of the bundled example, pinned, in ``prod`` with its
(old) Trivy report and its key signature accepted without a transparency log: a stale report and
an UNSAFE signature, as a reviewer meets them. A copy of the page gets a script that measures
the layout (the copy drops the page's Content-Security-Policy so the script may run; markup and
styles are the report's own) and writes what it found into the DOM, which Chromium dumps:

- no word in any table cell is split over two lines ("signatu re", "cosign.pu b");
- the UNSAFE signature and the stale report wear the warning colour, not the "verified" green.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from formats.test_html import run_chromium
from registry_harness import run_imggate

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:f41e9a845abd009489a7f2ce16ff1294db80ee19b3cb805dfc7d45aad7bf64f5"

# Runs inside the report (in an iframe of the width under test: headless Chromium will not
# make its own window narrower than 500 px) and posts what it measured to the page around it.
MEASURE = """
<script>
(() => {
  const alnum = /[A-Za-z0-9]/;
  const broken = [];
  for (const cell of document.querySelectorAll("table td, table th")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      let top = null;
      for (let i = 0; i < node.data.length; i++) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (!rect) continue;
        const here = Math.round(rect.top);
        // A line that starts between two letters or digits: a word cut in two.
        if (top !== null && here > top && i > 0 && alnum.test(node.data[i - 1])
            && alnum.test(node.data[i])) {
          broken.push(node.data.slice(Math.max(0, i - 12), i) + "|" + node.data.slice(i, i + 12));
        }
        top = here;
      }
    }
  }
  const colour = cls => {
    const probe = document.createElement("span");
    probe.className = cls;
    document.body.appendChild(probe);
    const c = getComputedStyle(probe).color;
    probe.remove();
    return c;
  };
  const states = [...document.querySelectorAll(".state")].map(
    el => ({text: el.textContent.trim(), colour: getComputedStyle(el).color}));
  parent.postMessage(JSON.stringify({
    broken, states, pass: colour("state state-pass"), warn: colour("state state-warn"),
    width: document.documentElement.clientWidth}), "*");
})();
</script>
"""

FRAME = """<!doctype html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:3000px;border:0"></iframe>
<script>
addEventListener("message", e => document.body.setAttribute("data-measured", e.data));
</script></body></html>
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("layout")
    result = run_imggate([
        "check", f"oci:{ROOT}/examples/app@{DIGEST}", "--env", "prod", "--rules",
        str(ROOT / "rules"), "--trivy-report", str(ROOT / "examples" / "trivy-report.json"),
        "--key", str(ROOT / "examples" / "cosign.pub"), "--insecure-ignore-tlog",
        "-o", str(work / "reports")])
    assert result.code == 1, result.output  # the report is older than prod's 7 days
    page = (work / "reports" / "imggate-report.html").read_text()
    measured = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    assert measured != page
    out = work / "measured.html"
    out.write_text(measured.replace("</body>", MEASURE + "</body>"))
    return out


@pytest.mark.chromium
@pytest.mark.parametrize("width", [1280, 390])
def test_tables_never_split_a_word_and_unsafe_is_not_green(report: Path, tmp_path: Path,
                                                           width: int) -> None:
    frame = report.parent / f"frame-{width}.html"
    frame.write_text(FRAME.format(src=report.name, width=width))
    done = run_chromium(tmp_path, "--dump-dom", "--window-size=1400,3000",
                        "--allow-file-access-from-files", "--virtual-time-budget=5000",
                        frame.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'data-measured="([^"]*)"', done.stdout)
    assert found, done.stdout[-2000:]
    measured = json.loads(found[1].replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["width"] <= width  # the report's own viewport
    assert measured["broken"] == [], f"words split at {width}px: {measured['broken']}"
    states = {s["text"]: s["colour"] for s in measured["states"]}
    assert measured["pass"] != measured["warn"]
    assert states["verified, UNSAFE"] == measured["warn"]
    assert states["used, suspect"] == measured["warn"]
    assert "verified" not in states  # the only signature was accepted without a tlog

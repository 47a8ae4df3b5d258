"""imggate-report.html: self-contained, escaped, complete, and right in a real browser.

The browser tests run Debian's headless Chromium. A missing chromium fails
them (in CI always; like every real-component test, only a laptop run with
``IMGGATE_SKIP_MISSING=1`` may skip): the report's promise is that it looks
right in a browser, and only a browser can check that.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape
from msgspec import structs

from formats.verdict_samples import (
    DENY_REASON,
    RTL,
    XSS_TITLE,
    allow_image,
    deny_image,
    error_image,
    real_verdict,
    sample_verdict,
    single,
)
from imggate.formats import alike, html
from imggate.models import Decision, ImageVerdict, Mode, RuleResult, Verdict
from imggate.values import replace
from registry_harness import require_tool

# ----------------------------------------------------------------- helpers


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)


class Collector(HTMLParser):
    """Every element (with attributes) and the text inside each, flat."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[Node] = []
        self.stack: list[Node] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.nodes.append(node)
        if tag not in ("meta", "input", "br", "link", "img"):
            self.stack.append(node)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data):
        self.text.append(data)
        for node in self.stack:
            node.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[Node]:
        def ok(n: Node) -> bool:
            for k, v in attrs.items():
                k = k.rstrip("_").replace("_", "-")
                if k == "class":
                    if v not in n.attrs.get("class", "").split():
                        return False
                elif n.attrs.get(k) != v:
                    return False
            return True
        return [n for n in self.nodes if n.tag == tag and ok(n)]


def parse(text: str) -> Collector:
    c = Collector()
    c.feed(text)
    c.close()
    return c


def text_of(node: Node) -> str:
    return re.sub(r"\s+", " ", "".join(node.text)).strip()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium() -> str:
    """The chromium binary; a missing one fails the test (always in CI)."""
    override = os.environ.get("IMGGATE_CHROMIUM")
    if override and Path(override).exists():
        return override
    return require_tool("chromium", "headless, for the HTML report tests (or set IMGGATE_CHROMIUM)")


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HOME": str(tmp_path)})


def dump_dom(tmp_path: Path, url: str) -> str:
    done = run_chromium(tmp_path, "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<html" in done.stdout
    return done.stdout


def decode_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """A tiny PNG decoder (8-bit greyscale/RGB/RGBA, no interlace): width, height, bpp, rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (0, 2, 4, 6), header
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def write_report(tmp_path: Path, verdict: Verdict) -> Path:
    return html.write(verdict, tmp_path / "reports")


# ----------------------------------------------------------- static checks


def test_self_contained_nothing_can_load_from_the_network():
    text = html.render(sample_verdict(50))
    doc = parse(text)
    tags = {n.tag for n in doc.nodes}
    assert not tags & {"link", "img", "iframe", "object", "embed", "base", "form", "audio",
                       "video", "source", "svg", "frame"}
    for n in doc.nodes:
        for attr, value in n.attrs.items():
            assert attr not in ("src", "srcset", "background", "poster", "action")
            assert not attr.startswith("on"), (n.tag, attr)
            if attr == "href":
                assert value.startswith("#") or re.match(r"^https?://", value), value
            if attr == "style":
                raise AssertionError("inline style attribute (blocked by the CSP)")
    assert len(doc.find("script")) == 1 and "src" not in doc.find("script")[0].attrs
    assert len(doc.find("style")) == 1
    css = "".join(doc.find("style")[0].text)
    assert "url(" not in css and "@import" not in css and "@font-face" not in css


def test_csp_pins_the_inline_script_and_style_by_hash():
    text = html.render(single(allow_image()))
    doc = parse(text)
    csp = doc.find("meta", http_equiv="Content-Security-Policy")[0].attrs["content"]
    assert "default-src 'none'" in csp
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert "unsafe-inline" not in csp


def test_untrusted_strings_are_text_never_markup():
    text = html.render(sample_verdict(5))
    assert "<script>document.title" not in text
    assert "<img src=x" not in text
    assert "javascript:" not in text.lower()
    doc = parse(text)
    assert XSS_TITLE in "".join(doc.text)
    assert len(doc.find("script")) == 1
    # The hostile finding links to its safe https link, never the javascript: one.
    anchors = [a.attrs["href"] for a in doc.find("a") if text_of(a) == "CVE-2024-0001"]
    assert anchors == ["https://example.org/CVE-2024-0001"]


def test_control_and_bidi_characters_are_shown_escaped():
    text = html.render(sample_verdict(0))
    for ch in ("\x00", "\x07", "\x1b", "\x7f", "\u202e", "\udcff"):
        assert ch not in text
    assert "bell\\x07 nul\\x00 esc\\x1b[31m vt\\x0b del\\x7f" in text
    assert "\\u202eevil" in text and "bad\\udcff-bytes" in text
    assert RTL.replace("\u202e", "\\u202e").replace("\u202c", "\\u202c") in text


def test_a_banner_per_image_with_its_decision():
    doc = parse(html.render(sample_verdict(5)))
    banners = doc.find("div", class_="banner")
    classes = [n.attrs["class"] for n in banners]
    assert classes == ["banner decision-allow", "banner decision-deny", "banner decision-error"]
    assert [text_of(n).split(" registry")[0] for n in banners] == [
        "Allowed", "Denied", "Could not decide"]
    run = doc.find("div", class_="run-banner")[0]
    # A denial beside an undecided image: the run is denied (exit 1).
    assert "decision-deny" in run.attrs["class"] and "exit code 1" in text_of(run)
    assert "connection refused <b>&amp;</b>" in text_of(doc.find("div", class_="error-box")[0])


def test_violations_and_warnings_name_rule_and_reason():
    doc = parse(html.render(single(deny_image(3))))
    violations = doc.find("ol", class_="violations")[0]
    assert "severity" in text_of(violations) and DENY_REASON in text_of(violations)
    assert "enforce" in text_of(violations)
    warnings = text_of(doc.find("ol", class_="warnings")[0])
    assert "tags" in warnings and "tag 'latest' is denied in prod" in warnings
    assert "labels" in warnings


def test_findings_table_is_complete_and_readable_without_javascript():
    v = single(deny_image(40))
    doc = parse(html.render(v))
    rows = [n for n in doc.find("tr") if "data-sev" in n.attrs]
    assert len(rows) == len(v.images[0].findings) == 43
    assert not any("hidden" in r.attrs for r in rows)
    # The JS-only controls are hidden until the script reveals them, and no
    # author rule may override [hidden] (.filters is display: flex).
    assert all("hidden" in f.attrs for f in doc.find("div", class_="filters"))
    css = "".join(doc.find("style")[0].text)
    assert "[hidden] { display: none !important; }" in css
    # Worst first, and the fixed version is shown.
    sev = [r.attrs["data-sev"] for r in rows]
    order = ["Critical", "High", "Medium", "Low", "Info", "Unknown"]
    assert sev == sorted(sev, key=order.index)
    openssl = next(r for r in rows if "openssl" in text_of(r))
    assert "3.0.2" in text_of(openssl) and "3.0.1" in text_of(openssl)
    headers = [text_of(th) for th in doc.find("th") if "data-key" in th.attrs]
    assert headers == ["Severity", "Vulnerability", "Package", "Installed", "Fixed in", "CVSS",
                       "Found by"]


def test_exceptions_signatures_and_image_facts():
    doc = parse(html.render(sample_verdict(2)))
    body = " ".join(text_of(n) for n in doc.find("section", class_="image"))
    for status in ("used", "stale", "expired"):
        assert doc.find("span", class_=f"exc-{status}"), status
    assert "patched in our fork" in body and "2027-01-01" in body and ".trivyignore" in body
    # Signatures: verified with signer, and the failure with its reason.
    assert "verified" in body and "cosign.pub" in body and "transparency log checked" in body
    assert "not verified" in body and "no signature found" in body
    assert "https://slsa.dev/provenance/v1" in body
    # Image facts.
    allow = allow_image().image
    assert str(allow.digest) in body
    for fact in ("linux/amd64", "linux/arm64/v8", "2026-11-01 12:00:00 UTC", "10001",
                 "org.opencontainers.image.revision=0123abc", "application/vnd.oci.image.index.v1+json"):
        assert fact in body, fact
    facts = doc.find("dl", class_="facts")[0]
    assert "Layers 7" in text_of(facts)
    assert "(not set: runs as root)" in body  # the denied image has no user
    # The error image has no evidence: one clear line, no "nothing found" sections.
    err = doc.find("section", id="image-3")[0]
    assert "No evidence was gathered" in text_of(err)
    assert "No vulnerabilities" not in text_of(err)


def test_allowed_with_warnings_says_so():
    iv = replace(allow_image(), rules=(RuleResult("age", False, Mode.WARN, ("120 days old",)),))
    doc = parse(html.render(single(iv)))
    banner = doc.find("div", class_="banner")[0]
    assert banner.attrs["class"] == "banner decision-allow"
    assert text_of(banner).startswith("Allowed with warnings")
    assert "120 days old" in text_of(doc.find("ol", class_="warnings")[0])


def test_suppressed_findings_show_why():
    doc = parse(html.render(single(allow_image())))
    details = doc.find("details", class_="suppressed")[0]
    assert "exception: patched in our fork" in text_of(details)
    assert "CVE-2024-00008" in text_of(details)


def test_empty_run_is_not_an_allow():
    text = html.render(Verdict(env="dev", images=(), generated=datetime(2026, 1, 1, tzinfo=UTC)))
    doc = parse(text)
    assert "No images were checked" in " ".join(doc.text)
    assert "decision-error" in doc.find("div", class_="run-banner")[0].attrs["class"]


def test_write_is_utf8_and_returns_the_path(tmp_path):
    path = write_report(tmp_path, sample_verdict(1))
    assert path == tmp_path / "reports" / "imggate-report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# ------------------------------------------------------ real browser checks


@pytest.mark.chromium
def test_screenshot_is_not_blank_and_shows_the_banners(tmp_path):
    report = write_report(tmp_path, sample_verdict(200))
    png = tmp_path / "report.png"
    done = run_chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000",
                        report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.exists() and png.stat().st_size > 20_000

    width, height, bpp, rows = decode_png(png.read_bytes())
    assert (width, height) == (1280, 2000)
    samples = []
    colours = set()
    for row in rows[::4]:
        for x in range(0, width * bpp, bpp * 5):
            r, g, b = row[x], row[x + (1 if bpp >= 3 else 0)], row[x + (2 if bpp >= 3 else 0)]
            samples.append(0.299 * r + 0.587 * g + 0.114 * b)
            colours.add((r, g, b))
    mean = sum(samples) / len(samples)
    variance = sum((s - mean) ** 2 for s in samples) / len(samples)
    assert variance > 200, f"screenshot looks blank (variance {variance:.1f})"
    assert len(colours) > 50
    # The stylesheet applied: the run banner (error, yellow) and the allowed
    # image's banner (green) are painted in their colours.
    assert (0xFF, 0xF8, 0xC5) in colours
    assert (0xDA, 0xFB, 0xE1) in colours


@pytest.mark.chromium
def test_in_the_browser_scripts_run_and_injected_markup_does_not(tmp_path):
    report = write_report(tmp_path, sample_verdict(200))
    dom = dump_dom(tmp_path, report.as_uri())
    doc = parse(dom)
    body = doc.find("body")[0]
    assert body.attrs.get("data-js") == "ready"  # our script ran under the CSP
    assert text_of(doc.find("title")[0]) == "imggate: Denied (prod)"
    assert "pwned" not in text_of(doc.find("title")[0])
    assert doc.find("img") == []
    assert len(doc.find("script")) == 1
    # The script revealed the filter controls and counted the rows.
    filters = doc.find("div", class_="filters")
    assert filters and not any("hidden" in f.attrs for f in filters)
    shown = [text_of(s) for s in doc.find("span", class_="shown")]
    assert "showing 203 of 203" in shown
    assert all("sortable" in th.attrs.get("class", "") for th in doc.find("th")
               if "data-key" in th.attrs)


@pytest.mark.chromium
def test_in_the_browser_the_csp_blocks_markup_that_escaped_escaping(tmp_path):
    # Defence in depth: if a string ever got past escaping, the CSP (inline
    # script and style pinned by hash, nothing else allowed) still stops it.
    page = html.render(single(allow_image()))
    injected = page.replace(
        "</body>",
        "<script>document.body.setAttribute('data-pwned', '1')</script>"
        "<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" "
        "onerror=\"document.body.setAttribute('data-pwned', '2')\" "
        "onload=\"document.body.setAttribute('data-pwned', '3')\">"
        "<div style=\"display:none\" id=\"styled\">x</div></body>")
    path = tmp_path / "injected.html"
    path.write_text(injected, encoding="utf-8")
    doc = parse(dump_dom(tmp_path, path.as_uri()))
    body = doc.find("body")[0]
    assert body.attrs.get("data-js") == "ready"  # the genuine script still runs
    assert "data-pwned" not in body.attrs


@pytest.mark.chromium
def test_in_the_browser_filter_and_sort_from_the_fragment(tmp_path):
    v = single(deny_image(120))
    report = write_report(tmp_path, v)
    dom = dump_dom(tmp_path, report.as_uri() + "#sev=Critical,High&sort=cvss:desc")
    doc = parse(dom)
    rows = [n for n in doc.find("tr") if "data-sev" in n.attrs]
    visible = [r for r in rows if "hidden" not in r.attrs]
    wanted = [f for f in v.images[0].findings if f.severity.value in ("Critical", "High")]
    assert len(rows) == 123
    assert len(visible) == len(wanted)
    assert {r.attrs["data-sev"] for r in visible} == {"Critical", "High"}
    # The CVSS cell of each visible row, in the order the browser now shows them.
    scores = [float(m) for m in re.findall(
        r'<tr data-sev="(?:Critical|High)">.*?<td class="num" data-sort="([-0-9.]+)">', dom, re.S)]
    assert len(scores) == len(wanted)
    assert scores == sorted(scores, reverse=True)
    assert scores != [float(f"{f.max_cvss:.1f}") for f in wanted]  # the order really changed
    box = doc.find("div", data_findings="")[0]
    assert box.attrs["data-visible"] == str(len(wanted))
    assert box.attrs["data-sorted"] == "cvss:descending"


@pytest.mark.chromium
def test_in_the_browser_text_search(tmp_path):
    v = single(replace(deny_image(30)))
    report = write_report(tmp_path, v)
    doc = parse(dump_dom(tmp_path, report.as_uri() + "#q=openssl"))
    visible = [r for r in doc.find("tr") if "data-sev" in r.attrs and "hidden" not in r.attrs]
    assert len(visible) == 1 and "openssl" in text_of(visible[0])


@pytest.mark.chromium
def test_real_scanner_reports_render_completely_in_the_browser(tmp_path):
    v = real_verdict()
    report = write_report(tmp_path, v)
    static = parse(report.read_text(encoding="utf-8"))
    assert len(static.find("script")) == 1
    dom = parse(dump_dom(tmp_path, report.as_uri()))
    assert len(dom.find("script")) == 1 and dom.find("img") == []
    boxes = [b for b in dom.find("div", data_findings="")
             if b.attrs.get("data-visible") is not None]
    assert [int(b.attrs["data-visible"]) for b in boxes] == [len(i.findings) for i in v.images]
    assert sum(len(i.findings) for i in v.images) > 700
    # Fixed versions from the real reports are in the table.
    fixed = {fv for i in v.images for f in i.findings for fv in f.fixed_versions}
    page = " ".join(static.text)
    assert fixed and all(fv in page for fv in list(fixed)[:50])


def test_error_only_report_renders():
    doc = parse(html.render(single(error_image())))
    assert doc.find("div", class_="banner")[0].attrs["class"] == "banner decision-error"
    assert doc.find("table", class_="data") != []  # the summary table
    # Nothing was read: a dash in every count, never a 0 that reads as "no findings".
    cells = doc.find("td", class_="unknown")
    assert [text_of(c) for c in cells] == ["—"] * 6
    assert cells[0].attrs["title"] == "could not be read: unknown"


# ------------------------------------------------ evidence, NOT SCANNED, provenance


def test_not_scanned_card_evidence_ages_and_provenance():
    from formats.verdict_samples import RUN, unscanned_image

    run = replace(RUN, notes=("ignored .trivyignore in the working directory",))
    v = Verdict(env="prod", images=(unscanned_image(), allow_image()),
                generated=sample_verdict(1).generated, run=run)
    doc = parse(html.render(v))
    # The header says which rules, why this environment, which imggate, and the notes.
    assert [text_of(n) for n in doc.find("dd")][:3] == [
        "rules/default.yaml (./rules/) sha256 " + "ab" * 32,
        "prod: CI_ENVIRONMENT_TIER=production (alias 'production')", "0.1.0"]
    assert text_of(doc.find("ul", class_="policy-notes")[0]) == \
        "ignored .trivyignore in the working directory"
    # The summary row: a NOT SCANNED badge and dashes, never zeros.
    row = doc.find("tr")[1]
    assert "not scanned" in text_of(row)
    assert [text_of(c) for c in doc.find("td", class_="unknown")] == ["—"] * 6
    # The image's own card.
    box = doc.find("div", class_="not-scanned-box")
    assert len(box) == 1 and text_of(box[0]).startswith("NOT SCANNED No scanner evidence")
    assert "No vulnerabilities reported" not in text_of(doc.find("section")[0])
    # Every report with its scanner, version, creation time, age and binding.
    tables = doc.find("table", class_="reports")
    refused, used = (text_of(t) for t in tables)
    assert "refused trivy 0.57.0 2026-11-22 04:00:00 UTC 3h redis.json" in refused
    assert "for another image" in refused
    assert "used trivy 0.57.0 2026-11-22 04:00:00 UTC 3h trivy.json" in used
    assert "names this image's digest" in used


@pytest.mark.chromium
def test_not_scanned_in_the_browser(tmp_path):
    from formats.verdict_samples import RUN, unscanned_image

    v = Verdict(env="dev", images=(unscanned_image(),), generated=sample_verdict(1).generated,
                run=RUN)
    dom = parse(dump_dom(tmp_path, write_report(tmp_path, v).as_uri()))
    assert text_of(dom.find("div", class_="not-scanned-box")[0]).startswith("NOT SCANNED")
    assert "3h" in text_of(dom.find("table", class_="reports")[0])


def test_an_image_denied_by_its_reference_alone_reads_as_not_read_not_as_clean():
    iv = ImageVerdict(reference="nginx:latest", env="prod", decision=Decision.DENY,
                      rules=(RuleResult("tags.denied", False, Mode.ENFORCE,
                                        ("tag 'latest' is denied",)),),
                      error="the image was not read: a rule about its reference already "
                            "denies it")
    doc = parse(html.render(single(iv)))
    section = text_of(doc.find("section", id="image-1")[0])
    assert "Also not checked: the image was not read" in section
    assert "Could not decide" not in section
    assert "No evidence was gathered" in section and "No vulnerabilities" not in section


def test_the_written_page_is_the_rendered_page_in_utf_8(tmp_path: Path) -> None:
    # Written part by part (the rows apart from the template's text): the same bytes,
    # also with text that is not ASCII in the rows and suppressed findings.
    iv = deny_image(40)
    iv = replace(iv, findings=tuple(structs.replace(f, title=f"{f.title} — ünïcode 漏洞")
                                    for f in iv.findings),
                 suppressed=((iv.findings[0], "vex: not affected · ok"),))
    verdict = single(iv)
    written = html.write(verdict, tmp_path).read_bytes()
    assert written == html.render(verdict).encode("utf-8")
    assert "漏洞".encode() in written and b"vex: not affected" in written


def test_rows_made_ahead_in_a_mapped_file_are_written_and_redacted_as_made_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A check's reading child leaves the rows (UTF-8) in a file this process maps: written
    # from there, the page is the page rendered here; with a secret held, redacted in them.
    from imggate.formats.verdict_json import worst_first
    from imggate.redact import MASK, SECRETS, register

    secret = "s3cret-token-value"
    iv = deny_image(40)
    iv = replace(iv, findings=tuple(structs.replace(f, title=f"{f.title} ünï {secret}")
                                    for f in iv.findings))
    verdict = single(iv)
    page = html.render(verdict)
    ordered = worst_first(tuple(list(iv.findings)))
    rows = memoryview(html._finding_rows((f, None) for f in ordered).encode("utf-8"))
    monkeypatch.setattr(html, "_ahead", None)
    html.remember_rows(ordered, rows)
    monkeypatch.setattr(html, "_finding_rows", lambda items: pytest.fail("made here"))
    assert html.write(verdict, tmp_path / "plain").read_bytes() == page.encode("utf-8")
    register(secret)
    try:
        redacted = html.write(verdict, tmp_path / "redacted").read_text(encoding="utf-8")
    finally:
        SECRETS.clear()
    assert secret not in redacted and redacted.count(MASK) == len(iv.findings)
    assert redacted == page.replace(secret, MASK)


def test_images_judged_alike_share_their_parts_and_the_page_is_the_same(monkeypatch) -> None:
    # An audit's tags that name the same image: their rows and sections are rendered once
    # and given each tag's anchor and reference; the page is what rendering each gives,
    # with references that escaping changes, and with verdicts of the same image that
    # differ (a note, a decision) or have no image.
    images = [allow_image(), deny_image(40), error_image()]
    tags = []
    for n, iv in enumerate(images * 3):
        tags.append(replace(iv, reference=f"reg.example/app:t{n}<&>\"'{RTL}"))
    tags.append(replace(images[0], reference="reg.example/app:noted", notes=("a note",)))
    tags.append(replace(images[1], reference="reg.example/app:allowed",
                        decision=Decision.ALLOW))
    verdict = replace(sample_verdict(5), images=tuple(tags))
    shared = html.render(verdict)
    monkeypatch.setattr(alike, "alike", lambda a, b: False)
    assert html.render(verdict) == shared
    doc = parse(shared)
    assert [s.attrs["id"] for s in doc.find("section")] == [f"image-{i}" for i in
                                                            range(1, len(tags) + 1)]
    for i, iv in enumerate(tags, start=1):
        shown = html.clean(iv.reference)
        assert f'<h2 id="image-{i}-title" class="ref">{escape(shown)}</h2>' in shared
        assert f'<a href="#image-{i}">{escape(shown)}</a>' in shared
        for table in doc.find("table", id=f"image-{i}-findings"):
            assert text_of(table).startswith(f"Vulnerabilities found in {shown} ")


def test_rows_of_one_vulnerability_each_say_their_own_values() -> None:
    # What rows made together say of one vulnerability is made once, for the findings
    # that say the same of it: every other row is as if made alone.
    from imggate.models import Cvss, Finding, FixState, Severity

    base = Finding("CVE-2024-1", "libssl", "1.0", Severity.HIGH, title="TLS <bug>",
                   links=("https://example.com/1",), cvss=(Cvss("nvd", None, None, 7.5),),
                   sources=("trivy",), fixed_versions=("1.1",), fix_state=FixState.FIXED)
    alike_ = [
        base, structs.replace(base, package="a", title="".join(["TLS <bug>"])),
        structs.replace(base, package="b", title="Other"),
        structs.replace(base, package="c", aliases=("GHSA-1",)),
        structs.replace(base, package="d", links=("javascript:alert(1)",)),
        structs.replace(base, package="e", cvss=()),
        structs.replace(base, package="f", severity=Severity.LOW),
        structs.replace(base, package="g", sources=("trivy", "grype")),
        structs.replace(base, package="h", package_type="deb", fixed_versions=(),
                        fix_state=FixState.WONT_FIX),
        structs.replace(base, package="i"),
        # Vulnerabilities of their own, with scores alike and not (-0.0 == 0.0 is written
        # apart).
        *(structs.replace(base, id=f"CVE-2024-{2 + n}", package="j",
                          cvss=(Cvss("nvd", None, None, score),))
          for n, score in enumerate((0.0, -0.0, 7.5, 7.5, 7, float("nan"), float("nan")))),
        *(structs.replace(base, package=f"k{n}", cvss=(Cvss("nvd", None, None, score),))
          for n, score in enumerate((0.0, -0.0, 0.0)))  # (of one vulnerability)
    ]
    items = [(f, "accepted <risk>" if i % 3 == 0 else None) for i, f in enumerate(alike_)]
    assert html._finding_rows(items) == "".join(html._finding_rows([it]) for it in items)


@settings(max_examples=200, deadline=None)
@given(text=st.text() | st.sampled_from(["&amp;", "<a href=\"x\">'</a>", ""]))
def test_escaping_is_the_standard_librarys(text: str) -> None:
    import html as stdlib_html

    assert html._escape(text) == stdlib_html.escape(text, quote=True)


_TRICKY = st.sampled_from([
    "", " ", "&", "<b>", '"', "'", "`", "\t", "\n", "\x00", "\x1f", "\x7f", "\x85", "\xa0",
    "\u202e", "\u2028", "é", "\u017f", "\u212a", "http://", "https://", "HTTPS://", "hTtP://", "http:/",
    "javascript:", "x", "a.b/c?d=1&e=2", "\ud800",
])


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.lists(_TRICKY | st.text(max_size=6), max_size=6).map("".join),
                      max_size=12))
def test_texts_looked_at_together_are_escaped_as_each_alone(texts: list[str]) -> None:
    # A table's ids, titles, versions and first links are looked at all at once for what
    # escaping would change (imggate.formats.plain.marked): each is then written as escaping it alone
    # writes it, and each link is as safe (or not) as it is alone.
    esc = html._Escaper()
    esc.take_plain(texts)
    assert [esc[t] for t in texts] == [html._e(t) for t in texts]
    links = html._Escaper()
    links.take_links(texts)
    assert [links[t] for t in texts] == [html._e(t) for t in texts]
    for t in texts:
        if t in links.links:
            assert links.links[t] == html.safe_url(t)
        assert html._first_link((t, "https://example.test/"), links.links) == \
            html._first_link((t, "https://example.test/"), {})


def test_rows_looked_at_together_are_the_rows_each_alone() -> None:
    # Findings whose ids, titles, versions and links need escaping (or are not ASCII, or
    # not safe links) among findings that need none: every row as if made alone.
    from imggate.models import Finding, Severity

    odd = ["CVE-1 <x>", "t\u202e", "1.0&1", "javascript:alert(1)", "HTTPS://a.test/é",
           "https://a.test/\"x", "http://", "https://a.test/x y", "hTtP://a.test/ok"]
    findings = [Finding(f"CVE-2024-{n}" if n % 3 else odd[n % len(odd)], "pkg",
                        odd[(n + 1) % len(odd)] if n % 4 == 0 else f"1.{n}", Severity.HIGH,
                        title=odd[(n + 2) % len(odd)] if n % 5 == 0 else f"Title {n}",
                        links=(odd[n % len(odd)] if n % 2 else f"https://x.test/{n}",
                               "https://fallback.test/"))
                for n in range(40)]
    items = [(f, None) for f in findings]
    assert html._finding_rows(items) == "".join(html._finding_rows([it]) for it in items)
    for f in findings:  # and each row as the escaping of each value alone makes it
        row = html._finding_rows([(f, None)])
        assert html._e(f.id) in row and html._e(f.version) in row

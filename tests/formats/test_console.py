"""The console summary: counts, top violations, colour only on a terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from formats.verdict_samples import (
    CONTROL,
    RICH_MARKUP,
    allow_image,
    deny_image,
    error_image,
    sample_verdict,
    single,
)
from imggate.formats import console
from imggate.models import Mode, RuleResult, Verdict

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(text: str) -> list[str]:
    """SGR sequences that set a colour (not just bold/dim/reset)."""
    out = []
    for params in SGR.findall(text):
        for p in params.split(";"):
            if p and (30 <= int(p) <= 38 or 40 <= int(p) <= 48 or 90 <= int(p) <= 107):
                out.append(params)
    return out


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def plain_env(monkeypatch):
    for var in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS",
                "COLORTERM", "JUPYTER_COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_counts_table_and_header():
    text = console.render(sample_verdict(30))
    assert "3 images: 1 allowed, 1 denied, 1 could not be decided" in text
    # Deny: the 3 hostile findings (C, H, M) plus 30 cycling through six severities.
    assert re.search(r"DENY\s+registry\.example\.com/team/<evil>:latest"
                     r"\s+6\s+6\s+6\s+5\s+5\s+5\s+1\s+2\s*$", text, re.M)
    assert re.search(r"ALLOW\s+registry\.example\.com/team/app:1\.2\.3@sha256:3e15a10eca97\.\.\."
                     r"\s+0\s+0\s+0\s+1\s+0\s+0\s+0\s+0\s*$", text, re.M)
    assert re.search(r"ERROR\s+registry\.invalid/team/down:1\.0(\s+0){8}\s*$", text, re.M)


def test_top_violations_warnings_and_error_reason():
    text = console.render(sample_verdict(3))
    assert ('VIOLATION severity: Critical CVE-2024-0001 in openssl 3.0.1 (fixed in 3.0.2) '
            '& "more" (+1 more)') in text
    assert "WARNING tags: tag 'latest' is denied in prod (+1 more)" in text
    assert "could not decide: registry.invalid/team/down:1.0: connection refused" in text
    # One image denied: exit 1 even beside an undecided one (a retry cannot fix a denial).
    assert text.rstrip().endswith("Result: DENY (exit code 1)")


def test_only_the_top_violations_are_listed():
    rules = tuple(RuleResult(f"rule-{i}", False, Mode.ENFORCE, (f"reason {i}",)) for i in range(8))
    text = console.render(single(replace(deny_image(0), rules=rules)), top=3)
    assert [m for m in re.findall(r"VIOLATION (rule-\d+)", text)] == ["rule-0", "rule-1", "rule-2"]
    assert "... and 5 more violations" in text
    assert "Result: DENY (exit code 1)" in text


def test_many_images_list_errors_first_and_stop_at_max_images():
    images = tuple(replace(deny_image(0), reference=f"reg.example/deny-{i}") for i in range(30))
    v = replace(sample_verdict(0), images=(*images, error_image()))
    text = console.render(v, max_images=5)
    details = re.findall(r"^(DENY|ERROR) (\S+)", text, re.M)
    assert details[0] == ("ERROR", "registry.invalid/team/down:1.0")
    assert len(details) == 5
    assert "... and 26 more images with violations, warnings or errors" in text


def test_allowed_run_is_short_and_points_at_reports():
    reports = [Path("reports/imggate-report.html"), Path("reports/imggate-verdict.json")]
    text = console.render(single(allow_image()), written=reports)
    assert "Result: ALLOW (exit code 0)" in text
    assert "VIOLATION" not in text and "WARNING" not in text
    assert "report: reports/imggate-report.html" in text
    assert "report: reports/imggate-verdict.json" in text


def test_nothing_checked():
    text = console.render(Verdict(env="dev", images=(), generated=sample_verdict(0).generated))
    assert "no images were checked" in text
    assert "Result: ERROR (exit code 3)" in text


def test_untrusted_text_is_literal_and_cannot_drive_the_terminal(plain_env, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    hostile = replace(deny_image(0), reference="ref\x1b]0;title\x07", rules=(
        RuleResult("labels", False, Mode.ENFORCE, (RICH_MARKUP,)),
        RuleResult("tags", False, Mode.WARN, (CONTROL,))))
    tty = FakeTTY()
    console.print_summary(single(hostile), tty)
    raw = tty.getvalue()
    assert "\x1b[31m vt" not in raw
    out = SGR.sub("", raw)  # drop our own styling
    assert "\x1b" not in out
    assert RICH_MARKUP in out  # rich markup from a scanner is not interpreted
    assert "esc\\x1b[31m" in out  # the scanner's escape sequence is shown, not sent
    assert "ref\\x1b]0;title\\x07" in out
    assert "\x07" not in raw and "\x00" not in raw


def test_no_colour_when_not_a_terminal(plain_env):
    buf = io.StringIO()
    console.print_summary(sample_verdict(3), buf)
    out = buf.getvalue()
    assert "\x1b" not in out
    assert "Result: DENY (exit code 1)" in out
    # Not a terminal and no COLUMNS: wide enough that references do not wrap.
    assert max(len(line) for line in out.splitlines()) <= console.PIPE_WIDTH
    assert "registry.example.com/team/<evil>:latest" in out


def test_colour_on_a_terminal_and_none_with_no_color(plain_env, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    tty = FakeTTY()
    console.print_summary(sample_verdict(3), tty)
    assert colour_codes(tty.getvalue())

    monkeypatch.setenv("NO_COLOR", "1")
    tty = FakeTTY()
    console.print_summary(sample_verdict(3), tty)
    assert "Result: DENY" in SGR.sub("", tty.getvalue())
    assert colour_codes(tty.getvalue()) == []


def test_error_only_run():
    text = console.render(single(error_image()))
    assert "0 allowed, 0 denied, 1 could not be decided" in text


def test_formats_do_not_import_rich_or_jinja_at_import_time():
    code = ("import sys\n"
            "import imggate.formats.console, imggate.formats.html, imggate.formats.junit\n"
            "import imggate.formats.verdict_json\n"
            "heavy = [m for m in ('rich', 'jinja2', 'markupsafe') if m in sys.modules]\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_not_scanned_is_said_never_zero_findings_and_provenance_is_printed():
    from formats.verdict_samples import RUN, allow_image, unscanned_image

    v = Verdict(env="dev", images=(allow_image(), unscanned_image()),
                generated=sample_verdict(1).generated, run=RUN)
    text = console.render(v)
    assert "rules: rules/default.yaml (./rules/, sha256 abababababab), imggate 0.1.0\n" in text
    assert "env: prod from CI_ENVIRONMENT_TIER=production (alias 'production')\n" in text
    row = next(line for line in text.splitlines() if line.startswith("ALLOW NOT SCANNED "))
    assert re.search(r"team/unscanned\S*(\s+-){6}\s+0\s+1$", row), row  # dashes, not zeros
    assert ("NOT SCANNED: 1 report(s) given, none usable for this image; "
            "vulnerabilities unknown") in text

"""The console summary: counts, top violations, colour only on a terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from formats.verdict_samples import (
    CONTROL,
    GENERATED,
    RICH_MARKUP,
    allow_image,
    deny_image,
    error_image,
    sample_verdict,
    single,
)
from imggate.formats import console
from imggate.models import Mode, RuleResult, Severity, Verdict
from imggate.values import replace

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
    # Nothing was read for the undecided image: no counts, a dash (the README: never "0").
    assert re.search(r"ERROR\s+registry\.invalid/team/down:1\.0(\s+-){6}\s+0\s+0\s*$", text,
                     re.M)


def test_top_violations_warnings_and_error_reason():
    text = console.render(sample_verdict(3))
    # A violation in full: every message on its own line; a warning stays one line.
    assert ('VIOLATION severity: Critical CVE-2024-0001 in openssl 3.0.1 (fixed in 3.0.2) '
            '& "more"\n    <script>') in text
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


def _engine_verdict(report_name: str, rules_yaml: str, signatures: tuple = ()) -> Verdict:
    """A real report through the real engine, so rule messages are the engine's own."""
    from datetime import UTC, datetime

    from fixture_paths import FIXTURES
    from imggate.models import Digest, ImageRef, ResolvedImage
    from imggate.policy.engine import evaluate
    from imggate.policy.loader import parse_rules
    from imggate.scanners.detect import load_report
    from policy.policy_builders import evidence

    digest = Digest.parse("sha256:" + "ab" * 32)
    ref = ImageRef("registry.example.com", "team/app-with-a-rather-long-repository-name/" * 3
                   + "service", "1.0")
    image = ResolvedImage(ref, digest, "application/vnd.oci.image.manifest.v1+json", (), digest,
                          None)
    report = replace(load_report(FIXTURES / report_name), image_digests=(digest,))
    rules = parse_rules(rules_yaml, "rules.yaml").effective("dev")
    ev = evidence(ref, reports=(report,), signatures=signatures, resolved=image)
    iv = evaluate(ev, rules, now=datetime(2026, 1, 1, tzinfo=UTC))
    return Verdict(env="dev", images=(iv,), generated=datetime(2026, 1, 1, tzinfo=UTC))


def test_denied_image_lists_the_offending_findings_worst_first():
    v = _engine_verdict("grype/cgvulnreport-redis-3.0.7.json",
                        "environments:\n  dev:\n    severity:\n      fail_on: High\n")
    iv = v.images[0]
    bad = console.offending(iv)
    assert len(bad) > 10
    ranks = [(f.severity.rank, f.max_cvss or 0.0) for f in bad]
    assert ranks == sorted(ranks, reverse=True)
    text = console.render(v)
    rows = [line.split() for line in text.splitlines()
            if re.match(r"    (CVE|GHSA|ELSA|DSA|ALAS)-", line)]
    assert len(rows) == 10
    assert [r[0] for r in rows] == [f.id for f in bad[:10]]
    first = bad[0]
    assert rows[0][:4] == [first.id, first.package, first.version,
                           ", ".join(first.fixed_versions) or "-"]
    assert rows[0][4] == first.severity.value
    fixed = next(f for f in bad if len(f.fixed_versions) > 1)
    assert re.search(rf"{re.escape(fixed.id)}\s+{re.escape(fixed.package)}\s+"
                     rf"{re.escape(fixed.version)}\s+{re.escape(', '.join(fixed.fixed_versions))}",
                     text)
    assert max(len(line) for line in text.splitlines()) < 250  # no padding to the width
    assert f"    and {len(bad) - 10} more" in text
    # The rule's own one-line-per-finding messages are not repeated beside the table.
    assert " in " + first.package + " " + first.version + ":" not in text


def test_failed_signature_reasons_in_full():
    from imggate.models import SignatureCheck, SignatureKind

    reason = ("cosign.pub: signature does not verify; no transparency log entry: " + "x" * 300
              + " (pass --insecure-ignore-tlog to accept signatures that were never logged)")
    sigs = (SignatureCheck(SignatureKind.SIGNATURE, "registry.example.com/app:sha256-ab.sig "
                           "layers[0]", False, reason),)
    rules = ("environments:\n  dev:\n    signatures:\n      keys: [/keys/cosign.pub]\n")
    text = console.render(_engine_verdict("trivy/alpine-310.json", rules, sigs))
    assert "VIOLATION signatures: 0 trusted signer(s) verified, 1 of 1 required" in text
    assert "(+1 more)" not in text
    assert reason in text  # not cut at any length


def test_lines_do_not_wrap_when_not_a_terminal(plain_env):
    v = _engine_verdict("trivy/debian-buster.json",
                        "environments:\n  dev:\n    severity:\n      fail_on: High\n"
                        "    tags:\n      require_digest: true\n")
    buf = io.StringIO()
    console.print_summary(v, buf)
    out = buf.getvalue()
    ref = v.images[0].reference
    assert len(ref) > 150
    assert f"DENY {ref}  sha256:{'ab' * 32}" in out
    assert f"{ref} is referenced by tag only" in out


def test_every_suppression_is_printed_with_its_source_and_worst_severity():
    from formats.verdict_samples import RUN, allow_image, finding

    iv = replace(allow_image(), suppressed=(
        (finding(1, Severity.LOW), "trivyignore /w/.trivyignore:3: not reachable"),
        (finding(2, Severity.HIGH), "trivyignore /w/.trivyignore:4: not reachable: see APP-1"),
        (finding(3, Severity.CRITICAL), "imggate rules.yaml:12: patched"),
    ))
    run = replace(RUN, notes=("ignored .trivyignore in the working directory",))
    text = console.render(Verdict(env="prod", images=(iv,), generated=GENERATED, run=run))
    assert ("SUPPRESSED 3 finding(s): 1 by imggate rules.yaml (worst Critical); "
            "2 by trivyignore /w/.trivyignore (worst High)") in text
    assert "note: ignored .trivyignore in the working directory" in text


def _unscanned_verdict(refused: tuple[str, ...]) -> Verdict:
    """No usable scanner evidence, ``refused`` saying why, under a severity rule in warn."""
    from datetime import UTC, datetime

    from imggate.models import Digest, Evidence, ImageRef, ResolvedImage
    from imggate.policy.engine import evaluate
    from imggate.policy.loader import parse_rules

    digest = Digest.parse("sha256:" + "cd" * 32)
    ref = ImageRef("registry.example.com", "team/app", "1.0")
    image = ResolvedImage(ref, digest, "application/vnd.oci.image.manifest.v1+json", (), digest,
                          None)
    rules = parse_rules("environments:\n  dev:\n    severity:\n      fail_on: High\n",
                        "rules.yaml").effective("dev")
    iv = evaluate(Evidence(str(ref), ref, image, refused=refused), rules,
                  now=datetime(2026, 1, 1, tzinfo=UTC))
    return Verdict(env="dev", images=(iv,), generated=datetime(2026, 1, 1, tzinfo=UTC))


def test_every_refused_attestation_is_listed_with_its_reason():
    refused = ("vuln attestation registry.example.com/team/app:sha256-cd.att layers[0]: "
               "signed by a key the rules do not trust",
               "vuln attestation registry.example.com/team/app:sha256-cd.att layers[1]: "
               "its subject is sha256:" + "ef" * 32 + ", not this image")
    text = console.render(_unscanned_verdict(refused), width=400)
    assert "WARNING severity: NOT SCANNED" in text
    assert "more)" not in text
    for reason in refused:
        assert "    " + reason in text


def test_refusal_reasons_are_bounded_and_escaped():
    refused = tuple(f"vuln attestation layers[{i}]: bad \x1b[2J signature" for i in range(30))
    text = console.render(_unscanned_verdict(refused), width=400)
    assert "\x1b[2J" not in text and "\\x1b[2J" in text
    assert "layers[19]" in text and "layers[20]" not in text
    assert "    ... and 10 more" in text

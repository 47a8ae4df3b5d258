"""``check --html-template``: a team's own template, sandboxed, and the compact example.

The hostile templates are the usual Jinja2 server-side template injection
payloads: walks from any object to ``object.__subclasses__()`` or a
function's ``__globals__`` (and so to ``os``), str.format field access,
mutation of what the template is given, and resource exhaustion.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from formats.test_html import decode_png, dump_dom, parse, run_chromium, text_of
from formats.verdict_samples import XSS_TITLE, real_verdict, sample_verdict
from imggate.errors import ConfigError
from imggate.formats import html_template
from imggate.formats.verdict_json import overall_decision
from imggate.models import Verdict
from registry_harness import free_port, run_imggate
from signatures.cosign_format_signer import make_image, write_layout
from signatures.inmemory import InMemoryRepository

SUMMARY = Path(__file__).resolve().parents[2] / "examples" / "html" / "summary.html.j2"


def template(tmp_path: Path, text: str) -> html_template.UserTemplate:
    path = tmp_path / "team.html.j2"
    path.write_text(text, encoding="utf-8")
    return html_template.load(path)


def render(tmp_path: Path, text: str, verdict: Verdict | None = None) -> str:
    return template(tmp_path, text).render(verdict or sample_verdict(5))


# ------------------------------------------------------------ the context


def test_the_context_is_the_verdict_model(tmp_path):
    v = sample_verdict(5)
    out = render(tmp_path, "{{ decision }}|{{ exit_code }}|{{ verdict.env }}|{{ generated }}|"
                           "{% for iv in verdict.images %}{{ iv.decision.value }},{% endfor %}|"
                           "{{ severities | join(',') }}|"
                           "{{ severity_counts(verdict.images[1].findings)['Critical'] }}|"
                           "{{ worst_first(verdict.images[1].findings)[0].severity.value }}",
                 v)
    critical = sum(f.severity.value == "Critical" for f in v.images[1].findings)
    decision = overall_decision(v).value
    assert out == (f"{decision}|{v.exit_code}|prod|2026-11-22 07:00:00 UTC|allow,deny,error,|"
                   f"Critical,High,Medium,Low,Info,Unknown|{critical}|Critical")


def test_autoescape_is_on_and_clean_shows_controls(tmp_path):
    v = sample_verdict(5)
    out = render(tmp_path, "{% for f in verdict.images[1].findings %}{{ f.title }}\n{% endfor %}"
                           "{{ '\x1b[31mred\u202e' | clean }}", v)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "\\x1b[31mred\\u202e" in out


def test_safe_url_never_gives_javascript(tmp_path):
    out = render(tmp_path, "{{ safe_url('javascript:alert(1)') }}|{{ safe_url('https://x.test/a') }}")
    assert out == "None|https://x.test/a"


# ------------------------------------------------------------ the sandbox


HOSTILE = [
    "{{ verdict.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ verdict.images[0].__class__.__init__.__globals__['os'] }}",
    "{{ severity_counts.__globals__['os'].system('id') }}",
    "{{ worst_first.__call__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ '{0.__class__.__mro__}'.format(verdict) }}",
    "{{ verdict.images[0].findings[0].__reduce_ex__(2) }}",
    "{{ (verdict | attr('__class__')) }}",
    "{% set xs = [1, 2] %}{{ xs.append(3) }}",
    "{% set d = severity_counts(()) %}{{ d.update({'x': 1}) }}",
    "{{ verdict.images[0].decision.__class__.__base__.__subclasses__() }}",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_templates_cannot_reach_python(tmp_path, text):
    # Refused when the template is loaded (an attribute beginning with "_", read off the
    # template before anything is fetched) or, for what only rendering shows, then.
    def load_and_write() -> None:
        template(tmp_path, "<p>ok</p>\n" + text).write(sample_verdict(5), tmp_path / "out")

    with pytest.raises(ConfigError) as e:
        load_and_write()
    assert e.value.exit_code == 2
    # The error names the file and the template line that tried.
    assert f"{tmp_path / 'team.html.j2'}:2" in e.value.message, e.value.message
    assert "the sandbox refused" in e.value.message
    assert not (tmp_path / "out" / "imggate-report.html").exists()


@pytest.mark.parametrize(("text", "said"), [
    ("{{ verdict.__class__ }}", "the sandbox refused the attribute '__class__'"),
    ("{{ verdict['_x'] }}", "the sandbox refused the attribute '_x'"),
    ("{{ verdicts.images }}", "'verdicts' is not in the template's context"),
])
def test_what_fails_whatever_the_verdict_is_refused_on_load(tmp_path, text, said):
    with pytest.raises(ConfigError) as e:
        template(tmp_path, "<p>ok</p>\n\n" + text)
    assert said in e.value.message and f"{tmp_path / 'team.html.j2'}:3" in e.value.message


def test_names_the_template_sets_itself_are_known(tmp_path):
    text = ("{% set n = verdict.images | length %}{% for i in verdict.images %}{{ i.env }}"
            "{% endfor %}{% macro m(x) %}{{ x }}{% endmacro %}{{ m(n) }}{{ loop_free }}")
    with pytest.raises(ConfigError, match="'loop_free' is not in the template's context"):
        template(tmp_path, text)
    assert render(tmp_path, text.replace("{{ loop_free }}", "")) == "prodprodprod3"


def test_no_file_can_be_included_or_extended(tmp_path):
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    for text in ("{% include 'secret.txt' %}", "{% extends 'secret.txt' %}",
                 "{% import 'secret.txt' as s %}", "{% include '/etc/passwd' %}"):
        with pytest.raises(ConfigError) as e:
            render(tmp_path, text)
        assert "TOP SECRET" not in e.value.message and "root:" not in e.value.message


def test_huge_loops_and_output_are_bounded(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="range"):
        render(tmp_path, "{% for i in range(10**9) %}x{% endfor %}")
    monkeypatch.setattr(html_template, "MAX_OUTPUT_CHARS", 10_000)
    with pytest.raises(ConfigError, match="more than 10000 characters"):
        render(tmp_path, "{% for i in range(99999) %}xxxxxxxxxx{% endfor %}")


def test_broken_templates_name_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        template(tmp_path, "<p>\n{% for x in verdict.images %}\n{{ x }\n")
    assert re.search(r"team\.html\.j2:3\b", e.value.message), e.value.message
    with pytest.raises(ConfigError) as e:
        render(tmp_path, "line one\n{{ verdict.no_such_field }}")
    assert "team.html.j2:2" in e.value.message and "no_such_field" in e.value.message
    with pytest.raises(ConfigError, match="ZeroDivisionError"):
        render(tmp_path, "{{ 1 // 0 }}")


def test_the_file_must_be_a_small_regular_utf8_file(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="not a regular file"):
        html_template.load(tmp_path)
    with pytest.raises(ConfigError, match="cannot open"):
        html_template.load(tmp_path / "missing.j2")
    bad = tmp_path / "latin1.j2"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(ConfigError, match="not UTF-8"):
        html_template.load(bad)
    monkeypatch.setattr(html_template, "MAX_TEMPLATE_BYTES", 10)
    big = tmp_path / "big.j2"
    big.write_text("x" * 11)
    with pytest.raises(ConfigError, match="larger than 10 bytes"):
        html_template.load(big)


# ------------------------------------------------- the compact example


def test_summary_example_is_complete_and_escaped():
    v = sample_verdict(50)
    page = html_template.load(SUMMARY).render(v)
    doc = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert doc.find("script") == [] and doc.find("img") == []
    assert not re.search(r'\s(src|href)="(?!https?://|#)', page)  # nothing to load
    assert "<script>document.title" not in page and XSS_TITLE not in page
    rows = doc.find("tbody")[0]
    assert [text_of(n) for n in doc.find("tr", class_="deny")] and rows
    for iv in v.images:
        assert iv.reference in " ".join(doc.text)
    assert text_of(doc.find("title")[0]) == f"imggate summary: {overall_decision(v).value} (prod)"


@pytest.mark.chromium
def test_summary_example_in_the_browser(tmp_path):
    v = sample_verdict(50)
    out = html_template.load(SUMMARY).write(v, tmp_path / "reports")
    dom = parse(dump_dom(tmp_path, out.as_uri()))
    title = f"imggate summary: {overall_decision(v).value} (prod)"
    assert text_of(dom.find("title")[0]) == title  # not "pwned"
    assert dom.find("img") == [] and dom.find("script") == []
    png = tmp_path / "summary.png"
    done = run_chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,1400", out.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    width, _, bpp, rows = decode_png(png.read_bytes())
    colours = {(row[x], row[x + 1], row[x + 2]) for row in rows[::4]
               for x in range(0, width * bpp, bpp * 5)}
    # The inline style applied: the allowed (green), denied (red) and
    # undecided (yellow) rows are painted.
    assert {(0xFF, 0xF8, 0xC5), (0xDA, 0xFB, 0xE1), (0xFF, 0xEB, 0xE9)} <= colours


def test_summary_example_with_real_reports():
    v = real_verdict()
    page = html_template.load(SUMMARY).render(v)
    doc = parse(page)
    assert len(doc.find("h2")) == sum(1 for iv in v.images if iv.findings)
    assert len([t for t in doc.find("table")]) == 1 + len(doc.find("h2"))


# ----------------------------------------------------------- the CLI


def test_check_renders_the_team_template(tmp_path):
    repo = InMemoryRepository()
    make_image(repo, tag="app")
    layout = write_layout(repo, tmp_path / "layout")
    out = tmp_path / "out"
    res = run_imggate(["check", f"oci:{layout}:app", "--env", "dev", "-q", "-o", str(out),
                       "--html-template", str(SUMMARY)])
    page = (out / "imggate-report.html").read_text(encoding="utf-8")
    assert res.code in (0, 1), res.output
    assert "imggate summary" in page and "data-findings" not in page
    assert (out / "imggate-verdict.json").exists()


def test_a_broken_template_is_exit_2_before_any_network(tmp_path):
    bad = tmp_path / "bad.j2"
    bad.write_text("{% if %}")
    down = f"127.0.0.1:{free_port()}/gate/app:1.0.0"  # never contacted
    res = run_imggate(["check", down, "-q", "-o", str(tmp_path / "o"),
                       "--html-template", str(bad)])
    assert res.code == 2
    assert f"{bad}:1" in res.output and "cannot reach" not in res.output
    assert "Traceback" not in res.output


def test_summary_example_says_not_scanned():
    from formats.verdict_samples import allow_image, unscanned_image

    page = html_template.load(SUMMARY).render(
        Verdict(env="dev", images=(unscanned_image(), allow_image()),
                generated=sample_verdict(1).generated))
    rows = parse(page).find("tr", class_="allow")
    assert len(rows) == 2
    assert "NOT SCANNED" in text_of(rows[0]) and "every rule passed" not in text_of(rows[0])
    assert "NOT SCANNED" not in text_of(rows[1]) and "every rule passed" in text_of(rows[1])

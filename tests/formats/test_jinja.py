"""The shipped report template: Jinja2, compiled ahead of time, and never imported by --help."""

from __future__ import annotations

import subprocess
import sys

import jinja2

from formats.verdict_samples import real_verdict, sample_verdict
from imggate.formats import _jinja, html, precompile


def test_checked_in_compiled_template_is_current():
    stale = precompile.stale()
    assert stale == [], (f"the precompiled report template is stale ({', '.join(stale)}); "
                         f"run: PYTHONPATH=src {precompile.COMMAND}")


def test_a_run_loads_the_compiled_module_not_the_source():
    loader = _jinja.report_template().environment.loader
    assert isinstance(loader, jinja2.ModuleLoader)
    assert _jinja.report_template().environment.autoescape is True


def test_compiled_and_source_render_the_same_page():
    env = _jinja.environment(jinja2.FileSystemLoader(str(_jinja.TEMPLATES)))
    from_source = env.get_template(_jinja.REPORT)
    original = _jinja.report_template
    for verdict in (sample_verdict(40), real_verdict()):
        compiled = html.render(verdict, tool_version="t")
        try:
            _jinja.report_template = lambda: from_source  # type: ignore[method-assign]
            assert html.render(verdict, tool_version="t") == compiled
        finally:
            _jinja.report_template = original  # type: ignore[method-assign]


def test_a_stale_stamp_falls_back_to_the_source(tmp_path, monkeypatch):
    monkeypatch.setattr(_jinja, "COMPILED", tmp_path / "missing")
    assert not _jinja._compiled_is_current()
    precompile.build(tmp_path / "built")
    monkeypatch.setattr(_jinja, "COMPILED", tmp_path / "built")
    assert _jinja._compiled_is_current()
    (tmp_path / "built" / "STAMP").write_text("jinja2=0.0\n")
    assert not _jinja._compiled_is_current()


def test_help_does_not_import_jinja2():
    code = ("import sys\n"
            "from imggate._cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('jinja2', 'markupsafe') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "[]"

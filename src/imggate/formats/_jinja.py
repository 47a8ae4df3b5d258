"""The Jinja2 environment of imggate's own HTML report, compiled once per process.

jinja2 is imported here and in :mod:`.html_template` only, and those only when
a report is rendered: ``imggate --help`` never imports it.

The shipped templates (``templates/report.html.j2``, the page, and
``templates/report_section.html.j2``, one image's section of it) are compiled to Python at
development time by :mod:`imggate.formats.precompile` into ``_compiled/``
(checked in and shipped in the wheel; a test fails when it is stale). A run
imports that module instead of parsing and compiling the template (~40 ms of
a check). When the compiled module does not match the template or the
installed Jinja2 (a patched template, another Jinja2 release), the template is
compiled from its source instead: the same page, only slower.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import jinja2

#: The shipped report template, in :data:`TEMPLATES`.
REPORT = "report.html.j2"
#: One image's section of the report (rendered apart: see ``html._Sections``).
SECTION = "report_section.html.j2"
#: Every shipped template (each compiled ahead of time).
SHIPPED = (REPORT, SECTION)
TEMPLATES = Path(__file__).resolve().parent / "templates"
COMPILED = Path(__file__).resolve().parent / "_compiled"


def environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    """The report's environment; the precompiled code is only valid with these settings.

    Autoescape is on: every value is untrusted text unless html.py marks it
    as markup (its own static assets and the rows it escapes itself).
    """
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def source_digest(name: str) -> str:
    """SHA-256 of a shipped template's source: what the compiled module was built from."""
    return hashlib.sha256((TEMPLATES / name).read_bytes()).hexdigest()


def _compiled_is_current() -> bool:
    """The checked-in compiled module was built from this template by this Jinja2."""
    stamp = COMPILED / "STAMP"
    try:
        built = stamp.read_text("utf-8").split()
    except OSError:
        return False
    return built == stamp_fields()


def stamp_fields() -> list[str]:
    """What the compiled templates depend on: Jinja2's version and each source's digest."""
    return [f"jinja2={jinja2.__version__}", *(f"{n}={source_digest(n)}" for n in SHIPPED)]


@lru_cache(maxsize=1)
def _shipped() -> jinja2.Environment:
    """The environment of the shipped templates, made once per process."""
    loader: jinja2.BaseLoader
    if _compiled_is_current():
        loader = jinja2.ModuleLoader(str(COMPILED))
    else:
        loader = jinja2.FileSystemLoader(str(TEMPLATES))
    return environment(loader)


@lru_cache(maxsize=1)
def report_template() -> jinja2.Template:
    """The shipped report template, loaded once per process."""
    return _shipped().get_template(REPORT)


@lru_cache(maxsize=1)
def section_template() -> jinja2.Template:
    """The shipped template of one image's section, loaded once per process."""
    return _shipped().get_template(SECTION)

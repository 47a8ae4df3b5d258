"""The markup of ``imggate-report.html``: the page around the views :mod:`.html` builds.

This was a Jinja template; as plain functions it needs neither Jinja's import
nor a template compile on every run (~50 ms of a check). The rules are the
template's: every value is untrusted text and goes through :func:`_x` (the
same escaping as Jinja's autoescape); only our own static assets (checked in
:mod:`.html`) and the findings rows (escaped where they are built) are
inserted as they are. Keep the page readable without JavaScript.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SEVERITY_NAMES = ("Critical", "High", "Medium", "Low", "Info", "Unknown")


def _x(value: object) -> str:
    """``value`` as HTML text, quotes included (as markupsafe/Jinja autoescape does)."""
    return (str(value).replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
            .replace("'", "&#39;").replace('"', "&#34;"))


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _sev(name: str) -> str:
    return f'<span class="sev sev-{_x(name.lower())}">{_x(name)}</span>'


def _counts(pairs: Iterable[tuple[str, int]]) -> str:
    out = ['<ul class="counts" aria-label="Findings by severity">\n']
    for name, n in pairs:
        zero = " zero" if n == 0 else ""
        out.append(f'  <li class="count sev-{_x(name.lower())}{zero}"><span class="n">{_x(n)}'
                   f"</span> {_x(name)}</li>\n")
    out.append("</ul>\n")
    return "".join(out)


def _rule_list(items: Iterable[dict[str, Any]], kind: str) -> str:
    out = [f'<ol class="rules {_x(kind)}">\n']
    for r in items:
        out.append(f'  <li><span class="rule-name">{_x(r["rule"])}</span> '
                   f'<span class="mode mode-{_x(r["mode"])}">{_x(r["mode"])}</span>\n')
        if r["messages"]:
            out.append('    <ul class="messages">\n')
            out.extend(f"<li>{_x(m)}</li>" for m in r["messages"])
            out.append("    </ul>\n")
        out.append("  </li>\n")
    out.append("</ol>\n")
    return "".join(out)


def _finding_table(rows: str, anchor: str, caption: str, with_reason: bool) -> str:
    """A findings table; ``rows`` are ``<tr>`` elements already escaped."""
    filters = "".join(
        f'    <label class="sev-filter"><input type="checkbox" value="{_x(name)}" checked> '
        f"{_sev(name)}</label>\n" for name in SEVERITY_NAMES)
    last = "Suppressed by" if with_reason else "Found by"
    return (
        '<div class="findings" data-findings>\n  <div class="filters" hidden>\n'
        '    <span class="label">Severity:</span>\n'
        f"{filters}"
        '    <label class="search">Search <input type="search" '
        'placeholder="id, package, version"></label>\n'
        '    <span class="shown" aria-live="polite"></span>\n  </div>\n'
        f'  <div class="table-wrap">\n  <table class="data" id="{_x(anchor)}">\n'
        f"    <caption>{_x(caption)}</caption>\n    <thead>\n      <tr>\n"
        '        <th data-key="severity" data-type="number" scope="col">Severity</th>\n'
        '        <th data-key="id" scope="col">Vulnerability</th>\n'
        '        <th data-key="package" scope="col">Package</th>\n'
        '        <th data-key="version" scope="col">Installed</th>\n'
        '        <th data-key="fixed" scope="col">Fixed in</th>\n'
        '        <th data-key="cvss" data-type="number" scope="col">CVSS</th>\n'
        f'        <th data-key="sources" scope="col">{last}</th>\n'
        "      </tr>\n    </thead>\n    <tbody>\n"
        # The rows are built by html._finding_rows (escaped there): 10,000 of
        # them are most of the page.
        f"    {rows}\n"
        "    </tbody>\n  </table>\n  </div>\n</div>\n"
    )


def _summary(images: list[dict[str, Any]], totals: list[tuple[str, int]]) -> str:
    if not images:
        return ('  <p class="error-box">No images were checked. A run that checked nothing '
                "is never an allow.</p>\n")
    out = [
        '  <table class="data summary">\n    <caption>Images checked</caption>\n'
        '    <thead><tr><th scope="col">Decision</th><th scope="col">Image</th>'
        '<th scope="col">Violations</th><th scope="col">Warnings</th>\n',
        *(f'<th scope="col" class="num">{_x(name)}</th>' for name, _ in totals),
        "</tr></thead>\n    <tbody>\n",
    ]
    for img in images:
        out.append(
            f'      <tr>\n        <td><span class="badge decision-{_x(img["decision"])}">'
            f'{_x(img["decision"])}</span></td>\n'
            f'        <td class="ref"><a href="#{_x(img["anchor"])}">{_x(img["reference"])}'
            "</a></td>\n"
            f'        <td class="num">{len(img["violations"])}</td>\n'
            f'        <td class="num">{len(img["warnings"])}</td>\n')
        out.extend(f'<td class="num{" zero" if n == 0 else ""}">{_x(n)}</td>'
                   for _, n in img["counts"])
        out.append("      </tr>\n")
    out.append("    </tbody>\n  </table>\n")
    return "".join(out)


def _all_rules(rules: list[dict[str, Any]]) -> str:
    out = [f'  <details class="all-rules">\n    <summary>All rules ({len(rules)})</summary>\n'
           '    <table class="data">\n      <thead><tr><th scope="col">Result</th>'
           '<th scope="col">Rule</th><th scope="col">Mode</th><th scope="col">Details</th>'
           "</tr></thead>\n      <tbody>\n"]
    for r in rules:
        messages = "".join(f"<div>{_x(m)}</div>" for m in r["messages"])
        out.append(f'        <tr><td><span class="state state-{_x(r["state"])}">'
                   f'{_x(r["state"])}</span></td><td class="rule-name">{_x(r["rule"])}</td>'
                   f'<td>{_x(r["mode"])}</td>\n          <td>{messages}</td></tr>\n')
    out.append("      </tbody>\n    </table>\n  </details>\n")
    return "".join(out)


def _signatures(signatures: list[dict[str, Any]]) -> str:
    if not signatures:
        return '  <p class="none">No signatures or attestations were checked.</p>\n'
    out = ['  <div class="table-wrap">\n  <table class="data signatures">\n'
           '    <thead><tr><th scope="col">Result</th><th scope="col">Kind</th>'
           '<th scope="col">Signer</th><th scope="col">Details</th><th scope="col">Where</th>'
           "</tr></thead>\n    <tbody>\n"]
    for s in signatures:
        state = ('<span class="state state-pass">verified</span>' if s["verified"]
                 else '<span class="state state-fail">not verified</span>')
        predicate = (f'<div class="small">{_x(s["predicate_type"])}</div>'
                     if s["predicate_type"] else "")
        tlog = '<div class="small">transparency log checked</div>' if s["tlog"] else ""
        signed = (f'<div class="small mono">signed {_x(s["signed_digest"])}</div>'
                  if s["signed_digest"] else "")
        out.append(
            f"      <tr>\n        <td>{state}</td>\n"
            f'        <td>{_x(s["kind"])}{predicate}</td>\n'
            f'        <td>{_x(s["signer"] or "—")}{tlog}</td>\n'
            f'        <td>{_x(s["reason"])}{signed}</td>\n'
            f'        <td class="mono small">{_x(s["location"])}</td>\n      </tr>\n')
    out.append("    </tbody>\n  </table>\n  </div>\n")
    return "".join(out)


def _exceptions(exceptions: list[dict[str, Any]]) -> str:
    if not exceptions:
        return '  <p class="none">No exceptions applied to this image.</p>\n'
    out = ['  <div class="table-wrap">\n  <table class="data exceptions">\n'
           '    <thead><tr><th scope="col">Status</th><th scope="col">Vulnerability</th>'
           '<th scope="col">Package</th><th scope="col">Expires</th><th scope="col">Reason</th>'
           '<th scope="col">Source</th><th scope="col">Matched</th></tr></thead>\n'
           "    <tbody>\n"]
    for e in exceptions:
        out.append(
            f'      <tr>\n        <td><span class="exc exc-{_x(e["status_class"])}">'
            f'{_x(e["status"])}</span></td>\n'
            f'        <td class="mono">{_x(e["vulnerability"])}</td>\n'
            f'        <td>{_x(e["package"] or "any")}</td>\n'
            f'        <td class="mono">{_x(e["expires"] or "never")}</td>\n'
            f'        <td>{_x(e["reason"])}</td>\n'
            f'        <td class="small">{_x(e["source"])}</td>\n'
            f'        <td class="small">{_x(", ".join(e["matched"]))}</td>\n      </tr>\n')
    out.append("    </tbody>\n  </table>\n  </div>\n")
    return "".join(out)


def _facts(facts: list[tuple[str, Any]]) -> str:
    if not facts:
        return ('  <p class="none">The image could not be resolved, so nothing is known '
                "about it.</p>\n")
    out = ['  <dl class="facts">\n']
    for label, value in facts:
        shown = (_x(value) if isinstance(value, str)
                 else "<ul>" + "".join(f"<li>{_x(v)}</li>" for v in value) + "</ul>")
        out.append(f"    <dt>{_x(label)}</dt>\n    <dd>{shown}</dd>\n")
    out.append("  </dl>\n")
    return "".join(out)


def _reports(reports: list[dict[str, Any]]) -> str:
    out = [f'  <h3>Scanner reports <span class="n">{len(reports)}</span></h3>\n'
           '  <div class="table-wrap">\n  <table class="data reports">\n'
           '    <thead><tr><th scope="col">Scanner</th><th scope="col">File</th>'
           '<th scope="col">Image named in report</th><th scope="col" class="num">Findings</th>'
           "</tr></thead>\n    <tbody>\n"]
    for r in reports:
        digests = f'<div class="mono">{_x(r["digests"])}</div>' if r["digests"] else ""
        out.append(
            f'      <tr><td>{_x(r["scanner"])} {_x(r["version"])}</td>'
            f'<td class="mono small">{_x(r["source"] or "—")}</td>\n'
            f'        <td class="small">{_x(r["image_name"] or "—")}{digests}</td>\n'
            f'        <td class="num">{_x(r["findings"])}</td></tr>\n')
    out.append("    </tbody>\n  </table>\n  </div>\n")
    return "".join(out)


def _evidence(img: dict[str, Any]) -> str:
    """Signatures, findings, exceptions and image facts of one image."""
    out = [f'  <h3>Signatures and attestations <span class="n">{len(img["signatures"])}'
           "</span></h3>\n", _signatures(img["signatures"]),
           f'\n  <h3>Findings <span class="n">{_x(img["total"])}</span></h3>\n  ',
           _counts(img["counts"]), "\n"]
    if img["total"]:
        out += ["  ", _finding_table(img["findings"], img["anchor"] + "-findings",
                                     "Vulnerabilities found in " + img["reference"], False),
                "\n"]
    else:
        left = "left after exceptions" if img["suppressed_count"] else "reported"
        out.append(f'  <p class="none">No vulnerabilities {left}.</p>\n')
    out.append("\n")
    if img["suppressed_count"]:
        out += ['  <details class="suppressed">\n    <summary>Suppressed findings '
                f'({_x(img["suppressed_count"])})</summary>\n    ',
                _finding_table(img["suppressed"], img["anchor"] + "-suppressed",
                               "Findings suppressed by exceptions or VEX", True),
                "\n  </details>\n"]
    out += [f'\n  <h3>Exceptions <span class="n">{len(img["exceptions"])}</span></h3>\n',
            _exceptions(img["exceptions"]), "\n  <h3>Image</h3>\n", _facts(img["facts"]), "\n"]
    return "".join(out)


def _image(img: dict[str, Any]) -> str:
    """One image's section: banner, violations and warnings, rules, evidence."""
    anchor = _x(img["anchor"])
    nv, nw, total = len(img["violations"]), len(img["warnings"]), img["total"]
    pinned = f'<div class="pinned">{_x(img["pinned"])}</div>' if img["pinned"] else ""
    out = [
        f'<section class="image" id="{anchor}" aria-labelledby="{anchor}-title">\n'
        f'  <div class="banner decision-{_x(img["decision"])}">\n'
        f'    <div class="verdict">{_x(img["decision_text"])}</div>\n'
        f'    <h2 id="{anchor}-title" class="ref">{_x(img["reference"])}</h2>\n'
        f'{pinned}    <div class="meta">environment <b>{_x(img["env"])}</b> · '
        f"{nv} violation{_s(nv)} · {nw} warning{_s(nw)} · "
        f'{_x(total)} finding{"" if total == 1 else "s"}</div>\n  </div>\n\n'
    ]
    if img["error"]:
        out.append('  <div class="error-box"><strong>Could not decide:</strong> '
                   f'<span class="error-text">{_x(img["error"])}</span></div>\n')
    out.append("\n")
    if img["violations"]:
        out += [f'  <h3>Violations <span class="n">{nv}</span></h3>\n  ',
                _rule_list(img["violations"], "violations"), "\n"]
    out.append("\n")
    if img["warnings"]:
        out += [f'  <h3>Warnings <span class="n">{nw}</span></h3>\n  ',
                _rule_list(img["warnings"], "warnings"), "\n"]
    out.append("\n")
    if img["rules"]:
        out.append(_all_rules(img["rules"]))
    out.append("\n")
    if not img["evidence"]:
        out.append('  <p class="none">No evidence was gathered for this image: without it '
                   "nothing can be allowed.</p>\n")
    else:
        out.append(_evidence(img))
    out.append("\n")
    if img["reports"]:
        out.append(_reports(img["reports"]))
    out.append("\n")
    if img["notes"]:
        out.append('  <h3>Notes</h3>\n  <ul class="notes">'
                   + "".join(f"<li>{_x(n)}</li>" for n in img["notes"]) + "</ul>\n")
    out.append("</section>\n")
    return "".join(out)


def page(*, css: str, js: str, csp: str, env: str, generated: str, decision: str,
         decision_text: str, exit_code: int, images: list[dict[str, Any]],
         totals: list[tuple[str, int]], tool_version: str) -> str:
    """The whole document. ``css``/``js`` go in verbatim: the caller vouches for them."""
    n = len(images)
    return "".join([
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_x(csp)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f'<meta name="generator" content="imggate {_x(tool_version)}">\n'
        f"<title>imggate: {_x(decision_text)} ({_x(env)})</title>\n<style>{css}</style>\n"
        f'</head>\n<body class="run-{_x(decision)}">\n'
        '\n<header class="top">\n  <h1>imggate report</h1>\n'
        f'  <div class="run-banner decision-{_x(decision)}" role="status">\n'
        f'    <span class="verdict">{_x(decision_text)}</span>\n'
        f"    <span class=\"meta\">environment <b>{_x(env)}</b> · {n} image{_s(n)} · "
        f"exit code <b>{_x(exit_code)}</b> · {_x(generated)}</span>\n  </div>\n",
        _summary(images, totals),
        "</header>\n\n<main>\n",
        *(_image(img) for img in images),
        f"</main>\n<footer>Generated by imggate {_x(tool_version)} on {_x(generated)}. "
        "This file is self-contained and loads nothing from the network.</footer>\n"
        f"<script>{js}</script>\n</body>\n</html>",
    ])

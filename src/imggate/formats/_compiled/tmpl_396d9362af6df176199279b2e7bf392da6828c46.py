from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'report.html.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_csp = resolve('csp')
    l_0_tool_version = resolve('tool_version')
    l_0_decision_text = resolve('decision_text')
    l_0_env = resolve('env')
    l_0_css = resolve('css')
    l_0_decision = resolve('decision')
    l_0_sections = resolve('sections')
    l_0_exit_code = resolve('exit_code')
    l_0_generated = resolve('generated')
    l_0_run = resolve('run')
    l_0_run_error = resolve('run_error')
    l_0_totals = resolve('totals')
    l_0_summary_rows = resolve('summary_rows')
    l_0_js = resolve('js')
    try:
        t_1 = environment.filters['length']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'length' found.")
    pass
    yield '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="'
    yield escape((undefined(name='csp') if l_0_csp is missing else l_0_csp))
    yield '">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n<meta name="referrer" content="no-referrer">\n<meta name="generator" content="imggate '
    yield escape((undefined(name='tool_version') if l_0_tool_version is missing else l_0_tool_version))
    yield '">\n<title>imggate: '
    yield escape((undefined(name='decision_text') if l_0_decision_text is missing else l_0_decision_text))
    yield ' ('
    yield escape((undefined(name='env') if l_0_env is missing else l_0_env))
    yield ')</title>\n<style>'
    yield escape((undefined(name='css') if l_0_css is missing else l_0_css))
    yield '</style>\n</head>\n<body class="run-'
    yield escape((undefined(name='decision') if l_0_decision is missing else l_0_decision))
    yield '">\n\n<header class="top">\n  <h1>imggate report</h1>\n  <div class="run-banner decision-'
    yield escape((undefined(name='decision') if l_0_decision is missing else l_0_decision))
    yield '" role="status">\n    <span class="verdict">'
    yield escape((undefined(name='decision_text') if l_0_decision_text is missing else l_0_decision_text))
    yield '</span>\n    <span class="meta">environment <b>'
    yield escape((undefined(name='env') if l_0_env is missing else l_0_env))
    yield '</b> · '
    yield escape(t_1((undefined(name='sections') if l_0_sections is missing else l_0_sections)))
    yield ' image'
    if (t_1((undefined(name='sections') if l_0_sections is missing else l_0_sections)) != 1):
        pass
        yield 's'
    yield ' · exit code <b>'
    yield escape((undefined(name='exit_code') if l_0_exit_code is missing else l_0_exit_code))
    yield '</b> · '
    yield escape((undefined(name='generated') if l_0_generated is missing else l_0_generated))
    yield '</span>\n  </div>\n'
    if (undefined(name='run') if l_0_run is missing else l_0_run):
        pass
        yield '  <dl class="provenance">\n    <dt>Rules</dt><dd><span class="mono">'
        yield escape(environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'rules'))
        yield '</span> ('
        yield escape(environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'found_by'))
        yield ')'
        if environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'sha256'):
            pass
            yield ' <span class="mono small">sha256 '
            yield escape(environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'sha256'))
            yield '</span>'
        yield '</dd>\n    <dt>Environment</dt><dd><b>'
        yield escape(environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'env'))
        yield '</b>: '
        yield escape(environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'env_reason'))
        yield '</dd>\n    <dt>imggate</dt><dd>'
        yield escape((undefined(name='tool_version') if l_0_tool_version is missing else l_0_tool_version))
        yield '</dd>\n  </dl>\n'
        if environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'notes'):
            pass
            yield '  <ul class="notes policy-notes">'
            for l_1_n in environment.getattr((undefined(name='run') if l_0_run is missing else l_0_run), 'notes'):
                _loop_vars = {}
                pass
                yield '<li>'
                yield escape(l_1_n)
                yield '</li>'
            l_1_n = missing
            yield '</ul>\n'
    if (undefined(name='run_error') if l_0_run_error is missing else l_0_run_error):
        pass
        yield '  <p class="error-box"><strong>Could not decide:</strong> '
        yield escape((undefined(name='run_error') if l_0_run_error is missing else l_0_run_error))
        yield '</p>\n'
    if (undefined(name='sections') if l_0_sections is missing else l_0_sections):
        pass
        yield '  <table class="data summary">\n    <caption>Images checked</caption>\n    <thead><tr><th scope="col">Decision</th><th scope="col">Image</th><th scope="col">Violations</th><th scope="col">Warnings</th>\n'
        for (l_1_name, l_1__) in (undefined(name='totals') if l_0_totals is missing else l_0_totals):
            _loop_vars = {}
            pass
            yield '<th scope="col" class="num">'
            yield escape(l_1_name)
            yield '</th>'
        l_1_name = l_1__ = missing
        yield '</tr></thead>\n    <tbody>\n'
        for l_1_row in (undefined(name='summary_rows') if l_0_summary_rows is missing else l_0_summary_rows):
            _loop_vars = {}
            pass
            yield escape(l_1_row)
        l_1_row = missing
        yield '    </tbody>\n  </table>\n'
    else:
        pass
        yield '  <p class="error-box">No images were checked. A run that checked nothing is never an allow.</p>\n'
    yield '</header>\n\n<main>\n'
    for l_1_section in (undefined(name='sections') if l_0_sections is missing else l_0_sections):
        _loop_vars = {}
        pass
        yield escape(l_1_section)
    l_1_section = missing
    yield '</main>\n<footer>Generated by imggate '
    yield escape((undefined(name='tool_version') if l_0_tool_version is missing else l_0_tool_version))
    yield ' on '
    yield escape((undefined(name='generated') if l_0_generated is missing else l_0_generated))
    yield '. This file is self-contained and loads nothing from the network.</footer>\n<script>'
    yield escape((undefined(name='js') if l_0_js is missing else l_0_js))
    yield '</script>\n</body>\n</html>'

blocks = {}
debug_info = '8=32&11=34&12=36&13=40&15=42&19=44&20=46&21=48&23=60&25=63&26=73&27=77&29=79&30=82&33=90&34=93&36=95&40=98&42=106&51=116&53=122&54=126'
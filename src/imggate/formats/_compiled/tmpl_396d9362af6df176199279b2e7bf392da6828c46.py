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
    l_0_images = resolve('images')
    l_0_exit_code = resolve('exit_code')
    l_0_generated = resolve('generated')
    l_0_run = resolve('run')
    l_0_run_error = resolve('run_error')
    l_0_totals = resolve('totals')
    l_0_js = resolve('js')
    l_0_sev = l_0_counts = l_0_rule_list = l_0_finding_table = missing
    try:
        t_1 = environment.filters['join']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'join' found.")
    try:
        t_2 = environment.filters['length']
    except KeyError:
        @internalcode
        def t_2(*unused):
            raise TemplateRuntimeError("No filter named 'length' found.")
    try:
        t_3 = environment.filters['lower']
    except KeyError:
        @internalcode
        def t_3(*unused):
            raise TemplateRuntimeError("No filter named 'lower' found.")
    try:
        t_4 = environment.tests['string']
    except KeyError:
        @internalcode
        def t_4(*unused):
            raise TemplateRuntimeError("No test named 'string' found.")
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
    yield '">\n'
    def macro(l_1_name):
        t_5 = []
        if l_1_name is missing:
            l_1_name = undefined("parameter 'name' was not provided", name='name')
        pass
        t_5.extend((
            '<span class="sev sev-',
            escape(t_3(l_1_name)),
            '">',
            escape(l_1_name),
            '</span>',
        ))
        return concat(t_5)
    context.exported_vars.add('sev')
    context.vars['sev'] = l_0_sev = Macro(environment, macro, 'sev', ('name',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_pairs):
        t_6 = []
        if l_1_pairs is missing:
            l_1_pairs = undefined("parameter 'pairs' was not provided", name='pairs')
        pass
        t_6.append(
            '<ul class="counts" aria-label="Findings by severity">\n',
        )
        for (l_2_name, l_2_n) in l_1_pairs:
            _loop_vars = {}
            pass
            t_6.extend((
                '  <li class="count sev-',
                escape(t_3(l_2_name)),
            ))
            if (l_2_n == 0):
                pass
                t_6.append(
                    ' zero',
                )
            t_6.extend((
                '"><span class="n">',
                escape(l_2_n),
                '</span> ',
                escape(l_2_name),
                '</li>\n',
            ))
        l_2_name = l_2_n = missing
        t_6.append(
            '</ul>\n',
        )
        return concat(t_6)
    context.exported_vars.add('counts')
    context.vars['counts'] = l_0_counts = Macro(environment, macro, 'counts', ('pairs',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_items, l_1_kind):
        t_7 = []
        if l_1_items is missing:
            l_1_items = undefined("parameter 'items' was not provided", name='items')
        if l_1_kind is missing:
            l_1_kind = undefined("parameter 'kind' was not provided", name='kind')
        pass
        t_7.extend((
            '<ol class="rules ',
            escape(l_1_kind),
            '">\n',
        ))
        for l_2_r in l_1_items:
            _loop_vars = {}
            pass
            t_7.extend((
                '  <li><span class="rule-name">',
                escape(environment.getattr(l_2_r, 'rule')),
                '</span> <span class="mode mode-',
                escape(environment.getattr(l_2_r, 'mode')),
                '">',
                escape(environment.getattr(l_2_r, 'mode')),
                '</span>\n',
            ))
            if environment.getattr(l_2_r, 'messages'):
                pass
                t_7.append(
                    '    <ul class="messages">\n',
                )
                for l_3_m in environment.getattr(l_2_r, 'messages'):
                    _loop_vars = {}
                    pass
                    t_7.extend((
                        '<li>',
                        escape(l_3_m),
                        '</li>',
                    ))
                l_3_m = missing
                t_7.append(
                    '    </ul>\n',
                )
            t_7.append(
                '  </li>\n',
            )
        l_2_r = missing
        t_7.append(
            '</ol>\n',
        )
        return concat(t_7)
    context.exported_vars.add('rule_list')
    context.vars['rule_list'] = l_0_rule_list = Macro(environment, macro, 'rule_list', ('items', 'kind'), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_rows, l_1_anchor, l_1_caption, l_1_with_reason):
        t_8 = []
        if l_1_rows is missing:
            l_1_rows = undefined("parameter 'rows' was not provided", name='rows')
        if l_1_anchor is missing:
            l_1_anchor = undefined("parameter 'anchor' was not provided", name='anchor')
        if l_1_caption is missing:
            l_1_caption = undefined("parameter 'caption' was not provided", name='caption')
        if l_1_with_reason is missing:
            l_1_with_reason = undefined("parameter 'with_reason' was not provided", name='with_reason')
        pass
        t_8.append(
            '<div class="findings" data-findings>\n  <div class="filters" hidden>\n    <span class="label">Severity:</span>\n',
        )
        for l_2_name in ['Critical', 'High', 'Medium', 'Low', 'Info', 'Unknown']:
            _loop_vars = {}
            pass
            t_8.extend((
                '    <label class="sev-filter"><input type="checkbox" value="',
                escape(l_2_name),
                '" checked> ',
                escape(context.call((undefined(name='sev') if l_0_sev is missing else l_0_sev), l_2_name, _loop_vars=_loop_vars)),
                '</label>\n',
            ))
        l_2_name = missing
        t_8.extend((
            '    <label class="search">Search <input type="search" placeholder="id, package, version"></label>\n    <span class="shown" aria-live="polite"></span>\n  </div>\n  <div class="table-wrap">\n  <table class="data" id="',
            escape(l_1_anchor),
            '">\n    <caption>',
            escape(l_1_caption),
            '</caption>\n    <thead>\n      <tr>\n        <th data-key="severity" data-type="number" scope="col">Severity</th>\n        <th data-key="id" scope="col">Vulnerability</th>\n        <th data-key="package" scope="col">Package</th>\n        <th data-key="version" scope="col">Installed</th>\n        <th data-key="fixed" scope="col">Fixed in</th>\n        <th data-key="cvss" data-type="number" scope="col">CVSS</th>\n        <th data-key="sources" scope="col">',
        ))
        if l_1_with_reason:
            pass
            t_8.append(
                'Suppressed by',
            )
        else:
            pass
            t_8.append(
                'Found by',
            )
        t_8.extend((
            '</th>\n      </tr>\n    </thead>\n    <tbody>\n    ',
            escape(l_1_rows),
            '\n    </tbody>\n  </table>\n  </div>\n</div>\n',
        ))
        return concat(t_8)
    context.exported_vars.add('finding_table')
    context.vars['finding_table'] = l_0_finding_table = Macro(environment, macro, 'finding_table', ('rows', 'anchor', 'caption', 'with_reason'), False, False, False, context.eval_ctx.autoescape)
    yield '\n<header class="top">\n  <h1>imggate report</h1>\n  <div class="run-banner decision-'
    yield escape((undefined(name='decision') if l_0_decision is missing else l_0_decision))
    yield '" role="status">\n    <span class="verdict">'
    yield escape((undefined(name='decision_text') if l_0_decision_text is missing else l_0_decision_text))
    yield '</span>\n    <span class="meta">environment <b>'
    yield escape((undefined(name='env') if l_0_env is missing else l_0_env))
    yield '</b> · '
    yield escape(t_2((undefined(name='images') if l_0_images is missing else l_0_images)))
    yield ' image'
    if (t_2((undefined(name='images') if l_0_images is missing else l_0_images)) != 1):
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
    if (undefined(name='images') if l_0_images is missing else l_0_images):
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
        for l_1_img in (undefined(name='images') if l_0_images is missing else l_0_images):
            _loop_vars = {}
            pass
            yield '      <tr>\n        <td><span class="badge decision-'
            yield escape(environment.getattr(l_1_img, 'decision'))
            yield '">'
            yield escape(environment.getattr(l_1_img, 'decision'))
            yield '</span>'
            if environment.getattr(l_1_img, 'not_scanned'):
                pass
                yield ' <span class="badge not-scanned">not scanned</span>'
            yield '</td>\n        <td class="ref"><a href="#'
            yield escape(environment.getattr(l_1_img, 'anchor'))
            yield '">'
            yield escape(environment.getattr(l_1_img, 'reference'))
            yield '</a></td>\n        <td class="num">'
            yield escape(t_2(environment.getattr(l_1_img, 'violations')))
            yield '</td>\n        <td class="num">'
            yield escape(t_2(environment.getattr(l_1_img, 'warnings')))
            yield '</td>\n'
            if (environment.getattr(l_1_img, 'not_scanned') or environment.getattr(l_1_img, 'unread')):
                pass
                for (l_2_name, l_2_n) in environment.getattr(l_1_img, 'counts'):
                    _loop_vars = {}
                    pass
                    yield '<td class="num unknown" title="'
                    if environment.getattr(l_1_img, 'unread'):
                        pass
                        yield 'could not be read: unknown'
                    else:
                        pass
                        yield 'not scanned: unknown'
                    yield '">—</td>'
                l_2_name = l_2_n = missing
            else:
                pass
                for (l_2_name, l_2_n) in environment.getattr(l_1_img, 'counts'):
                    _loop_vars = {}
                    pass
                    yield '<td class="num'
                    if (l_2_n == 0):
                        pass
                        yield ' zero'
                    yield '">'
                    yield escape(l_2_n)
                    yield '</td>'
                l_2_name = l_2_n = missing
            yield '      </tr>\n'
        l_1_img = missing
        yield '    </tbody>\n  </table>\n'
    else:
        pass
        yield '  <p class="error-box">No images were checked. A run that checked nothing is never an allow.</p>\n'
    yield '</header>\n\n<main>\n'
    for l_1_img in (undefined(name='images') if l_0_images is missing else l_0_images):
        _loop_vars = {}
        pass
        yield '<section class="image" id="'
        yield escape(environment.getattr(l_1_img, 'anchor'))
        yield '" aria-labelledby="'
        yield escape(environment.getattr(l_1_img, 'anchor'))
        yield '-title">\n  <div class="banner decision-'
        yield escape(environment.getattr(l_1_img, 'decision'))
        yield '">\n    <div class="verdict">'
        yield escape(environment.getattr(l_1_img, 'decision_text'))
        yield '</div>\n    <h2 id="'
        yield escape(environment.getattr(l_1_img, 'anchor'))
        yield '-title" class="ref">'
        yield escape(environment.getattr(l_1_img, 'reference'))
        yield '</h2>\n'
        if environment.getattr(l_1_img, 'pinned'):
            pass
            yield '<div class="pinned">'
            yield escape(environment.getattr(l_1_img, 'pinned'))
            yield '</div>'
        yield '    <div class="meta">environment <b>'
        yield escape(environment.getattr(l_1_img, 'env'))
        yield '</b> · '
        yield escape(t_2(environment.getattr(l_1_img, 'violations')))
        yield ' violation'
        if (t_2(environment.getattr(l_1_img, 'violations')) != 1):
            pass
            yield 's'
        yield ' · '
        yield escape(t_2(environment.getattr(l_1_img, 'warnings')))
        yield ' warning'
        if (t_2(environment.getattr(l_1_img, 'warnings')) != 1):
            pass
            yield 's'
        yield ' · '
        if environment.getattr(l_1_img, 'not_scanned'):
            pass
            yield '<b>NOT SCANNED</b>'
        else:
            pass
            yield escape(environment.getattr(l_1_img, 'total'))
            yield ' finding'
            if (environment.getattr(l_1_img, 'total') != 1):
                pass
                yield 's'
        yield '</div>\n  </div>\n\n'
        if environment.getattr(l_1_img, 'not_scanned'):
            pass
            yield '  <div class="not-scanned-box" role="alert">\n    <strong>NOT SCANNED</strong>\n    <p>No scanner evidence was used for this image'
            if environment.getattr(l_1_img, 'reports'):
                pass
                yield ' ('
                yield escape(t_2(environment.getattr(l_1_img, 'reports')))
                yield ' report'
                if (t_2(environment.getattr(l_1_img, 'reports')) != 1):
                    pass
                    yield 's'
                yield ' given, none usable: see Scanner evidence)'
            else:
                pass
                yield ' (no report, scan or attestation was given)'
            yield '. Its vulnerabilities are unknown: zero findings here mean nothing was checked, not that nothing was found.</p>\n  </div>\n'
        yield '\n'
        if environment.getattr(l_1_img, 'error'):
            pass
            yield '  <div class="error-box"><strong>'
            if (environment.getattr(l_1_img, 'decision') == 'deny'):
                pass
                yield 'Also not checked'
            else:
                pass
                yield 'Could not decide'
            yield ':</strong> <span class="error-text">'
            yield escape(environment.getattr(l_1_img, 'error'))
            yield '</span></div>\n'
        yield '\n'
        if environment.getattr(l_1_img, 'violations'):
            pass
            yield '  <h3>Violations <span class="n">'
            yield escape(t_2(environment.getattr(l_1_img, 'violations')))
            yield '</span></h3>\n  '
            yield escape(context.call((undefined(name='rule_list') if l_0_rule_list is missing else l_0_rule_list), environment.getattr(l_1_img, 'violations'), 'violations', _loop_vars=_loop_vars))
            yield '\n'
        yield '\n'
        if environment.getattr(l_1_img, 'warnings'):
            pass
            yield '  <h3>Warnings <span class="n">'
            yield escape(t_2(environment.getattr(l_1_img, 'warnings')))
            yield '</span></h3>\n  '
            yield escape(context.call((undefined(name='rule_list') if l_0_rule_list is missing else l_0_rule_list), environment.getattr(l_1_img, 'warnings'), 'warnings', _loop_vars=_loop_vars))
            yield '\n'
        yield '\n'
        if environment.getattr(l_1_img, 'rules'):
            pass
            yield '  <details class="all-rules">\n    <summary>All rules ('
            yield escape(t_2(environment.getattr(l_1_img, 'rules')))
            yield ')</summary>\n    <table class="data">\n      <thead><tr><th scope="col">Result</th><th scope="col">Rule</th><th scope="col">Mode</th><th scope="col">Details</th></tr></thead>\n      <tbody>\n'
            for l_2_r in environment.getattr(l_1_img, 'rules'):
                _loop_vars = {}
                pass
                yield '        <tr><td><span class="state state-'
                yield escape(environment.getattr(l_2_r, 'state'))
                yield '">'
                yield escape(environment.getattr(l_2_r, 'state'))
                yield '</span></td><td class="rule-name">'
                yield escape(environment.getattr(l_2_r, 'rule'))
                yield '</td><td>'
                yield escape(environment.getattr(l_2_r, 'mode'))
                yield '</td>\n          <td>'
                for l_3_m in environment.getattr(l_2_r, 'messages'):
                    _loop_vars = {}
                    pass
                    yield '<div>'
                    yield escape(l_3_m)
                    yield '</div>'
                l_3_m = missing
                yield '</td></tr>\n'
            l_2_r = missing
            yield '      </tbody>\n    </table>\n  </details>\n'
        yield '\n'
        if (not environment.getattr(l_1_img, 'evidence')):
            pass
            yield '  <p class="none">No evidence was gathered for this image: without it nothing can be allowed.</p>\n'
        else:
            pass
            yield '  <h3>Signatures and attestations <span class="n">'
            yield escape(t_2(environment.getattr(l_1_img, 'signatures')))
            yield '</span></h3>\n'
            if environment.getattr(l_1_img, 'signatures'):
                pass
                yield '  <div class="table-wrap">\n  <table class="data signatures">\n    <thead><tr><th scope="col">Result</th><th scope="col">Kind</th><th scope="col">Signer</th><th scope="col">Details</th><th scope="col">Where</th></tr></thead>\n    <tbody>\n'
                for l_2_s in environment.getattr(l_1_img, 'signatures'):
                    _loop_vars = {}
                    pass
                    yield '      <tr>\n        <td>'
                    if (environment.getattr(l_2_s, 'verified') and environment.getattr(l_2_s, 'unsafe')):
                        pass
                        yield '<span class="state state-warn" title="accepted without a transparency log entry">verified, UNSAFE</span>'
                    elif environment.getattr(l_2_s, 'verified'):
                        pass
                        yield '<span class="state state-pass">verified</span>'
                    else:
                        pass
                        yield '<span class="state state-fail">not verified</span>'
                    yield '</td>\n        <td>'
                    yield escape(environment.getattr(l_2_s, 'kind'))
                    if environment.getattr(l_2_s, 'predicate_type'):
                        pass
                        yield '<div class="small">'
                        yield escape(environment.getattr(l_2_s, 'predicate_type'))
                        yield '</div>'
                    yield '</td>\n        <td>'
                    yield escape((environment.getattr(l_2_s, 'signer') or '—'))
                    if environment.getattr(l_2_s, 'tlog'):
                        pass
                        yield '<div class="small">transparency log checked</div>'
                    yield '</td>\n        <td>'
                    yield escape(environment.getattr(l_2_s, 'reason'))
                    if environment.getattr(l_2_s, 'signed_digest'):
                        pass
                        yield '<div class="small mono">signed '
                        yield escape(environment.getattr(l_2_s, 'signed_digest'))
                        yield '</div>'
                    yield '</td>\n        <td class="mono small">'
                    yield escape(environment.getattr(l_2_s, 'location'))
                    yield '</td>\n      </tr>\n'
                l_2_s = missing
                yield '    </tbody>\n  </table>\n  </div>\n'
            else:
                pass
                yield '  <p class="none">No signatures or attestations were checked.</p>\n'
            yield '\n  <h3>Findings <span class="n">'
            if environment.getattr(l_1_img, 'not_scanned'):
                pass
                yield 'not scanned'
            else:
                pass
                yield escape(environment.getattr(l_1_img, 'total'))
            yield '</span></h3>\n'
            if environment.getattr(l_1_img, 'not_scanned'):
                pass
                yield '  <p class="none not-scanned">NOT SCANNED: no findings were gathered for this image.</p>\n'
            else:
                pass
                yield '  '
                yield escape(context.call((undefined(name='counts') if l_0_counts is missing else l_0_counts), environment.getattr(l_1_img, 'counts'), _loop_vars=_loop_vars))
                yield '\n'
            if environment.getattr(l_1_img, 'total'):
                pass
                yield '  '
                yield escape(context.call((undefined(name='finding_table') if l_0_finding_table is missing else l_0_finding_table), environment.getattr(l_1_img, 'findings'), markup_join((environment.getattr(l_1_img, 'anchor'), '-findings', )), markup_join(('Vulnerabilities found in ', environment.getattr(l_1_img, 'reference'), )), False, _loop_vars=_loop_vars))
                yield '\n'
            elif (not environment.getattr(l_1_img, 'not_scanned')):
                pass
                yield '  <p class="none">No vulnerabilities '
                if environment.getattr(l_1_img, 'suppressed_count'):
                    pass
                    yield 'left after exceptions'
                else:
                    pass
                    yield 'reported'
                yield '.</p>\n'
            yield '\n'
            if environment.getattr(l_1_img, 'suppressed_count'):
                pass
                yield '  <details class="suppressed">\n    <summary>Suppressed findings ('
                yield escape(environment.getattr(l_1_img, 'suppressed_count'))
                yield ')</summary>\n    '
                yield escape(context.call((undefined(name='finding_table') if l_0_finding_table is missing else l_0_finding_table), environment.getattr(l_1_img, 'suppressed'), markup_join((environment.getattr(l_1_img, 'anchor'), '-suppressed', )), 'Findings suppressed by exceptions or VEX', True, _loop_vars=_loop_vars))
                yield '\n  </details>\n'
            yield '\n  <h3>Exceptions <span class="n">'
            yield escape((t_2(environment.getattr(l_1_img, 'exceptions')) + environment.getattr(l_1_img, 'exceptions_unlisted')))
            yield '</span></h3>\n'
            if environment.getattr(l_1_img, 'exceptions'):
                pass
                yield '  <div class="table-wrap">\n  <table class="data exceptions">\n    <thead><tr><th scope="col">Status</th><th scope="col">Vulnerability</th><th scope="col">Package</th><th scope="col">Expires</th><th scope="col">Reason</th><th scope="col">Source</th><th scope="col">Matched</th></tr></thead>\n    <tbody>\n'
                for l_2_e in environment.getattr(l_1_img, 'exceptions'):
                    _loop_vars = {}
                    pass
                    yield '      <tr>\n        <td><span class="exc exc-'
                    yield escape(environment.getattr(l_2_e, 'status_class'))
                    yield '">'
                    yield escape(environment.getattr(l_2_e, 'status'))
                    yield '</span></td>\n        <td class="mono">'
                    yield escape(environment.getattr(l_2_e, 'vulnerability'))
                    yield '</td>\n        <td>'
                    yield escape((environment.getattr(l_2_e, 'package') or 'any'))
                    yield '</td>\n        <td class="mono">'
                    yield escape((environment.getattr(l_2_e, 'expires') or 'never'))
                    yield '</td>\n        <td>'
                    yield escape(environment.getattr(l_2_e, 'reason'))
                    yield '</td>\n        <td class="small">'
                    yield escape(environment.getattr(l_2_e, 'source'))
                    yield '</td>\n        <td class="small">'
                    yield escape(t_1(context.eval_ctx, environment.getattr(l_2_e, 'matched'), ', '))
                    yield '</td>\n      </tr>\n'
                l_2_e = missing
                yield '    </tbody>\n  </table>\n  </div>\n'
                if environment.getattr(l_1_img, 'exceptions_unlisted'):
                    pass
                    yield '  <p class="small">and '
                    yield escape(environment.getattr(l_1_img, 'exceptions_unlisted'))
                    yield ' more exceptions that matched nothing, not listed: see their files</p>\n'
            else:
                pass
                yield '  <p class="none">No exceptions applied to this image.</p>\n'
            yield '\n  <h3>Image</h3>\n'
            if environment.getattr(l_1_img, 'facts'):
                pass
                yield '  <dl class="facts">\n'
                for (l_2_label, l_2_value) in environment.getattr(l_1_img, 'facts'):
                    _loop_vars = {}
                    pass
                    yield '    <dt>'
                    yield escape(l_2_label)
                    yield '</dt>\n    <dd>'
                    if t_4(l_2_value):
                        pass
                        yield escape(l_2_value)
                    else:
                        pass
                        yield '<ul>'
                        for l_3_v in l_2_value:
                            _loop_vars = {}
                            pass
                            yield '<li>'
                            yield escape(l_3_v)
                            yield '</li>'
                        l_3_v = missing
                        yield '</ul>'
                    yield '</dd>\n'
                l_2_label = l_2_value = missing
                yield '  </dl>\n'
            else:
                pass
                yield '  <p class="none">The image could not be resolved, so nothing is known about it.</p>\n'
            yield '\n'
        yield '\n'
        if environment.getattr(l_1_img, 'reports'):
            pass
            yield '  <h3>Scanner evidence <span class="n">'
            yield escape(t_2(environment.getattr(l_1_img, 'reports')))
            yield '</span></h3>\n  <div class="table-wrap">\n  <table class="data reports">\n    <thead><tr><th scope="col">Used</th><th scope="col">Scanner</th><th scope="col">Created</th><th scope="col">Age</th><th scope="col">File</th><th scope="col">About</th><th scope="col" class="num">Findings</th></tr></thead>\n    <tbody>\n'
            for l_2_r in environment.getattr(l_1_img, 'reports'):
                _loop_vars = {}
                pass
                yield '      <tr class="evidence-'
                yield escape(environment.getattr(l_2_r, 'binding'))
                yield '">\n        <td>'
                if (environment.getattr(l_2_r, 'used') and environment.getattr(l_2_r, 'problems')):
                    pass
                    yield '<span class="state state-warn" title="its findings count, but see why it is suspect">used, suspect</span>'
                elif environment.getattr(l_2_r, 'used'):
                    pass
                    yield '<span class="state state-pass">used</span>'
                else:
                    pass
                    yield '<span class="state state-fail">refused</span>'
                yield '</td>\n        <td>'
                yield escape(environment.getattr(l_2_r, 'scanner'))
                yield ' '
                yield escape(environment.getattr(l_2_r, 'version'))
                if (environment.getattr(l_2_r, 'kind') != 'report'):
                    pass
                    yield '<div class="small">'
                    yield escape(environment.getattr(l_2_r, 'kind'))
                    yield '</div>'
                yield '</td>\n        <td class="mono small">'
                yield escape(environment.getattr(l_2_r, 'created'))
                yield '</td>\n        <td class="age">'
                yield escape(environment.getattr(l_2_r, 'age'))
                yield '</td>\n        <td class="mono small">'
                yield escape((environment.getattr(l_2_r, 'source') or '—'))
                yield '</td>\n        <td class="small">'
                yield escape((environment.getattr(l_2_r, 'image_name') or '—'))
                yield '<div>'
                yield escape(environment.getattr(l_2_r, 'binding_text'))
                if environment.getattr(l_2_r, 'bound_to'):
                    pass
                    yield ' <span class="mono">'
                    yield escape(environment.getattr(l_2_r, 'bound_to'))
                    yield '</span>'
                yield '</div>\n'
                for l_3_p in environment.getattr(l_2_r, 'problems'):
                    _loop_vars = {}
                    pass
                    yield '<div class="problem">'
                    yield escape(l_3_p)
                    yield '</div>'
                l_3_p = missing
                yield '</td>\n        <td class="num">'
                yield escape(environment.getattr(l_2_r, 'findings'))
                yield '</td>\n      </tr>\n'
            l_2_r = missing
            yield '    </tbody>\n  </table>\n  </div>\n'
        yield '\n'
        if environment.getattr(l_1_img, 'notes'):
            pass
            yield '  <h3>Notes</h3>\n  <ul class="notes">'
            for l_2_n in environment.getattr(l_1_img, 'notes'):
                _loop_vars = {}
                pass
                yield '<li>'
                yield escape(l_2_n)
                yield '</li>'
            l_2_n = missing
            yield '</ul>\n'
        yield '</section>\n'
    l_1_img = missing
    yield '</main>\n<footer>Generated by imggate '
    yield escape((undefined(name='tool_version') if l_0_tool_version is missing else l_0_tool_version))
    yield ' on '
    yield escape((undefined(name='generated') if l_0_generated is missing else l_0_generated))
    yield '. This file is self-contained and loads nothing from the network.</footer>\n<script>'
    yield escape((undefined(name='js') if l_0_js is missing else l_0_js))
    yield '</script>\n</body>\n</html>'

blocks = {}
debug_info = '7=50&10=52&11=54&12=58&14=60&15=62&16=77&18=85&19=90&23=111&24=120&25=123&26=128&27=135&29=140&36=162&40=176&41=181&47=189&48=191&57=194&63=206&72=213&73=215&74=217&76=229&78=232&79=242&80=246&82=248&83=251&86=259&87=262&89=264&93=267&95=275&97=279&98=287&99=291&100=293&101=295&102=297&104=311&116=329&117=333&118=337&119=339&120=341&121=345&122=351&125=376&128=379&132=393&133=396&136=406&137=409&138=411&141=414&142=417&143=419&146=422&148=425&152=427&153=431&154=439&161=450&164=456&165=458&170=461&172=465&173=475&174=482&175=487&176=494&186=502&187=509&190=515&192=517&193=520&194=522&195=525&198=533&200=536&201=538&205=541&206=543&211=546&213=550&214=554&215=556&216=558&217=560&218=562&219=564&225=568&226=571&233=577&235=580&236=584&237=586&246=608&247=611&252=613&253=617&254=619&255=629&256=638&257=640&258=642&259=644&260=653&261=661&269=666&271=669&276=680&277=684'
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'report_section.html.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_sev = l_0_counts = l_0_rule_list = l_0_finding_table = l_0_summary_row = l_0_section = missing
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
    def macro(l_1_img):
        t_9 = []
        if l_1_img is missing:
            l_1_img = undefined("parameter 'img' was not provided", name='img')
        pass
        t_9.extend((
            '      <tr>\n        <td><span class="badge decision-',
            escape(environment.getattr(l_1_img, 'decision')),
            '">',
            escape(environment.getattr(l_1_img, 'decision')),
            '</span>',
        ))
        if environment.getattr(l_1_img, 'not_scanned'):
            pass
            t_9.append(
                ' <span class="badge not-scanned">not scanned</span>',
            )
        t_9.extend((
            '</td>\n        <td class="ref"><a href="#',
            escape(environment.getattr(l_1_img, 'anchor')),
            '">',
            escape(environment.getattr(l_1_img, 'reference')),
            '</a></td>\n        <td class="num">',
            escape(t_2(environment.getattr(l_1_img, 'violations'))),
            '</td>\n        <td class="num">',
            escape(t_2(environment.getattr(l_1_img, 'warnings'))),
            '</td>\n',
        ))
        if (environment.getattr(l_1_img, 'not_scanned') or environment.getattr(l_1_img, 'unread')):
            pass
            for (l_2_name, l_2_n) in environment.getattr(l_1_img, 'counts'):
                _loop_vars = {}
                pass
                t_9.append(
                    '<td class="num unknown" title="',
                )
                if environment.getattr(l_1_img, 'unread'):
                    pass
                    t_9.append(
                        'could not be read: unknown',
                    )
                else:
                    pass
                    t_9.append(
                        'not scanned: unknown',
                    )
                t_9.append(
                    '">—</td>',
                )
            l_2_name = l_2_n = missing
        else:
            pass
            for (l_2_name, l_2_n) in environment.getattr(l_1_img, 'counts'):
                _loop_vars = {}
                pass
                t_9.append(
                    '<td class="num',
                )
                if (l_2_n == 0):
                    pass
                    t_9.append(
                        ' zero',
                    )
                t_9.extend((
                    '">',
                    escape(l_2_n),
                    '</td>',
                ))
            l_2_name = l_2_n = missing
        t_9.append(
            '      </tr>\n',
        )
        return concat(t_9)
    context.exported_vars.add('summary_row')
    context.vars['summary_row'] = l_0_summary_row = Macro(environment, macro, 'summary_row', ('img',), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_img):
        t_10 = []
        if l_1_img is missing:
            l_1_img = undefined("parameter 'img' was not provided", name='img')
        pass
        t_10.extend((
            '<section class="image" id="',
            escape(environment.getattr(l_1_img, 'anchor')),
            '" aria-labelledby="',
            escape(environment.getattr(l_1_img, 'anchor')),
            '-title">\n  <div class="banner decision-',
            escape(environment.getattr(l_1_img, 'decision')),
            '">\n    <div class="verdict">',
            escape(environment.getattr(l_1_img, 'decision_text')),
            '</div>\n    <h2 id="',
            escape(environment.getattr(l_1_img, 'anchor')),
            '-title" class="ref">',
            escape(environment.getattr(l_1_img, 'reference')),
            '</h2>\n',
        ))
        if environment.getattr(l_1_img, 'pinned'):
            pass
            t_10.extend((
                '<div class="pinned">',
                escape(environment.getattr(l_1_img, 'pinned')),
                '</div>',
            ))
        t_10.extend((
            '    <div class="meta">environment <b>',
            escape(environment.getattr(l_1_img, 'env')),
            '</b> · ',
            escape(t_2(environment.getattr(l_1_img, 'violations'))),
            ' violation',
        ))
        if (t_2(environment.getattr(l_1_img, 'violations')) != 1):
            pass
            t_10.append(
                's',
            )
        t_10.extend((
            ' · ',
            escape(t_2(environment.getattr(l_1_img, 'warnings'))),
            ' warning',
        ))
        if (t_2(environment.getattr(l_1_img, 'warnings')) != 1):
            pass
            t_10.append(
                's',
            )
        t_10.append(
            ' · ',
        )
        if environment.getattr(l_1_img, 'not_scanned'):
            pass
            t_10.append(
                '<b>NOT SCANNED</b>',
            )
        else:
            pass
            t_10.extend((
                escape(environment.getattr(l_1_img, 'total')),
                ' finding',
            ))
            if (environment.getattr(l_1_img, 'total') != 1):
                pass
                t_10.append(
                    's',
                )
        t_10.append(
            '</div>\n  </div>\n\n',
        )
        if environment.getattr(l_1_img, 'not_scanned'):
            pass
            t_10.append(
                '  <div class="not-scanned-box" role="alert">\n    <strong>NOT SCANNED</strong>\n    <p>No scanner evidence was used for this image',
            )
            if environment.getattr(l_1_img, 'reports'):
                pass
                t_10.extend((
                    ' (',
                    escape(t_2(environment.getattr(l_1_img, 'reports'))),
                    ' report',
                ))
                if (t_2(environment.getattr(l_1_img, 'reports')) != 1):
                    pass
                    t_10.append(
                        's',
                    )
                t_10.append(
                    ' given, none usable: see Scanner evidence)',
                )
            else:
                pass
                t_10.append(
                    ' (no report, scan or attestation was given)',
                )
            t_10.append(
                '. Its vulnerabilities are unknown: zero findings here mean nothing was checked, not that nothing was found.</p>\n  </div>\n',
            )
        t_10.append(
            '\n',
        )
        if environment.getattr(l_1_img, 'error'):
            pass
            t_10.append(
                '  <div class="error-box"><strong>',
            )
            if (environment.getattr(l_1_img, 'decision') == 'deny'):
                pass
                t_10.append(
                    'Also not checked',
                )
            else:
                pass
                t_10.append(
                    'Could not decide',
                )
            t_10.extend((
                ':</strong> <span class="error-text">',
                escape(environment.getattr(l_1_img, 'error')),
                '</span></div>\n',
            ))
        t_10.append(
            '\n',
        )
        if environment.getattr(l_1_img, 'violations'):
            pass
            t_10.extend((
                '  <h3>Violations <span class="n">',
                escape(t_2(environment.getattr(l_1_img, 'violations'))),
                '</span></h3>\n  ',
                escape(context.call((undefined(name='rule_list') if l_0_rule_list is missing else l_0_rule_list), environment.getattr(l_1_img, 'violations'), 'violations')),
                '\n',
            ))
        t_10.append(
            '\n',
        )
        if environment.getattr(l_1_img, 'warnings'):
            pass
            t_10.extend((
                '  <h3>Warnings <span class="n">',
                escape(t_2(environment.getattr(l_1_img, 'warnings'))),
                '</span></h3>\n  ',
                escape(context.call((undefined(name='rule_list') if l_0_rule_list is missing else l_0_rule_list), environment.getattr(l_1_img, 'warnings'), 'warnings')),
                '\n',
            ))
        t_10.append(
            '\n',
        )
        if environment.getattr(l_1_img, 'rules'):
            pass
            t_10.extend((
                '  <details class="all-rules">\n    <summary>All rules (',
                escape(t_2(environment.getattr(l_1_img, 'rules'))),
                ')</summary>\n    <table class="data">\n      <thead><tr><th scope="col">Result</th><th scope="col">Rule</th><th scope="col">Mode</th><th scope="col">Details</th></tr></thead>\n      <tbody>\n',
            ))
            for l_2_r in environment.getattr(l_1_img, 'rules'):
                _loop_vars = {}
                pass
                t_10.extend((
                    '        <tr><td><span class="state state-',
                    escape(environment.getattr(l_2_r, 'state')),
                    '">',
                    escape(environment.getattr(l_2_r, 'state')),
                    '</span></td><td class="rule-name">',
                    escape(environment.getattr(l_2_r, 'rule')),
                    '</td><td>',
                    escape(environment.getattr(l_2_r, 'mode')),
                    '</td>\n          <td>',
                ))
                for l_3_m in environment.getattr(l_2_r, 'messages'):
                    _loop_vars = {}
                    pass
                    t_10.extend((
                        '<div>',
                        escape(l_3_m),
                        '</div>',
                    ))
                l_3_m = missing
                t_10.append(
                    '</td></tr>\n',
                )
            l_2_r = missing
            t_10.append(
                '      </tbody>\n    </table>\n  </details>\n',
            )
        t_10.append(
            '\n',
        )
        if (not environment.getattr(l_1_img, 'evidence')):
            pass
            t_10.append(
                '  <p class="none">No evidence was gathered for this image: without it nothing can be allowed.</p>\n',
            )
        else:
            pass
            t_10.extend((
                '  <h3>Signatures and attestations <span class="n">',
                escape(t_2(environment.getattr(l_1_img, 'signatures'))),
                '</span></h3>\n',
            ))
            if environment.getattr(l_1_img, 'signatures'):
                pass
                t_10.append(
                    '  <div class="table-wrap">\n  <table class="data signatures">\n    <thead><tr><th scope="col">Result</th><th scope="col">Kind</th><th scope="col">Signer</th><th scope="col">Details</th><th scope="col">Where</th></tr></thead>\n    <tbody>\n',
                )
                for l_2_s in environment.getattr(l_1_img, 'signatures'):
                    _loop_vars = {}
                    pass
                    t_10.append(
                        '      <tr>\n        <td>',
                    )
                    if (environment.getattr(l_2_s, 'verified') and environment.getattr(l_2_s, 'unsafe')):
                        pass
                        t_10.append(
                            '<span class="state state-warn" title="accepted without a transparency log entry">verified, UNSAFE</span>',
                        )
                    elif environment.getattr(l_2_s, 'verified'):
                        pass
                        t_10.append(
                            '<span class="state state-pass">verified</span>',
                        )
                    else:
                        pass
                        t_10.append(
                            '<span class="state state-fail">not verified</span>',
                        )
                    t_10.extend((
                        '</td>\n        <td>',
                        escape(environment.getattr(l_2_s, 'kind')),
                    ))
                    if environment.getattr(l_2_s, 'predicate_type'):
                        pass
                        t_10.extend((
                            '<div class="small">',
                            escape(environment.getattr(l_2_s, 'predicate_type')),
                            '</div>',
                        ))
                    t_10.extend((
                        '</td>\n        <td>',
                        escape((environment.getattr(l_2_s, 'signer') or '—')),
                    ))
                    if environment.getattr(l_2_s, 'tlog'):
                        pass
                        t_10.append(
                            '<div class="small">transparency log checked</div>',
                        )
                    t_10.extend((
                        '</td>\n        <td>',
                        escape(environment.getattr(l_2_s, 'reason')),
                    ))
                    if environment.getattr(l_2_s, 'signed_digest'):
                        pass
                        t_10.extend((
                            '<div class="small mono">signed ',
                            escape(environment.getattr(l_2_s, 'signed_digest')),
                            '</div>',
                        ))
                    t_10.extend((
                        '</td>\n        <td class="mono small">',
                        escape(environment.getattr(l_2_s, 'location')),
                        '</td>\n      </tr>\n',
                    ))
                l_2_s = missing
                t_10.append(
                    '    </tbody>\n  </table>\n  </div>\n',
                )
            else:
                pass
                t_10.append(
                    '  <p class="none">No signatures or attestations were checked.</p>\n',
                )
            t_10.append(
                '\n  <h3>Findings <span class="n">',
            )
            if environment.getattr(l_1_img, 'not_scanned'):
                pass
                t_10.append(
                    'not scanned',
                )
            else:
                pass
                t_10.append(
                    escape(environment.getattr(l_1_img, 'total')),
                )
            t_10.append(
                '</span></h3>\n',
            )
            if environment.getattr(l_1_img, 'not_scanned'):
                pass
                t_10.append(
                    '  <p class="none not-scanned">NOT SCANNED: no findings were gathered for this image.</p>\n',
                )
            else:
                pass
                t_10.extend((
                    '  ',
                    escape(context.call((undefined(name='counts') if l_0_counts is missing else l_0_counts), environment.getattr(l_1_img, 'counts'))),
                    '\n',
                ))
            if environment.getattr(l_1_img, 'total'):
                pass
                t_10.extend((
                    '  ',
                    escape(context.call((undefined(name='finding_table') if l_0_finding_table is missing else l_0_finding_table), environment.getattr(l_1_img, 'findings'), markup_join((environment.getattr(l_1_img, 'anchor'), '-findings', )), markup_join(('Vulnerabilities found in ', environment.getattr(l_1_img, 'reference'), )), False)),
                    '\n',
                ))
            elif (not environment.getattr(l_1_img, 'not_scanned')):
                pass
                t_10.append(
                    '  <p class="none">No vulnerabilities ',
                )
                if environment.getattr(l_1_img, 'suppressed_count'):
                    pass
                    t_10.append(
                        'left after exceptions',
                    )
                else:
                    pass
                    t_10.append(
                        'reported',
                    )
                t_10.append(
                    '.</p>\n',
                )
            t_10.append(
                '\n',
            )
            if environment.getattr(l_1_img, 'suppressed_count'):
                pass
                t_10.extend((
                    '  <details class="suppressed">\n    <summary>Suppressed findings (',
                    escape(environment.getattr(l_1_img, 'suppressed_count')),
                    ')</summary>\n    ',
                    escape(context.call((undefined(name='finding_table') if l_0_finding_table is missing else l_0_finding_table), environment.getattr(l_1_img, 'suppressed'), markup_join((environment.getattr(l_1_img, 'anchor'), '-suppressed', )), 'Findings suppressed by exceptions or VEX', True)),
                    '\n  </details>\n',
                ))
            t_10.extend((
                '\n  <h3>Exceptions <span class="n">',
                escape((t_2(environment.getattr(l_1_img, 'exceptions')) + environment.getattr(l_1_img, 'exceptions_unlisted'))),
                '</span></h3>\n',
            ))
            if environment.getattr(l_1_img, 'exceptions'):
                pass
                t_10.append(
                    '  <div class="table-wrap">\n  <table class="data exceptions">\n    <thead><tr><th scope="col">Status</th><th scope="col">Vulnerability</th><th scope="col">Package</th><th scope="col">Expires</th><th scope="col">Reason</th><th scope="col">Source</th><th scope="col">Matched</th></tr></thead>\n    <tbody>\n',
                )
                for l_2_e in environment.getattr(l_1_img, 'exceptions'):
                    _loop_vars = {}
                    pass
                    t_10.extend((
                        '      <tr>\n        <td><span class="exc exc-',
                        escape(environment.getattr(l_2_e, 'status_class')),
                        '">',
                        escape(environment.getattr(l_2_e, 'status')),
                        '</span></td>\n        <td class="mono">',
                        escape(environment.getattr(l_2_e, 'vulnerability')),
                        '</td>\n        <td>',
                        escape((environment.getattr(l_2_e, 'package') or 'any')),
                        '</td>\n        <td class="mono">',
                        escape((environment.getattr(l_2_e, 'expires') or 'never')),
                        '</td>\n        <td>',
                        escape(environment.getattr(l_2_e, 'reason')),
                        '</td>\n        <td class="small">',
                        escape(environment.getattr(l_2_e, 'source')),
                        '</td>\n        <td class="small">',
                        escape(t_1(context.eval_ctx, environment.getattr(l_2_e, 'matched'), ', ')),
                        '</td>\n      </tr>\n',
                    ))
                l_2_e = missing
                t_10.append(
                    '    </tbody>\n  </table>\n  </div>\n',
                )
                if environment.getattr(l_1_img, 'exceptions_unlisted'):
                    pass
                    t_10.extend((
                        '  <p class="small">and ',
                        escape(environment.getattr(l_1_img, 'exceptions_unlisted')),
                        ' more exceptions that matched nothing, not listed: see their files</p>\n',
                    ))
            else:
                pass
                t_10.append(
                    '  <p class="none">No exceptions applied to this image.</p>\n',
                )
            t_10.append(
                '\n  <h3>Image</h3>\n',
            )
            if environment.getattr(l_1_img, 'facts'):
                pass
                t_10.append(
                    '  <dl class="facts">\n',
                )
                for (l_2_label, l_2_value) in environment.getattr(l_1_img, 'facts'):
                    _loop_vars = {}
                    pass
                    t_10.extend((
                        '    <dt>',
                        escape(l_2_label),
                        '</dt>\n    <dd>',
                    ))
                    if t_4(l_2_value):
                        pass
                        t_10.append(
                            escape(l_2_value),
                        )
                    else:
                        pass
                        t_10.append(
                            '<ul>',
                        )
                        for l_3_v in l_2_value:
                            _loop_vars = {}
                            pass
                            t_10.extend((
                                '<li>',
                                escape(l_3_v),
                                '</li>',
                            ))
                        l_3_v = missing
                        t_10.append(
                            '</ul>',
                        )
                    t_10.append(
                        '</dd>\n',
                    )
                l_2_label = l_2_value = missing
                t_10.append(
                    '  </dl>\n',
                )
            else:
                pass
                t_10.append(
                    '  <p class="none">The image could not be resolved, so nothing is known about it.</p>\n',
                )
            t_10.append(
                '\n',
            )
        t_10.append(
            '\n',
        )
        if environment.getattr(l_1_img, 'reports'):
            pass
            t_10.extend((
                '  <h3>Scanner evidence <span class="n">',
                escape(t_2(environment.getattr(l_1_img, 'reports'))),
                '</span></h3>\n  <div class="table-wrap">\n  <table class="data reports">\n    <thead><tr><th scope="col">Used</th><th scope="col">Scanner</th><th scope="col">Created</th><th scope="col">Age</th><th scope="col">File</th><th scope="col">About</th><th scope="col" class="num">Findings</th></tr></thead>\n    <tbody>\n',
            ))
            for l_2_r in environment.getattr(l_1_img, 'reports'):
                _loop_vars = {}
                pass
                t_10.extend((
                    '      <tr class="evidence-',
                    escape(environment.getattr(l_2_r, 'binding')),
                    '">\n        <td>',
                ))
                if (environment.getattr(l_2_r, 'used') and environment.getattr(l_2_r, 'problems')):
                    pass
                    t_10.append(
                        '<span class="state state-warn" title="its findings count, but see why it is suspect">used, suspect</span>',
                    )
                elif environment.getattr(l_2_r, 'used'):
                    pass
                    t_10.append(
                        '<span class="state state-pass">used</span>',
                    )
                else:
                    pass
                    t_10.append(
                        '<span class="state state-fail">refused</span>',
                    )
                t_10.extend((
                    '</td>\n        <td>',
                    escape(environment.getattr(l_2_r, 'scanner')),
                    ' ',
                    escape(environment.getattr(l_2_r, 'version')),
                ))
                if (environment.getattr(l_2_r, 'kind') != 'report'):
                    pass
                    t_10.extend((
                        '<div class="small">',
                        escape(environment.getattr(l_2_r, 'kind')),
                        '</div>',
                    ))
                t_10.extend((
                    '</td>\n        <td class="mono small">',
                    escape(environment.getattr(l_2_r, 'created')),
                    '</td>\n        <td class="age">',
                    escape(environment.getattr(l_2_r, 'age')),
                    '</td>\n        <td class="mono small">',
                    escape((environment.getattr(l_2_r, 'source') or '—')),
                    '</td>\n        <td class="small">',
                    escape((environment.getattr(l_2_r, 'image_name') or '—')),
                    '<div>',
                    escape(environment.getattr(l_2_r, 'binding_text')),
                ))
                if environment.getattr(l_2_r, 'bound_to'):
                    pass
                    t_10.extend((
                        ' <span class="mono">',
                        escape(environment.getattr(l_2_r, 'bound_to')),
                        '</span>',
                    ))
                t_10.append(
                    '</div>\n',
                )
                for l_3_p in environment.getattr(l_2_r, 'problems'):
                    _loop_vars = {}
                    pass
                    t_10.extend((
                        '<div class="problem">',
                        escape(l_3_p),
                        '</div>',
                    ))
                l_3_p = missing
                t_10.extend((
                    '</td>\n        <td class="num">',
                    escape(environment.getattr(l_2_r, 'findings')),
                    '</td>\n      </tr>\n',
                ))
            l_2_r = missing
            t_10.append(
                '    </tbody>\n  </table>\n  </div>\n',
            )
        t_10.append(
            '\n',
        )
        if environment.getattr(l_1_img, 'notes'):
            pass
            t_10.append(
                '  <h3>Notes</h3>\n  <ul class="notes">',
            )
            for l_2_n in environment.getattr(l_1_img, 'notes'):
                _loop_vars = {}
                pass
                t_10.extend((
                    '<li>',
                    escape(l_2_n),
                    '</li>',
                ))
            l_2_n = missing
            t_10.append(
                '</ul>\n',
            )
        t_10.append(
            '</section>\n',
        )
        return concat(t_10)
    context.exported_vars.add('section')
    context.vars['section'] = l_0_section = Macro(environment, macro, 'section', ('img',), False, False, False, context.eval_ctx.autoescape)

blocks = {}
debug_info = '6=36&7=51&9=59&10=64&14=85&15=94&16=97&17=102&18=109&20=114&27=136&31=150&32=155&38=163&39=165&48=168&54=180&60=186&62=193&63=205&64=209&65=211&66=214&67=216&69=238&73=261&74=268&75=272&76=274&77=276&78=281&79=290&82=332&85=337&89=363&90=368&93=386&94=390&95=392&98=398&99=402&100=404&103=410&105=414&109=417&110=422&111=431&118=450&121=459&122=462&127=467&129=473&130=490&131=501&132=510&133=521&143=536&144=549&147=558&149=561&150=565&151=568&152=573&155=589&157=593&158=595&162=600&163=603&168=608&170=613&171=617&172=619&173=621&174=623&175=625&176=627&182=634&183=638&190=649&192=654&193=659&194=662&203=702&204=706&209=709&210=714&211=717&212=734&213=747&214=749&215=751&216=753&217=767&218=778&226=788&228=793'
"""imggate.policy: rules, exceptions and the engine that turns evidence into a verdict.

Public API (import from the submodules; this package imports nothing so
``imggate --help`` stays fast)::

    from imggate.policy.loader import load_policy, load_rules, select_env, load_exceptions
    from imggate.policy.engine import evaluate

    policy = load_policy(rules_path, env, keys=..., identities=..., discover=Path.cwd())
    trust = policy.rules.trust(ref)          # what to ask the signature verifier for
    verdict = evaluate(evidence, policy.rules, exceptions=policy.exceptions,
                       now=now, kev=policy.kev)

Modules: ``rules`` (schema), ``loader`` (files, inheritance, environment
choice), ``effective`` (rules for one environment / image), ``exceptions``,
``allowlists`` and ``vex`` (accepted risks), ``kev`` (CISA KEV), ``checks``
(one function per rule kind), ``engine`` (evaluate), ``patterns``, ``_yaml``.
"""

"""What ``rules validate`` warns about and ``rules explain`` lists: exceptions, seen from the rules
(and environments that admit what they could not check).

A rules file can be valid and still hold exceptions that deserve a look:
ones already expired (they no longer apply: the findings count again) and
ones expiring further ahead than an environment's
``exception_policy.max_days`` allows (such an entry is refused at check time).
"""

from __future__ import annotations

from datetime import date

from imggate.models import ImageRef
from imggate.policy.exceptions import ExceptionSet, describe_entry, expiry_warnings
from imggate.policy.loader import RulesFile


def _max_days(rules: RulesFile, env: str) -> int | None:
    """The environment's ``exception_policy.max_days`` (after inheritance); None: no limit."""
    return rules.environments[env].exception_policy.max_days


def exception_warnings(rules: RulesFile, exceptions: ExceptionSet, today: date) -> list[str]:
    """Every warning about ``exceptions`` (expired; beyond an environment's ``max_days``)."""
    out = expiry_warnings(exceptions.entries, today)
    for env in rules.names:
        limit = _max_days(rules, env)
        if limit is not None:
            out += expiry_warnings(exceptions.entries, today, limit, env)
    return out


def undecided_warnings(rules: RulesFile) -> list[str]:
    """A warning for every environment (or image override) that enforces rules and yet
    admits what it could not check (``on_undecided: warn``)."""
    from imggate.models import Mode
    from imggate.policy.rules import OnUndecided, overlay, section_names

    out = []
    for env in rules.names:
        effective = rules.effective(env)
        for label, ruleset in [(env, effective.rules),
                               *((f"{env} images {o.match!r}", overlay(effective.rules, o))
                                 for o in effective.images)]:
            enforced = [s for s in section_names() if ruleset.mode_of(s) is Mode.ENFORCE]
            if ruleset.undecided is OnUndecided.WARN and enforced:
                out.append(f"environment {label}: on_undecided: warn admits at admission any "
                           f"image imggate could not check (a registry down, the deadline "
                           f"passed), although it enforces {', '.join(enforced)}")
    return out


def exceptions_in_effect(exceptions: ExceptionSet, env: str, today: date,
                         ref: ImageRef | None = None) -> list[dict[str, object]]:
    """The exceptions that apply in ``env`` (to ``ref``, when given) today, as plain data."""
    digests = (ref.digest,) if ref is not None and ref.digest is not None else ()
    return [describe_entry(e, today) for e in exceptions.in_effect(env, today, ref, digests)]

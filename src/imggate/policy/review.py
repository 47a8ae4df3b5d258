"""What ``rules validate`` warns about and ``rules explain`` lists: exceptions, seen from the rules.

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


def exceptions_in_effect(exceptions: ExceptionSet, env: str, today: date,
                         ref: ImageRef | None = None) -> list[dict[str, object]]:
    """The exceptions that apply in ``env`` (to ``ref``, when given) today, as plain data."""
    digests = (ref.digest,) if ref is not None and ref.digest is not None else ()
    return [describe_entry(e, today) for e in exceptions.in_effect(env, today, ref, digests)]

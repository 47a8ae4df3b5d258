"""User-written regular expressions with Go's (cosign's, Kubernetes') meaning of ``$``.

In Python ``$`` also matches *before* a final newline, so ``^v1$`` accepts
``"v1\\n"``; in Go (cosign's ``--certificate-identity-regexp``, Kyverno,
Connaisseur) and in JSON Schema it matches only at the very end. A signer
identity or label value that ends in a newline must not satisfy a pattern
its author anchored, so every regex a user writes is compiled here, with each
end-of-text ``$`` turned into ``\\Z``. Under the multi-line flag ``(?m)`` the
two languages agree (end of any line) and the pattern is left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache


def go_anchors(pattern: str) -> str:
    """``pattern`` with every ``$`` outside a character class written as ``\\Z``.

    Escapes (``\\$``) and classes (``[$]``, ``[]$]``, ``[^]$]``) are kept as written.
    """
    if "$" not in pattern:
        return pattern
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            # A "]" right after "[" or "[^" is a literal member, not the end of the class.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        elif c == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def compile_user_regex(pattern: str) -> re.Pattern[str]:
    """Compile a user regex with Go's ``$``; ``re.error`` propagates for the caller to report."""
    compiled = re.compile(pattern)
    if compiled.flags & re.MULTILINE:
        return compiled
    return re.compile(go_anchors(pattern))


def user_search(pattern: str, value: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``value`` (cosign's and Go's ``MatchString``)."""
    return compile_user_regex(pattern).search(value) is not None


def why_not_compiled(e: re.error) -> str:
    """Why a user's pattern was refused, in imggate's words: where it broke (the re
    module's wording changes between Python versions and is not ours to print)."""
    return "it does not compile" + (f" at position {e.pos}" if e.pos is not None else "")

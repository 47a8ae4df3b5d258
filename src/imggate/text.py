"""Text from a remote party made safe to print on one line.

A registry's error message, a token server's reply or a signer's identity can
hold newlines, carriage returns and ANSI escapes: printed raw into a CI log
they can forge lines (``Result: ALLOW (exit code 0)`` while the exit code is
3), recolour or erase what came before. :func:`printable` shows each such
character as a visible escape (``\\x1b``, ``\\n``, ``\\u202e``), so what a
remote party sent is shown exactly and can do nothing but be read.
"""

from __future__ import annotations

import re

# C0 controls (tab, newline and carriage return included), DEL, C1 controls, the
# Unicode line and paragraph separators, bidi overrides and isolates (which make
# text read differently from what it is), lone surrogates and non-characters.
_UNSAFE_CLASS = ("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                 "\ud800-\udfff\ufffe\uffff]")
#: Compiled on first use: a class beyond Latin-1 takes the re module ~3-4M instructions
#: to compile (cachegrind: a resolve of 200 images 776.7M -> 773.9M, start-up included),
#: and a run that prints nothing a remote party sent (a resolve that succeeds) never
#: uses it.
_unsafe: re.Pattern[str] | None = None
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` on one line, every control or deceptive character shown as an escape."""
    global _unsafe
    if _unsafe is None:
        _unsafe = re.compile(_UNSAFE_CLASS)
    return _unsafe.sub(_escape, text) if _unsafe.search(text) else text


def printable_lines(text: str) -> str:
    """Like :func:`printable` but keeping ``text``'s own line breaks (``\\n``)."""
    return "\n".join(printable(line) for line in text.split("\n"))

"""The run's secrets, and the one place they are taken out of text.

Every secret imggate learns (a password or identity token from any credential
source, a bearer token from a token server) is registered here the moment it
is known: :class:`~imggate.registry.credentials.Credentials` registers itself
when built, the registry auth flow registers each token it receives. Every
message that leaves imggate passes through :func:`redact`:

- errors: :class:`imggate.errors.Error` redacts its message and hint when built;
- log records: the filter installed by :func:`imggate.logs.configure`;
- standard output and standard error: :class:`RedactingStream`, installed by the CLI;
- report files: the writers redact the rendered text before it reaches disk.

A secret is recognised in every form it can take on the way out: as given,
as ``user:secret``, base64 (standard and URL-safe, with and without padding)
of either, and as JSON, Python ``repr``, HTML, URL and control-character
escaping would print it; a secret holding line breaks is also recognised
line by line. Secrets shorter than :data:`MIN_SECRET_LENGTH` characters are
not registered: replacing every occurrence of a two-letter password would
garble every message while protecting nothing worth protecting.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import IO, Any

#: What a secret is replaced with.
MASK = "[redacted]"
#: Shorter secrets are not looked for (see the module docstring).
MIN_SECRET_LENGTH = 4


class Redactor:
    """A set of secret forms and a single-pass replacement of all of them."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._forms)

    def add(self, secret: str, *, username: str | None = None) -> None:
        """Register ``secret`` (and ``username:secret`` when a user name goes with it)."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        raw = [secret]
        if username:
            raw.append(f"{username}:{secret}")
        raw.extend(line for line in re.split(r"[\r\n]+", secret) if line != secret)
        forms: set[str] = set()
        for text in raw:
            forms.update(_spellings(text))
        forms = {f for f in forms if len(f) >= MIN_SECRET_LENGTH}
        with self._lock:
            if forms <= self._forms:
                return
            self._forms |= forms
            # Longest first: a form that contains another is replaced whole.
            ordered = tuple(sorted(self._forms, key=len, reverse=True))
            self._pattern = re.compile("|".join(re.escape(f) for f in ordered))
            self._ordered = ordered

    def redact(self, text: str) -> str:
        """``text`` with every registered secret form replaced by :data:`MASK`."""
        if not self.contains_secret(text):
            return text
        pattern = self._pattern
        assert pattern is not None
        return pattern.sub(MASK, text)

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds a registered secret form."""
        # A substring search per form runs at memory speed; the regular expression's
        # alternation tries every form at every position (~70 ms per MB): it only runs
        # on text known to hold a secret, which is rare.
        forms = self._ordered
        return bool(text) and any(form in text for form in forms)

    def clear(self) -> None:
        """Forget every secret (between runs of an embedding program, and in tests)."""
        with self._lock:
            self._forms.clear()
            self._ordered = ()
            self._pattern = None


def _spellings(text: str) -> set[str]:
    """The ways ``text`` can be printed by imggate, a library or a report format."""
    import html
    import json
    import urllib.parse

    from imggate.text import printable

    data = text.encode("utf-8", "surrogatepass")
    forms = {text, printable(text), html.escape(text, quote=True), html.escape(text, quote=False),
             json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
             ascii(text)[1:-1], repr(text)[1:-1], repr(data)[2:-1],
             urllib.parse.quote(text, safe=""), urllib.parse.quote_plus(text)}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        coded = encode(data).decode("ascii")
        forms.update((coded, coded.rstrip("=")))
    return forms


#: The process's secrets: every run registers here, every output redacts from here.
SECRETS = Redactor()


def register(secret: str, *, username: str | None = None) -> None:
    """Register a secret of this run (see :class:`Redactor.add`)."""
    SECRETS.add(secret, username=username)


def redact(text: str) -> str:
    """``text`` without any secret of this run."""
    return SECRETS.redact(text)


class RedactingStream:
    """A text stream wrapper that redacts everything written through it.

    Everything but ``write``/``writelines`` is the wrapped stream's own
    (``isatty``, ``fileno``, ``encoding``: rich and click see the real terminal).
    """

    def __init__(self, inner: IO[str]) -> None:
        self._inner = inner

    @property
    def inner(self) -> IO[str]:
        """The wrapped stream."""
        return self._inner

    def write(self, text: str) -> int:
        """Write ``text`` without secrets; returns ``len(text)`` as callers expect."""
        self._inner.write(SECRETS.redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each line without secrets."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

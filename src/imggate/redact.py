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

Bounded over time: a bearer token is registered with the time it stops being
used (its token-cache entry's expiry, or its replacement) plus
:data:`GRACE_SECONDS`, and is forgotten after that: its text can no longer
appear in new output, and a registry that issues a fresh token per request
must not grow the set for ever. At most :data:`MAX_EPHEMERAL` such secrets
(and forms of at most :data:`MAX_EPHEMERAL_BYTES`) are held, those ending
soonest going first. Credentials (passwords, identity
tokens, keys) are kept for the whole run.

Registering costs O(length of the secret) and checking a message costs
O(length of the message), whatever the number of secrets: each form of
:data:`_GRAM` + :data:`_STEP` - 1 characters or more is indexed by the
:data:`_GRAM`-character pieces at its first :data:`_STEP` offsets, and a
message is probed only at every :data:`_STEP`-th position (any occurrence of
such a form covers one of them at one of its indexed offsets), then the
candidate is compared whole. Shorter forms are searched for one by one.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Final

#: What a secret is replaced with.
MASK = "[redacted]"
#: Shorter secrets are not looked for (see the module docstring).
MIN_SECRET_LENGTH = 4
#: How long a token is still looked for after it stops being used (a request that held
#: it may still be failing, and its error printed).
GRACE_SECONDS: Final = 60.0
#: The most secrets with an end held at once, and the most memory their forms and index
#: may take (roughly, in bytes); beyond either, those ending soonest go first.
MAX_EPHEMERAL: Final = 4096
MAX_EPHEMERAL_BYTES: Final = 48 * 1024 * 1024
#: What indexing one form costs beyond its text (a dict entry, a set, a tuple per gram).
_INDEX_BYTES_PER_FORM: Final = 8 * 600
_GRAM: Final = 8
_STEP: Final = 8
#: Forms this long or longer are indexed; shorter ones are searched for one by one.
_INDEXED: Final = _GRAM + _STEP - 1
#: Up to this many indexed forms a plain substring search per form is faster (C speed
#: over the message, against a Python step every _STEP characters).
_SCAN_ABOVE: Final = 32

class Redactor:
    """The secrets of a run and their forms, and their replacement in any text.

    Thread-safe: every change and every search holds one lock (a search takes
    microseconds for a log line).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._refs: dict[str, int] = {}  # form -> how many held secrets have it
        # Insertion-ordered sets (dicts): adding and removing one form is O(1).
        self._short: dict[str, None] = {}  # forms under _INDEXED characters
        self._long: dict[str, None] = {}  # indexed forms
        # gram -> (offset of the gram in the form, form length) -> the forms
        self._index: dict[str, dict[tuple[int, int], set[str]]] = {}
        self._permanent: set[str] = set()
        # secret -> (its end, its forms); the heap holds (end, seq, secret), and an entry
        # whose end has changed since is skipped when popped.
        self._ephemeral: dict[str, tuple[float, frozenset[str]]] = {}
        self._ephemeral_bytes = 0
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._refs)

    def __len__(self) -> int:
        """How many secrets are held (credentials and live tokens)."""
        return len(self._permanent) + len(self._ephemeral)

    @property
    def forms(self) -> int:
        """How many distinct forms are looked for."""
        return len(self._refs)

    def add(self, secret: str, *, username: str | None = None,
            until: float | None = None) -> None:
        """Register ``secret`` (and ``username:secret`` when a user name goes with it).

        ``until`` (a :func:`time.monotonic` time): the secret is used until then (a
        bearer token) and forgotten :data:`GRACE_SECONDS` later. Without it, the
        secret is kept for the run. Cost: O(length of the secret).
        """
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        raw = [secret]
        if username:
            raw.append(f"{username}:{secret}")
        raw.extend(line for line in re.split(r"[\r\n]+", secret) if line != secret)
        found: set[str] = set()
        for text in raw:
            found.update(_spellings(text))
        forms = frozenset(f for f in found if len(f) >= MIN_SECRET_LENGTH)
        ident = secret if username is None else f"{username}\0{secret}"
        with self._lock:
            self._expire()
            if until is None:
                if ident not in self._permanent:
                    self._permanent.add(ident)
                    self._hold(forms)
                return
            end = until + GRACE_SECONDS
            held = self._ephemeral.get(ident)
            if held is not None:
                if end > held[0]:
                    self._set_end(ident, end, held[1])
                return
            self._set_end(ident, end, forms)
            self._hold(forms)
            self._ephemeral_bytes += _cost(forms)
            while len(self._ephemeral) > MAX_EPHEMERAL or \
                    self._ephemeral_bytes > MAX_EPHEMERAL_BYTES:
                self._pop(force=True)

    def release(self, secret: str, *, at: float | None = None) -> None:
        """``secret`` (a token) is no longer used from ``at`` (default: now): forget it
        :data:`GRACE_SECONDS` later, if that is sooner than its registered end.
        Credentials are not affected."""
        with self._lock:
            held = self._ephemeral.get(secret)
            end = (self._clock() if at is None else at) + GRACE_SECONDS
            if held is not None and end < held[0]:
                self._set_end(secret, end, held[1])

    def _set_end(self, ident: str, end: float, forms: frozenset[str]) -> None:
        self._ephemeral[ident] = (end, forms)
        heapq.heappush(self._heap, (end, next(self._seq), ident))

    def _expire(self) -> None:
        if self._heap and self._heap[0][0] <= self._clock():
            now = self._clock()
            while self._heap and self._heap[0][0] <= now:
                self._pop(force=False)

    def _pop(self, *, force: bool) -> None:
        """Forget the secret ending soonest (skipping stale heap entries)."""
        while self._heap:
            end, _, ident = heapq.heappop(self._heap)
            held = self._ephemeral.get(ident)
            if held is not None and held[0] == end:
                del self._ephemeral[ident]
                self._ephemeral_bytes -= _cost(held[1])
                self._drop(held[1])
                return
            if not force:
                return

    def _hold(self, forms: frozenset[str]) -> None:
        for form in forms:
            n = self._refs.get(form, 0)
            self._refs[form] = n + 1
            if n:
                continue
            if len(form) < _INDEXED:
                self._short[form] = None
                continue
            self._long[form] = None
            for offset in range(_STEP):
                groups = self._index.setdefault(form[offset:offset + _GRAM], {})
                groups.setdefault((offset, len(form)), set()).add(form)

    def _drop(self, forms: frozenset[str]) -> None:
        for form in forms:
            n = self._refs[form] - 1
            if n:
                self._refs[form] = n
                continue
            del self._refs[form]
            if len(form) < _INDEXED:
                del self._short[form]
                continue
            del self._long[form]
            for offset in range(_STEP):
                gram = form[offset:offset + _GRAM]
                groups = self._index[gram]
                key = (offset, len(form))
                groups[key].discard(form)
                if not groups[key]:
                    del groups[key]
                    if not groups:
                        del self._index[gram]

    def _spans(self, text: str, first: bool) -> list[tuple[int, int]]:
        """``(start, end)`` of registered forms in ``text`` (all, or the first found);
        called holding the lock."""
        self._expire()
        spans: list[tuple[int, int]] = []
        few = len(self._long) <= _SCAN_ABOVE
        for form in (*self._short, *self._long) if few else self._short:
            at = text.find(form)
            while at != -1:
                spans.append((at, at + len(form)))
                if first:
                    return spans
                at = text.find(form, at + 1)
        if few:
            return spans
        get = self._index.get
        for q in range(0, len(text) - _GRAM + 1, _STEP):
            groups = get(text[q:q + _GRAM])
            if groups is None:
                continue
            for (offset, length), candidates in groups.items():
                start = q - offset
                if start >= 0 and text[start:start + length] in candidates:
                    spans.append((start, start + length))
                    if first:
                        return spans
        return spans

    def redact(self, text: str) -> str:
        """``text`` with every registered secret form replaced by :data:`MASK`."""
        if not text or not self._refs:
            return text
        with self._lock:
            spans = self._spans(text, first=False)
        if not spans:
            return text
        # Overlapping, nested and adjacent occurrences are masked as one.
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        out: list[str] = []
        last = 0
        for start, end in merged:
            out += (text[last:start], MASK)
            last = end
        out.append(text[last:])
        return "".join(out)

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds a registered secret form."""
        if not text or not self._refs:
            return False
        with self._lock:
            return bool(self._spans(text, first=True))

    def clear(self) -> None:
        """Forget every secret (between runs of an embedding program, and in tests)."""
        with self._lock:
            self._refs.clear()
            self._short.clear()
            self._long.clear()
            self._index.clear()
            self._permanent.clear()
            self._ephemeral.clear()
            self._ephemeral_bytes = 0
            self._heap.clear()


def _cost(forms: frozenset[str]) -> int:
    return sum(len(f) + (_INDEX_BYTES_PER_FORM if len(f) >= _INDEXED else 0) for f in forms)


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


def register(secret: str, *, username: str | None = None, until: float | None = None) -> None:
    """Register a secret of this run (see :class:`Redactor.add`; ``until``: a token's end)."""
    SECRETS.add(secret, username=username, until=until)


def release(secret: str) -> None:
    """A token is no longer used (see :class:`Redactor.release`)."""
    SECRETS.release(secret)


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

    @property
    def buffer(self) -> Any:
        """The wrapped stream's binary stream, redacted too: the report writers write bytes
        to standard output there, and click writes there itself (through a text stream of
        its own) when this stream's encoding is not UTF-8."""
        return _RedactingBuffer(getattr(self._inner, "buffer"))  # noqa: B009 - IO[str] has none

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _RedactingBuffer:
    """A binary stream wrapper that redacts everything written through it, read as UTF-8
    (bytes that are not UTF-8 are written as they are)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, data: Any) -> int:
        """Write ``data`` without secrets; returns its length as callers expect."""
        size = memoryview(data).nbytes
        if SECRETS:
            text = bytes(data).decode("utf-8", "surrogateescape")
            data = SECRETS.redact(text).encode("utf-8", "surrogateescape")
        self._inner.write(data)
        return size

    def writelines(self, lines: Any) -> None:
        """Write each line without secrets."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

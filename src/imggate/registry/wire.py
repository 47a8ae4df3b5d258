"""What went wrong on the wire, in imggate's words.

httpx and httpcore name a failure by their exception class and the text of what
they caught: an ``OSError``'s ``strerror``, h11's complaint about the answer,
sometimes bytes the server sent. That text changes between releases and
platforms, may quote what a remote party sent, and is not imggate's to print.
:func:`wire_failure` names a failure by its kind and, where the operating system
gave one, by its reason found along the chain of causes (refused, reset, no such
host, unreachable), so that the same failure reads the same on every machine.
"""

from __future__ import annotations

import errno
import socket
import ssl

import httpx

#: The kinds of failure, most specific first (the first ``isinstance`` match wins).
_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (httpx.ConnectTimeout, "no connection within the time allowed"),
    (httpx.ReadTimeout, "no answer within the time allowed"),
    (httpx.WriteTimeout, "the request could not be sent within the time allowed"),
    (httpx.PoolTimeout, "no free connection within the time allowed"),
    (httpx.TimeoutException, "timed out"),
    (httpx.ConnectError, "could not connect"),
    (httpx.ReadError, "the connection broke while reading the answer"),
    (httpx.WriteError, "the connection broke while sending the request"),
    (httpx.ProxyError, "the proxy refused the connection"),
    (httpx.NetworkError, "network failure"),
    (httpx.RemoteProtocolError, "the answer is not valid HTTP or the connection closed "
                                "before it was complete"),
    (httpx.UnsupportedProtocol, "not an http or https URL"),
    (httpx.DecodingError, "the body could not be decoded as its Content-Encoding says"),
)

_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN,
                          errno.EHOSTDOWN})


def _os_reason(e: BaseException) -> str | None:
    """The operating system's reason for ``e``, from the first cause that gives one."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, (BrokenPipeError, ConnectionAbortedError)):
            return "connection closed"
        if isinstance(cause, OSError) and cause.errno in _UNREACHABLE:
            return "host unreachable"
        cause = cause.__cause__ or cause.__context__
    return None


def wire_failure(e: BaseException) -> str:
    """``e`` (an httpx failure, or imggate's own deadline) in imggate's words."""
    if not isinstance(e, httpx.HTTPError):
        # imggate's own exceptions (a deadline, a body over its cap) say it themselves.
        return str(e) if type(e).__module__.startswith("imggate.") else type(e).__name__
    kind = next((said for cls, said in _KINDS if isinstance(e, cls)), None)
    reason = _os_reason(e)
    if kind is None:
        return reason or f"an unexpected HTTP failure ({type(e).__name__})"
    return f"{kind}: {reason}" if reason else kind

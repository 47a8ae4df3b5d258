"""TLS for registries: a verifying context that loads its trust anchors late, loopback
detection, and the probe that decides HTTPS or HTTP for hosts allowed plain HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
import sys
import threading
from typing import Any


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` and ``[::1]`` (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name[1:]
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _DeferredTrustContext(ssl.SSLContext):
    """A verifying client context that reads its CA bundle on the first TLS connection.

    Reading the bundle (as httpx does for ``verify=True``: ``$SSL_CERT_FILE``,
    else ``$SSL_CERT_DIR``, else certifi's) costs ~40 ms per process, and a
    run against an OCI layout or a loopback registry never opens a TLS
    connection. The context verifies from the start (``CERT_REQUIRED``, host
    names checked): anything that reached OpenSSL without going through
    :meth:`wrap_bio`/:meth:`wrap_socket` would find no trust anchors and fail.
    """

    _loaded: bool
    _lock: threading.Lock

    def __new__(cls) -> _DeferredTrustContext:
        ctx = super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)
        ctx._loaded = False
        ctx._lock = threading.Lock()
        return ctx

    def __init__(self) -> None:
        # As ssl.create_default_context(): verify the chain and the host name.
        self.verify_mode = ssl.CERT_REQUIRED
        self.check_hostname = True
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog and not sys.flags.ignore_environment:
            self.keylog_filename = keylog

    def _load_trust(self) -> None:
        with self._lock:
            if self._loaded:
                return
            if os.environ.get("SSL_CERT_FILE"):
                self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi

                self.load_verify_locations(cafile=certifi.where())
            self._loaded = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        """:meth:`ssl.SSLContext.wrap_bio` (asyncio, anyio) once the trust anchors are in."""
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """:meth:`ssl.SSLContext.wrap_socket` once the trust anchors are in."""
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)


async def speaks_tls(host: str, timeout: float) -> bool:
    """Whether ``host[:port]`` completes a TLS handshake (443 when no port is given).

    Only decides the scheme; certificates are verified on the real
    connection. No CA bundle is needed, so probing costs one handshake.
    """
    name, port = host, 443
    if host.startswith("["):
        end = host.find("]")
        name = host[1:end]
        if host[end + 1:].startswith(":"):
            port = int(host[end + 2:])
    elif ":" in host:
        name, _, p = host.rpartition(":")
        port = int(p)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # scheme detection only, never used for data
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(name, port, ssl=probe), timeout=timeout)
    except (OSError, ssl.SSLError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True

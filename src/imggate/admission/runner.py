"""Run the admission app on uvicorn over TLS: uvloop, httptools, TCP_NODELAY, cert rotation.

- **TLS rotation**: cert-manager replaces the mounted certificate and key;
  both files are watched and, when they change, loaded into the live
  ``SSLContext`` (new connections get the new certificate; nothing
  restarts). A pair that does not load keeps the old one and is logged.
- **Callers**: with ``--client-ca`` the TLS handshake requires a client
  certificate issued by that CA (the API server's, from its
  AdmissionConfiguration kubeconfig); a caller without one is refused before
  a byte of its request is read. Without it, the startup log says
  ``callers not authenticated`` once.
- **Nagle**: every accepted connection gets ``TCP_NODELAY``. Python's
  asyncio sets it only for sockets whose ``proto`` is TCP, which a socket
  uvicorn binds itself (``--workers``, ``--fd``) is not; a small response
  then waits for the client's delayed ACK (~40 ms a request). Setting it
  here holds whatever the loop and however the socket was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imggate.admission.connections import (
    ConnectionLimits,
    enforce_limits,
    guarded_protocol,
    reclaim_memory,
    watch_loop_lag,
)
from imggate.admission.reviewlog import ReviewLog
from imggate.admission.server import AdmissionApp, ServeOptions
from imggate.errors import ConfigError
from imggate.values import replace

if TYPE_CHECKING:
    from imggate.admission.background_audit import AuditSchedule

log = logging.getLogger("imggate.admission")


@dataclass(frozen=True, slots=True)
class Listen:
    """Where and how to listen."""

    host: str
    port: int
    tls_cert: Path
    tls_key: Path
    watch_interval: float = 1.0
    #: CA bundle (PEM) whose client certificates are required (``None``: anyone may call).
    client_ca: Path | None = None
    #: Time limits and caps of every connection (:mod:`imggate.admission.connections`).
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


def set_nodelay(transport: Any) -> None:
    """Turn Nagle's algorithm off on a transport's TCP socket (no-op for other sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def protocol_class() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (h11 when httptools is missing) with TCP_NODELAY."""
    base: type[Any]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    except ImportError:  # httptools missing: h11 (slower, same behaviour)
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol

    class NoDelayProtocol(base):  # type: ignore[misc]
        """uvicorn's HTTP protocol with TCP_NODELAY on every connection."""

        def connection_made(self, transport: Any) -> None:
            set_nodelay(transport)
            super().connection_made(transport)

    return NoDelayProtocol


def check_tls_pair(cert: Path, key: Path) -> None:
    """Load ``cert``/``key`` into a scratch context: :class:`ConfigError` saying why not."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"TLS certificate {cert} / key {key} cannot be used: "
                          f"{getattr(e, 'strerror', None) or e.__class__.__name__}") from None


def check_client_ca(path: Path) -> None:
    """Load ``path`` as a CA bundle into a scratch context: :class:`ConfigError` saying why
    not (a file without a certificate included)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_verify_locations(cafile=str(path))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"--client-ca {path}: cannot be used as a CA bundle: "
                          f"{getattr(e, 'strerror', None) or e.__class__.__name__}") from None
    if not ctx.get_ca_certs():
        raise ConfigError(f"--client-ca {path}: holds no CA certificate")


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for p in paths:
        try:
            st = os.stat(p)  # follows the symlinks a Secret volume swaps atomically
            out.append((st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((0, 0))
    return tuple(out)


async def watch_tls(context: ssl.SSLContext, listen: Listen, app: AdmissionApp) -> None:
    """Reload the certificate into ``context`` whenever the files change."""
    paths = (listen.tls_cert, listen.tls_key)
    seen = _stamp(paths)
    while True:
        await asyncio.sleep(listen.watch_interval)
        now = _stamp(paths)
        if now == seen:
            continue
        seen = now
        try:
            check_tls_pair(*paths)
            context.load_cert_chain(str(listen.tls_cert), str(listen.tls_key))
        except (ConfigError, OSError, ssl.SSLError) as e:
            app.metrics.tls_reloads.labels("error").inc()
            log.error("TLS certificate not reloaded, keeping the one in use: %s",
                      getattr(e, "message", type(e).__name__))
            continue
        app.metrics.tls_reloads.labels("ok").inc()
        log.warning("TLS certificate reloaded from %s", listen.tls_cert)


def loop_factory(handshake_timeout: float) -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop (asyncio's without it) whose TLS servers give a client
    ``handshake_timeout`` seconds to finish its handshake (asyncio's default is 60 s, and
    uvicorn does not set it): a client that opens connections and never completes one
    holds nothing for long."""
    base: type[Any]
    try:
        import uvloop

        base = uvloop.Loop
    except ImportError:
        base = asyncio.SelectorEventLoop

    class Loop(base):  # type: ignore[misc]
        """The loop, with a handshake time limit on TLS servers."""

        async def create_server(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_handshake_timeout", handshake_timeout)
            return await super().create_server(*args, **kwargs)

    return Loop


def configure_logging() -> None:
    """The server's own messages at INFO and up, through the CLI's redacting root handler
    (the review lines are written by :class:`~imggate.admission.reviewlog.ReviewLog`)."""
    logging.getLogger("imggate.admission").setLevel(logging.INFO)


def serve(options: ServeOptions, listen: Listen, audit: AuditSchedule | None = None) -> None:
    """Load the rules (a broken file stops here: exit 2), then serve until SIGINT/SIGTERM
    (with ``audit``: auditing the cluster in the background, background_audit.py)."""
    configure_logging()
    check_tls_pair(listen.tls_cert, listen.tls_key)
    if options.pull_secrets:
        from imggate.registry.pull_secrets import check_in_cluster

        check_in_cluster(options.service_account_dir)
    if listen.client_ca is not None:
        check_client_ca(listen.client_ca)
        log.info("callers authenticated: a client certificate from %s is required",
                 listen.client_ca)
    else:
        log.warning("callers not authenticated: any pod that reaches this port can ask "
                    "whether an image passes and, through /mutate, learn its digest using "
                    "the claimed namespace's pull secrets (see docs/admission.md, "
                    "'Security'; serve --client-ca FILE requires the API server's "
                    "certificate)")
    app = AdmissionApp(options)
    app.review_log = ReviewLog(sys.stderr)
    if not app.reload_rules():
        raise ConfigError(f"rules not loaded: {app.store.last_error}")
    run(app, listen, audit)


def run(app: AdmissionApp, listen: Listen, audit: AuditSchedule | None = None) -> None:
    """Serve ``app`` until SIGINT/SIGTERM."""
    import uvicorn

    check_tls_pair(listen.tls_cert, listen.tls_key)
    limits = replace(listen.limits, authenticate=listen.client_ca is not None)
    config = uvicorn.Config(
        app.app, host=listen.host, port=listen.port, ssl_certfile=str(listen.tls_cert),
        ssl_keyfile=str(listen.tls_key),
        http=guarded_protocol(protocol_class(), limits, app.connections), loop="none",
        lifespan="on", access_log=False, server_header=False, date_header=False,
        proxy_headers=False, log_config=None, timeout_keep_alive=int(limits.keep_alive),
        # Asked for and verified when offered; the webhook paths refuse a connection
        # that offered none (connections.py), so the kubelet's probes still get in.
        ssl_ca_certs=str(listen.client_ca) if listen.client_ca else None,
        ssl_cert_reqs=ssl.CERT_OPTIONAL if listen.client_ca else ssl.CERT_NONE)
    server = uvicorn.Server(config)

    async def main() -> None:
        config.load()
        assert config.ssl is not None
        watcher = asyncio.create_task(watch_tls(config.ssl, listen, app))
        reclaimer = asyncio.create_task(reclaim_memory(app.connections))
        enforcer = asyncio.create_task(enforce_limits(app.connections))
        lag = asyncio.create_task(watch_loop_lag(app.connections))
        auditor = None
        if audit is not None:
            from imggate.admission.background_audit import (
                Leader,
                LeaseLeader,
                RedisLeader,
                RunningGauges,
                SoleLeader,
                audit_loop,
            )

            leader: Leader
            if audit.lease is not None:
                from imggate.audit.pods import KubeSource, open_client

                leader = LeaseLeader(*audit.lease, open_client(KubeSource(
                    service_account_dir=app.options.service_account_dir)))
            elif app.options.cache_url:
                leader = RedisLeader(app.options.cache_url)
            else:
                leader = SoleLeader()
            auditor = asyncio.create_task(audit_loop(
                audit, RunningGauges(app.metrics.registry), leader,
                lambda: app.store.current.hash if app.store.current is not None else None))
        try:
            await server.serve()
        except SystemExit:  # uvicorn exits when it cannot bind or start
            raise ConfigError(f"could not serve on {listen.host}:{listen.port} "
                              "(see the log above)") from None
        finally:
            watcher.cancel()
            reclaimer.cancel()
            enforcer.cancel()
            lag.cancel()
            if auditor is not None:
                auditor.cancel()
        if not server.started:
            raise ConfigError(f"could not listen on {listen.host}:{listen.port}")

    with asyncio.Runner(loop_factory=loop_factory(limits.handshake_timeout)) as runner:
        runner.run(main())
    app.review_log.flush()  # lines of the last iteration, if the loop stopped before it ended
    sys.stderr.flush()

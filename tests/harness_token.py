"""Docker token-auth server for tests (see :class:`TokenServer`)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def libtrust_key_id(public_der: bytes) -> str:
    """The ``kid`` Distribution expects: SHA-256 of the DER SPKI, 240 bits, base32, 12x4."""
    b32 = base64.b32encode(hashlib.sha256(public_der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


class TokenServer:
    """Docker-style token service (the way GitLab's registry authenticates).

    ``GET /token?service=S&scope=repository:NAME:pull`` with Basic credentials
    returns ``{"token": JWT}`` granting the requested actions; wrong credentials
    get 401; anonymous requests get a token with no access (a private
    registry). Tokens are ES256, ``kid`` = libtrust fingerprint of the key in
    :attr:`cert_path` (the registry's ``rootcertbundle``). Every request is
    recorded in :attr:`requests` as ``(user or None, scopes)``. Tests may set
    :attr:`denied` (repositories granted to nobody) and :attr:`token_fields`;
    they must restore them, the server is shared by the session.
    """

    def __init__(
        self,
        workdir: Path,
        users: Mapping[str, str],
        *,
        service: str = "imggate-test-registry",
        issuer: str = "imggate-test-token-issuer",
        ttl: int = 300,
    ) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self.requests: list[tuple[str | None, tuple[str, ...]]] = []
        # Repositories nobody may pull (a private project the user is not a member of).
        self.denied: set[str] = set()
        # Which fields carry the token: Docker's ``token``, OAuth2's ``access_token``.
        self.token_fields: tuple[str, ...] = ("token", "access_token")
        self._key = ec.generate_private_key(ec.SECP256R1())
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = libtrust_key_id(public_der)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-issuer.crt"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        """The URL the registry sends clients to."""
        return f"http://127.0.0.1:{self.port}/token"

    def issue(self, subject: str, access: list[dict[str, object]]) -> str:
        """A signed JWT for ``subject`` with ``access`` entries (type, name, actions)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # JOSE wants the raw r||s form, not DER.
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def _authenticate(self, header: str | None) -> tuple[bool, str | None]:
        """(ok, user): no header is anonymous-ok, a bad header is not ok."""
        if not header:
            return True, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            return False, None
        return True, user

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output quiet

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
                    return
                query = urllib.parse.parse_qs(url.query)
                scopes = tuple(s for v in query.get("scope", []) for s in v.split(" ") if s)
                ok, user = server._authenticate(self.headers.get("Authorization"))
                server.requests.append((user, scopes))
                if not ok:
                    self._reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                if query.get("service", [server.service])[0] != server.service:
                    self._reply(400, {"errors": [{"code": "BAD_SERVICE"}]})
                    return
                access: list[dict[str, object]] = []
                for scope in scopes if user else ():
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if name not in server.denied:
                        access.append({"type": kind, "name": name, "actions": actions.split(",")})
                token = server.issue(user or "", access)
                body: dict[str, object] = {field: token for field in server.token_fields}
                self._reply(200, {**body, "expires_in": server.ttl,
                                  "issued_at": datetime.now(UTC).isoformat()})

        return Handler

    def stop(self) -> None:
        """Shut the server down."""
        self._httpd.shutdown()
        self._httpd.server_close()


"""Real-component helpers: a Distribution registry, a token server, umoci images, skopeo.

Nothing here is a stand-in: the registry is Debian's ``docker-registry``
(Distribution 2.8), images are built by ``umoci`` and pushed by ``skopeo``,
and the token server issues JWTs that the registry itself verifies.

Pieces (importable by tests, fixtures and ``bench/``):

- :func:`require_binaries` - fail (never skip in CI) when a component is missing.
- :func:`start_registry` -> :class:`Registry` - anonymous, htpasswd or token auth
  (the token server is ``harness_token.TokenServer``).
- :func:`tampered` - corrupt a stored blob on the registry's disk, restored afterwards.
- :func:`run_imggate` - run the CLI in-process or as ``python -m imggate``.

Images (umoci layouts, skopeo push/inspect, hand-made manifests) live in
``harness_images``; docker config files and credential helpers in
``harness_credentials``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import NoReturn

from harness_token import TokenServer

REQUIRED_BINARIES = ("docker-registry", "skopeo", "umoci", "htpasswd")


def in_ci() -> bool:
    """Whether we run in CI, where a missing component must fail the run."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def may_skip_missing() -> bool:
    """Skipping for a missing binary is allowed only outside CI and only when asked for."""
    return not in_ci() and os.environ.get("IMGGATE_SKIP_MISSING") == "1"


def missing_component(message: str) -> NoReturn:
    """Fail the test for a component that is not on this machine (always in CI).

    The one place a test may skip instead: outside CI, with ``IMGGATE_SKIP_MISSING=1``.
    """
    import pytest

    if may_skip_missing():
        pytest.skip(f"{message} (IMGGATE_SKIP_MISSING=1, not in CI)")
    pytest.fail(message, pytrace=False)


def no_network() -> list[str]:
    """The command prefix that runs a program in an empty network namespace (``unshare -rn``):
    any request it makes fails. A machine that cannot make one lacks a component."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"],
                                         capture_output=True).returncode != 0:
        missing_component("unshare (an empty network namespace)")
    return [unshare, "-rn"]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait (SIGKILL when it does not stop within 10 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def require_tool(name: str, why: str) -> str:
    """The path of the program ``name``; a missing one fails the test (always in CI).

    Only outside CI, and only with ``IMGGATE_SKIP_MISSING=1``, does it skip instead.
    """

    found = shutil.which(name)
    if found is None:
        missing_component(f"{name} is needed {why} (install it: .ci/run shows how)")
    return found


class MissingComponentError(RuntimeError):
    """A binary the real-component tests need is not installed."""


def require_binaries(*names: str) -> dict[str, str]:
    """Paths of ``names`` (default: all harness binaries); raise :class:`MissingComponentError`."""
    wanted = names or REQUIRED_BINARIES
    found = {n: shutil.which(n) for n in wanted}
    missing = sorted(n for n, p in found.items() if p is None)
    if missing:
        raise MissingComponentError(
            f"missing {', '.join(missing)}: install with "
            "`apt-get install -y docker-registry skopeo umoci apache2-utils`"
        )
    return {n: p for n, p in found.items() if p is not None}


def http_get(url: str, headers: Mapping[str, str] | None = None, *, method: str = "GET",
             data: bytes | None = None, timeout: float = 10
             ) -> tuple[int, Message, bytes]:
    """(status, headers, body) for a plain-HTTP request; error statuses are returned, not raised.

    ``headers`` is case-insensitive (Distribution sends ``Www-Authenticate``).
    """
    req = urllib.request.Request(url, headers=dict(headers or {}), method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def free_port(address: str = "127.0.0.1") -> int:
    """A loopback TCP port that was free a moment ago (the caller retries on a race)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def run_tool(cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
         input_text: str | None = None) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env, input=input_text,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return proc.stdout


# --------------------------------------------------------------------------- registry


@dataclass
class Registry:
    """A running ``docker-registry serve`` on loopback with filesystem storage."""

    host: str
    root: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    auth: str = "none"
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"

    @property
    def creds(self) -> str | None:
        """``user:password`` for skopeo, or None when anonymous."""
        return f"{self.username}:{self.password}" if self.username else None

    def ref(self, repository: str, tag: str | None = None, digest: str | None = None) -> str:
        """``127.0.0.1:PORT/repository[:tag][@digest]``."""
        text = f"{self.host}/{repository}"
        if tag:
            text += f":{tag}"
        if digest:
            text += f"@{digest}"
        return text

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps the bytes of ``digest`` (manifests too)."""
        algo, _, hexpart = digest.partition(":")
        return self.root / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"

    def log_tail(self, lines: int = 30) -> str:
        """The end of the registry's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the registry (and its token server) and wait for it."""
        stop_process(self.process)
        if self.token_server is not None:
            self.token_server.stop()


def registry_requests(reg: Registry, pattern: str = r'"(?:GET|HEAD) /v2/\S') -> int:
    """Requests in the access log of ``reg`` (started with ``access_log``) whose line matches
    ``pattern`` (default: every GET or HEAD of the API), waiting for the log to settle: the
    registry writes a line just after answering."""
    import re

    found = re.compile(pattern)
    last = -1
    for _ in range(20):
        text = reg.log_path.read_text(errors="replace")
        n = sum(1 for line in text.splitlines() if found.search(line))
        if n == last:
            return n
        last = n
        time.sleep(0.1)
    return last


def _registry_config(root: Path, host: str, auth: str, htpasswd: Path | None,
                     token: TokenServer | None, access_log: bool = False) -> str:
    """Registry YAML (JSON is YAML, so no YAML writer is needed)."""
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}} if access_log else
        {"level": "warn", "accesslog": {"disabled": True}},
        # The in-memory descriptor cache (Debian's default) holds digest/size/type only,
        # not bytes, so rewriting a blob on disk with the same length is still served.
        "storage": {
            "cache": {"blobdescriptor": "inmemory"},
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": host, "secret": secrets.token_hex(16)},
        "health": {"storagedriver": {"enabled": False}},
    }
    if auth == "htpasswd":
        config["auth"] = {"htpasswd": {"realm": "imggate-test", "path": str(htpasswd)}}
    elif auth == "token":
        assert token is not None
        config["auth"] = {"token": {"realm": token.realm, "service": token.service,
                                    "issuer": token.issuer,
                                    "rootcertbundle": str(token.cert_path)}}
    return json.dumps(config, indent=2)


def write_htpasswd(path: Path, users: Mapping[str, str]) -> None:
    """A bcrypt htpasswd file (the only hash Distribution accepts) made by ``htpasswd -B``."""
    lines = []
    for user, password in users.items():
        out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                             capture_output=True, text=True).stdout
        lines.append(out.strip())
    path.write_text("\n".join(lines) + "\n")


def _wait_ready(reg: Registry, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reg.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited ({reg.process.returncode}):\n"
                               f"{reg.log_tail()}")
        try:
            with urllib.request.urlopen(f"{reg.url}/v2/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as e:
            if e.code == 401:  # up, and asking for credentials
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"docker-registry on {reg.host} did not answer /v2/ in {timeout}s:\n"
                       f"{reg.log_tail()}")


def start_registry(
    workdir: Path,
    *,
    auth: str = "none",
    users: Mapping[str, str] | None = None,
    address: str = "127.0.0.1",
    timeout: float = 15.0,
    access_log: bool = False,
) -> Registry:
    """Start a registry in ``workdir`` with ``auth`` = ``none``, ``htpasswd`` or ``token``
    (with ``access_log``, one log line per request: :func:`registry_requests` counts them).

    For auth registries ``users`` maps user -> password (default one user
    ``imggate``); the first user is the one skopeo pushes with. ``address``
    is a loopback address: ``127.0.0.1`` or ``::1``.
    """
    if auth not in ("none", "htpasswd", "token"):
        raise ValueError(f"unknown auth {auth!r}")
    require_binaries("docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    if auth != "none" and not users:
        users = {"imggate": "s3cret-" + secrets.token_hex(8)}
    users = dict(users or {})
    htpasswd = None
    token = None
    if auth == "htpasswd":
        htpasswd = workdir / "htpasswd"
        write_htpasswd(htpasswd, users)
    elif auth == "token":
        token = TokenServer(workdir, users)
    user, password = next(iter(users.items()), (None, None))
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken between probe and bind
        port = free_port(address)
        host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        root = workdir / "storage"
        root.mkdir(exist_ok=True)
        config_path = workdir / "config.yml"
        config_path.write_text(_registry_config(root, host, auth, htpasswd, token,
                                                access_log))
        log_path = workdir / "registry.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(["docker-registry", "serve", str(config_path)],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        reg = Registry(host, root, config_path, log_path, proc, auth,
                       user, password, token)
        try:
            _wait_ready(reg, timeout)
            return reg
        except RuntimeError as e:
            last_error = e
            reg.token_server = None  # keep the token server for the next attempt
            reg.stop()
    if token is not None:
        token.stop()
    raise RuntimeError(f"could not start docker-registry: {last_error}")


# --------------------------------------------------------------------------- tampering


def tamper_bytes(data: bytes) -> bytes:
    """Same-length bytes that differ from ``data``.

    For JSON documents one hex digit after the first ``sha256:`` changes, so
    the document still parses and only the hash check can catch it.
    """
    out = bytearray(data)
    pos = data.find(b"sha256:")
    if pos >= 0 and pos + 7 < len(data):
        i = pos + 7
        out[i] = ord("0") if out[i] != ord("0") else ord("1")
    else:
        i = len(out) // 2
        out[i] ^= 0x01
    return bytes(out)


@contextlib.contextmanager
def tampered(registry: Registry, digest: str) -> Iterator[Path]:
    """Corrupt the stored bytes of ``digest`` in place; restore them on exit."""
    path = registry.blob_path(digest)
    original = path.read_bytes()
    path.write_bytes(tamper_bytes(original))
    try:
        yield path
    finally:
        path.write_bytes(original)


# --------------------------------------------------------------------------- running imggate


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one imggate run."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (for "never in any output" checks)."""
        return self.stdout + self.stderr


@contextlib.contextmanager
def _patched_env(env: Mapping[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_imggate(args: Sequence[str], *, stdin: str = "", env: Mapping[str, str | None] = {},
                subprocess_mode: bool = False, timeout: float = 120) -> CliResult:
    """Run imggate with ``args``; ``env`` values of None unset a variable.

    In-process (default) calls ``imggate._cli.main`` and captures ``SystemExit``;
    ``subprocess_mode`` runs ``python -m imggate`` (fresh logging, real stdin).
    """
    if subprocess_mode:
        full_env = dict(os.environ)
        for k, v in env.items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        proc = subprocess.run([sys.executable, "-m", "imggate", *args], input=stdin,
                              capture_output=True, text=True, env=full_env, timeout=timeout)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    from imggate._cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    # main() calls logging.basicConfig; undo it so every run logs to its own stderr
    # at its own level, as a fresh process would.
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    code: int
    try:
        with _patched_env(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdin = saved_stdin
        root.handlers, root.level = saved_handlers, saved_level
    return CliResult(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def silent_port() -> Iterator[str]:
    """``127.0.0.1:PORT`` that accepts connections and never says a word (a registry that
    hangs, a firewall that lets the handshake through): what a timeout is tested against."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        listener.close()

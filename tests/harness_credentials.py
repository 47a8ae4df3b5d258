"""Credential sources for tests: docker ``config.json`` files and credential-helper programs."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Mapping
from pathlib import Path


def write_docker_config(directory: Path, host: str, username: str, password: str, *,
                        split: bool = False) -> Path:
    """``config.json`` with ``auths[host]``: ``auth`` (base64) or ``username``/``password``."""
    if split:
        entry = {"username": username, "password": password}
    else:
        entry = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": {host: entry}}))
    return path


def write_credential_helper(bin_dir: Path, name: str,
                            creds: Mapping[str, tuple[str, str]]) -> Path:
    """A stand-in ``docker-credential-<name>`` program speaking the helper protocol.

    Real helpers (pass, secretservice, ecr-login) need a keyring or a cloud,
    so this one serves ``creds`` (host -> (user, secret)) from a JSON file:
    ``get`` reads the server on stdin and prints ``{"ServerURL", "Username",
    "Secret"}``, or "credentials not found in native keychain" with exit 1.
    Returns the directory to put first on ``PATH``.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    store = bin_dir / f"{name}-store.json"
    store.write_text(json.dumps({h: list(c) for h, c in creds.items()}))
    program = bin_dir / f"docker-credential-{name}"
    program.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "if sys.argv[1:] != ['get']:\n"
        "    sys.exit('only get is supported')\n"
        "server = sys.stdin.read().strip()\n"
        f"creds = json.load(open({str(store)!r}))\n"
        "if server not in creds:\n"
        "    print('credentials not found in native keychain')\n"
        "    sys.exit(1)\n"
        "user, secret = creds[server]\n"
        "print(json.dumps({'ServerURL': server, 'Username': user, 'Secret': secret}))\n"
    )
    program.chmod(0o755)
    return bin_dir

"""``imggate serve`` flags: what is refused before anything listens (exit 2), and lazy imports."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from admission.serve_harness import make_tls
from registry_harness import run_imggate


def test_help_does_not_import_the_web_stack() -> None:
    code = ("import sys; from imggate._cli import register; register(); "
            "print([m for m in ('starlette', 'uvicorn', 'redis', 'prometheus_client', "
            "'imggate.admission.server') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def _serve(tmp_path: Path, *extra: str, subprocess_mode: bool = False) -> tuple[int, str]:
    tls_dir = tmp_path / "tls"
    if not (tls_dir / "server.key").exists():
        make_tls(tls_dir)
    # A port that is taken: whatever the arguments, nothing is left serving.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        r = run_imggate(["serve", "--tls-cert", str(tls_dir / "server.crt"), "--tls-key",
                         str(tls_dir / "server.key"), "--host", "127.0.0.1",
                         "--port", str(taken.getsockname()[1]), *extra],
                        subprocess_mode=subprocess_mode, timeout=60)
    return r.code, r.stderr


def test_configuration_errors_stop_serve_with_exit_2(tmp_path: Path) -> None:
    broken_rules = tmp_path / "rules.yaml"
    broken_rules.write_text("environments: {prod: {tags: {deny: ['(']}}}\n")
    code, err = _serve(tmp_path, "--rules", str(broken_rules))
    assert code == 2 and "rules" in err and "invalid regular expression" in err
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths": {"r.example": {"auth": "not base64!"}}}')
    code, err = _serve(tmp_path, "--registry-auth-file", str(auth))
    assert code == 2 and "not base64" in err
    code, err = _serve(tmp_path, "--cache", "memcached://x")
    assert code == 2 and "--cache" in err
    code, err = _serve(tmp_path, "--cache", "redis://127.0.0.1:1/0")
    assert code == 2 and "--cache needs --cache-key-file" in err
    short = tmp_path / "short-key"
    short.write_text("s3cret-but-short\n")
    code, err = _serve(tmp_path, "--cache", "redis://127.0.0.1:1/0", "--cache-key-file",
                       str(short))
    assert code == 2 and "at least 32 are needed" in err and "s3cret" not in err
    code, err = _serve(tmp_path, "--cache-key-file", str(short))
    assert code == 2 and "--cache-key-file is used with --cache only" in err
    for url, said in (("redis://:s3cret-pw@h:abc/0", "the port is not a number"),
                      ("rediss://h:99999999/0", "the port is not a number"),
                      ("redis://h:6379/zero", "the database"),
                      ("redis://:s3cret-pw@/0", "the host is missing"),
                      ("unix://", "the socket path is missing"),
                      ("redis://h:6379/0?socket_timeout=abc", "query has an invalid value")):
        code, err = _serve(tmp_path, "--cache", url)
        assert code == 2 and "--cache" in err, err
        assert said in err and "internal error" not in err and "s3cret-pw" not in err, err
    code, err = _serve(tmp_path, "--deadline", "0")
    assert code == 2 and "--deadline" in err
    # The API server gives a webhook 10 s at most: an answer after that is never read.
    for too_long in ("9.6", "10", "30", "nan"):
        code, err = _serve(tmp_path, "--deadline", too_long)
        assert code == 2 and "--deadline" in err, too_long
    code, err = _serve(tmp_path, "--deadline", "10")
    assert "at most 9.5 s" in err
    code, err = _serve(tmp_path, "--env", "nowhere")
    assert code == 2 and "nowhere" in err
    r = run_imggate(["serve", "--tls-cert", str(tmp_path / "missing.crt"), "--tls-key",
                     str(tmp_path / "missing.key")])
    assert r.code == 2 and "--tls-cert" in r.stderr
    key = tmp_path / "tls" / "server.key"
    key.write_text("not a key")
    code, err = _serve(tmp_path)
    assert code == 2 and "cannot be used" in err


def test_a_port_in_use_is_a_configuration_error(tmp_path: Path) -> None:
    code, err = _serve(tmp_path, "--env", "dev", subprocess_mode=True)
    assert code == 2 and "could not serve" in err

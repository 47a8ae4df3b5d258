"""The run's secrets are taken out of errors, log records, streams and reports in every form."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from imggate import logs
from imggate.errors import Error, RegistryError
from imggate.formats import gitlab
from imggate.formats.verdict_json import write_text
from imggate.redact import MASK, SECRETS, RedactingStream, Redactor, redact, register
from imggate.registry.credentials import Credentials

CANARY = "Canary-7f3e\u00e9-pw"


@pytest.fixture
def fresh() -> Iterator[Redactor]:
    yield SECRETS
    SECRETS.clear()


def forms(user: str, secret: str) -> list[str]:
    pair = f"{user}:{secret}".encode()
    return [secret, f"{user}:{secret}", base64.b64encode(pair).decode(),
            base64.b64encode(secret.encode()).decode(), json.dumps(secret)[1:-1],
            repr(secret.encode())[2:-1], base64.urlsafe_b64encode(pair).decode().rstrip("=")]


def test_every_form_of_a_secret_is_masked(fresh: Redactor) -> None:
    register(CANARY, username="ci")
    for form in forms("ci", CANARY):
        out = redact(f"before {form} after")
        assert form not in out and MASK in out, form


def test_a_secret_with_line_breaks_is_masked_whole_and_line_by_line(fresh: Redactor) -> None:
    token = "tok-first-half\r\nX-Injected: second-half"
    register(token)
    assert token not in redact(f"header {token}")
    assert "tok-first-half" not in redact("... b'Bearer tok-first-half")
    assert "X-Injected: second-half" not in redact("X-Injected: second-half")


def test_short_secrets_are_not_registered(fresh: Redactor) -> None:
    register("abc")
    assert redact("abc abc") == "abc abc"


def test_credentials_register_themselves(fresh: Redactor) -> None:
    Credentials("robot", CANARY, False, "test")
    assert CANARY not in redact(f"echo {CANARY}")


def test_errors_are_redacted_when_built(fresh: Redactor) -> None:
    register(CANARY, username="ci")
    pair = base64.b64encode(f"ci:{CANARY}".encode()).decode()
    e = RegistryError(f"registry says: Basic {pair}\n\x1b[32mResult: ALLOW", registry="r.io")
    assert CANARY not in str(e) and pair not in e.message
    # A registry error quotes a remote party: one line, escapes visible.
    assert "\n" not in e.message and "\x1b" not in e.message and "\\x1b[32m" in e.message
    hinted = Error(f"x {CANARY}", hint=f"use {CANARY}")
    assert CANARY not in hinted.diagnostics()


def test_streams_are_redacted(fresh: Redactor) -> None:
    register(CANARY)
    inner = io.StringIO()
    stream = RedactingStream(inner)
    stream.write(f"a {CANARY} b\n")
    stream.writelines([CANARY, "\n"])
    assert CANARY not in inner.getvalue()
    assert stream.isatty() is False


def test_reports_are_redacted(fresh: Redactor, tmp_path: Path) -> None:
    register(CANARY)
    write_text(tmp_path / "r.html", f"<p>{CANARY}</p>")
    gitlab.write(tmp_path / "gl.json", {"note": CANARY})
    for name in ("r.html", "gl.json"):
        data = (tmp_path / name).read_bytes()
        assert CANARY.encode() not in data and json.dumps(CANARY)[1:-1].encode() not in data


def test_log_records_are_redacted_and_libraries_quiet_below_vv(fresh: Redactor) -> None:
    register(CANARY)
    out = io.StringIO()
    try:
        logs.configure(1, out)
        logging.getLogger("imggate.test").debug("sent %s\r\nforged line", CANARY)
        logging.getLogger("httpx").debug("library %s", "noise")
        logging.getLogger("hpack.hpack").debug("Encoding %s", [(b"authorization", b"x")])
        text = out.getvalue()
        assert CANARY not in text and "\\r\\nforged line" in text
        assert "library" not in text and "Encoding" not in text
        logs.configure(2, out)
        logging.getLogger("httpcore.http11").debug("trace %s", CANARY)
        logging.getLogger("hpack.hpack").debug("Decoding %s", b"\x82\x86")
        text = out.getvalue()
        assert "trace [redacted]" in text and "Decoding" not in text
        assert logs.verbosity() == 2
    finally:
        logs.configure(0)


def test_an_identity_token_is_masked_as_sent_in_a_form_body(fresh: Redactor) -> None:
    import urllib.parse

    token = "id/tok+en=Canary&x"
    Credentials("<token>", token, True, "config.json")
    body = urllib.parse.urlencode({"refresh_token": token, "grant_type": "refresh_token"})
    assert urllib.parse.quote_plus(token) in body
    assert urllib.parse.quote_plus(token) not in redact(body)
    assert token not in redact(f"refresh_token={token}")


def test_a_report_without_secrets_is_returned_as_is(fresh: Redactor) -> None:
    register(CANARY)
    text = "x" * 1000
    assert redact(text) is text

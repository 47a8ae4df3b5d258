"""The run's secrets are taken out of errors, log records, streams and reports in every form."""

from __future__ import annotations

import base64
import io
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imggate import logs
from imggate.errors import Error, RegistryError
from imggate.formats import gitlab
from imggate.formats.verdict_json import write_text
from imggate.redact import (
    GRACE_SECONDS,
    MASK,
    MAX_EPHEMERAL,
    MAX_EPHEMERAL_BYTES,
    SECRETS,
    RedactingStream,
    Redactor,
    redact,
    register,
)
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


def test_the_html_report_is_redacted(fresh: Redactor, tmp_path: Path) -> None:
    # The page is written part by part when there is no secret: never with one.
    from msgspec import structs

    from formats.verdict_samples import deny_image, single
    from imggate.formats import html
    from imggate.values import replace

    register(CANARY)
    iv = deny_image(5)
    iv = replace(iv, findings=(structs.replace(iv.findings[0], title=f"leaked {CANARY}"),
                               *iv.findings[1:]))
    data = html.write(single(iv), tmp_path).read_bytes()
    assert CANARY.encode() not in data and b"leaked " in data


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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwt_like(rng: random.Random, n: int = 300) -> str:
    """A token as registries issue them: a shared header, then unique text."""
    tail = base64.urlsafe_b64encode(rng.randbytes(n * 3 // 4 + 3)).decode().rstrip("=")
    return "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9." + tail[:n]


def reference_redact(text: str, forms: list[str]) -> str:
    """Every occurrence of every form masked, overlapping ones as one (the definition)."""
    covered = [False] * len(text)
    for form in forms:
        at = text.find(form)
        while at != -1:
            for i in range(at, at + len(form)):
                covered[i] = True
            at = text.find(form, at + 1)
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab/+=x\"\n<é", min_size=4, max_size=40), min_size=1,
                max_size=60),
       st.lists(st.integers(0, 59), max_size=8), st.text(alphabet="ab/+=x\"<é ", max_size=80))
def test_many_secrets_are_masked_like_the_definition(secrets_: list[str], picks: list[int],
                                                     noise: str) -> None:
    # Over _SCAN_ABOVE forms the index answers, under it the plain search: both must mask
    # exactly every occurrence of every form, whatever the alphabet and overlaps.
    redactor = Redactor()
    for s in secrets_:
        redactor.add(s)
    chosen = [secrets_[i % len(secrets_)] for i in picks]
    text = noise.join(chosen) + noise
    forms = sorted(redactor._refs)  # the forms it holds, each looked for
    assert redactor.redact(text) == reference_redact(text, forms)
    assert redactor.contains_secret(text) == (reference_redact(text, forms) != text)


def test_a_token_is_forgotten_after_its_end_and_the_grace_period() -> None:
    clock = Clock()
    redactor = Redactor(clock)
    rng = random.Random(7)
    redactor.add("a-password-kept-for-the-run")
    token, renewed = jwt_like(rng), jwt_like(rng)
    redactor.add(token, until=clock.now + 300)
    assert len(redactor) == 2 and token not in redactor.redact(f"Bearer {token}")
    clock.now += 300 + GRACE_SECONDS - 1
    assert token not in redactor.redact(f"Bearer {token}")
    clock.now += 2
    assert redactor.redact(f"Bearer {token}") == f"Bearer {token}" and len(redactor) == 1
    # Replaced by a renewal: forgotten a grace period after the replacement.
    redactor.add(renewed, until=clock.now + 3600)
    redactor.release(renewed)
    clock.now += GRACE_SECONDS + 1
    assert renewed in redactor.redact(renewed) and len(redactor) == 1
    assert "a-password-kept-for-the-run" not in redactor.redact("a-password-kept-for-the-run")


def test_the_set_of_tokens_is_bounded_and_the_soonest_ending_go_first() -> None:
    clock = Clock()
    redactor = Redactor(clock)
    tokens = [f"t{i:06d}" for i in range(MAX_EPHEMERAL + 10)]  # short: count-bound
    for i, t in enumerate(tokens):
        redactor.add(t, until=clock.now + 10_000 - i)  # later ones end sooner
    assert len(redactor) == MAX_EPHEMERAL
    assert tokens[0] not in redactor.redact(tokens[0])  # the longest-lived are kept
    assert redactor.redact(tokens[-1]) == tokens[-1]
    redactor.clear()
    assert len(redactor) == 0 and redactor.forms == 0
    # Big ones: bound by the memory their forms take.
    rng = random.Random(8)
    big = [jwt_like(rng, 16_000) for _ in range(1000)]
    for i, t in enumerate(big):
        redactor.add(t, until=clock.now + 10_000 - i)
    held = sum(len(f) for f in redactor._refs)
    assert 100 < len(redactor) < 1000 and held < MAX_EPHEMERAL_BYTES
    assert redactor.redact(big[0]) == MASK and redactor.redact(big[-1]) == big[-1]


def test_token_churn_leaves_nothing_behind(fresh: Redactor) -> None:
    # 10,000 renewals of 100 scopes, as RegistryAuth does them: register, release the old.
    clock = Clock()
    redactor = Redactor(clock)
    rng = random.Random(9)
    current: dict[int, str] = {}
    for i in range(10_000):
        clock.now += 0.1
        token = jwt_like(rng, 120)
        redactor.add(token, until=clock.now + 300)
        old = current.get(i % 100)
        if old is not None:
            redactor.release(old)
        current[i % 100] = token
    # Held: the 100 in use, and those released within the grace period (10 per second).
    assert len(redactor) <= 100 + int(GRACE_SECONDS * 10) + 1
    assert all(redactor.redact(t) == MASK for t in current.values())
    clock.now += 300 + GRACE_SECONDS + 1
    redactor.add("x" * 20)  # any change expires what has ended
    alone = Redactor()
    alone.add("x" * 20)
    assert len(redactor) == 1 and redactor.forms == alone.forms
    assert redactor._index.keys() == alone._index.keys()


def test_bytes_written_beneath_a_stream_are_redacted(fresh: Redactor) -> None:
    register(CANARY)
    inner = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stream = RedactingStream(inner)
    data = f"report {CANARY} \xff".encode("utf-8", "surrogateescape") + b"\xff"
    assert stream.buffer.write(data) == len(data)
    stream.buffer.writelines([CANARY.encode(), b"\n"])
    stream.buffer.flush()
    written = inner.buffer.getvalue()  # type: ignore[attr-defined]
    assert CANARY.encode() not in written and MASK.encode() in written
    assert written.startswith(b"report ") and b"\xff" in written  # the rest as it was
    SECRETS.clear()
    stream.buffer.write(CANARY.encode())  # no secret held: written as it is
    stream.buffer.flush()
    assert inner.buffer.getvalue().endswith(CANARY.encode())  # type: ignore[attr-defined]


def test_click_writing_beneath_an_ascii_stream_is_redacted(
        fresh: Redactor, monkeypatch: pytest.MonkeyPatch) -> None:
    # With an ASCII stdout, click wraps the stream's binary buffer in a text stream of its
    # own and writes there: what it prints must be redacted all the same.
    import sys

    from typer import _click

    register(CANARY)
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", RedactingStream(io.TextIOWrapper(raw, encoding="ascii")))
    _click.echo(f"token {CANARY}")
    sys.stdout.flush()
    assert raw.getvalue().startswith(b"token ")
    assert CANARY.encode("utf-8") not in raw.getvalue()
    assert MASK.encode() in raw.getvalue()

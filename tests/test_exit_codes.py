"""``docs/exit-codes.md``'s table of every cause and its code, walked row by row.

Each row's ``id`` has a recipe here that makes that cause happen for real (the bundled
example layout, the Distribution registry, a port that refuses, one that answers 503, one
that never answers, tampered bytes, the Trivy stand-in crashing) and the run must end with
the row's code. A row without a recipe, or a recipe without a row, fails the test. Every
exit-2 cause is also shown to be found before any network traffic: its image lives on a
port that counts connections, and none is made.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fixture_paths import FIXTURES
from harness_images import PushedImage
from registry_harness import free_port, run_imggate, tampered

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "exit-codes.md"
EXAMPLE = ["oci:" + str(REPO / "examples" / "app"), "--trivy-report",
           str(REPO / "examples" / "trivy-report.json"), "--key",
           str(REPO / "examples" / "cosign.pub"), "--insecure-ignore-tlog",
           "--rules", str(REPO / "rules" / "default.yaml")]
STANDIN = REPO / "tests" / "scanners" / "fake_trivy_standin.py"


def table() -> dict[str, int]:
    """``id -> code`` from the doc's table."""
    rows = re.findall(r"^\| [^|]+ \| (\d) \| `([a-z0-9-]+)` \|$", DOC.read_text(), re.M)
    assert rows, "docs/exit-codes.md has no cause table"
    return {ident: int(code) for code, ident in rows}


class Counter:
    """A loopback port that accepts connections, counts them, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.held.append(self.sock.accept()[0])
                self.accepted += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for s in self.held:
            s.close()
        self.sock.close()


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def never() -> Iterator[Counter]:
    c = Counter()
    yield c
    c.close()


@pytest.fixture(scope="module")
def unavailable() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@dataclass
class Ctx:
    """What a recipe may use."""

    tmp: Path
    never: Counter
    unavailable: str
    image: PushedImage
    env: dict[str, str | None] = field(default_factory=dict)

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)

    @property
    def offline(self) -> str:
        """An image on the counting port: any fetch would be seen."""
        return f"{self.never.host}/exit/app:1.0.0"


Recipe = Callable[[Ctx], list[str]]


def _rules(ctx: Ctx, extra: str, beside: tuple[str, str]) -> str:
    """A rules file with ``extra`` top-level keys, and the file ``beside`` it names."""
    ctx.write(*beside)
    return ctx.write("rules.yaml", "version: 1\nenvironments:\n  dev:\n    severity: "
                     "{fail_on: Critical}\n" + extra)


def _crash_trivy(ctx: Ctx) -> list[str]:
    bindir = ctx.tmp / "bin"
    bindir.mkdir()
    exe = bindir / "trivy"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    exe.chmod(0o755)
    ctx.env.update({"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_TRIVY_MODE": "fail",
                    "FAKE_TRIVY_REPORT": str(FIXTURES / "trivy" / "alpine-310.json")})
    return [ctx.image.ref, "--scan", "trivy", "--skip-db-update"]


def _report_path(c: Ctx, target: str | None) -> list[str]:
    """The bundled example into ``c.tmp/reports``, whose JUnit report's name is taken: by
    a directory (``target`` ``None``), else by a symlink to ``target``."""
    junit = c.tmp / "reports" / "imggate-junit.xml"
    junit.parent.mkdir()
    if target is None:
        junit.mkdir()
    else:
        junit.symlink_to(target)
    return EXAMPLE


RECIPES: dict[str, Recipe] = {
    "allowed": lambda c: EXAMPLE,
    "denied-reference": lambda c: [*EXAMPLE, "--env", "prod"],
    "denied-reference-registry-down": lambda c: [
        f"127.0.0.1:{free_port()}/exit/app:latest", "--rules",
        str(REPO / "rules" / "default.yaml"), "--env", "prod"],
    "denied-finding": lambda c: [*EXAMPLE, "--severity", "CRITICAL,HIGH,MEDIUM,LOW"],
    "bad-flag": lambda c: [c.offline, "--no-such-flag"],
    "bad-reference": lambda c: ["127.0.0.1:1/UPPER/case:1"],
    "bad-rules": lambda c: [c.offline, "--rules", c.write("r.yaml", "version: 1\nenvironments:"
                                                          "\n  dev: {sevrity: {}}\n")],
    "unknown-env": lambda c: [c.offline, "--env", "nowhere"],
    "report-missing": lambda c: [c.offline, "--trivy-report", str(c.tmp / "trivy.json")],
    "report-malformed": lambda c: [c.offline, "--trivy-report",
                                   c.write("trivy.json", '{"SchemaVersion": 2, "Results": 7}')],
    "key-missing": lambda c: [c.offline, "--key", str(c.tmp / "cosign.pub")],
    "key-malformed": lambda c: [c.offline, "--key", c.write("cosign.pub", "not a key\n")],
    "chain-missing": lambda c: [c.offline, "--certificate-chain", str(c.tmp / "chain.pem"),
                                "--certificate-identity", "a@b", "--certificate-oidc-issuer",
                                "https://issuer.example"],
    "trusted-root-malformed": lambda c: [
        c.offline, "--trusted-root", c.write("root.json", '{"mediaType": "nope"}'),
        "--certificate-identity", "a@b", "--certificate-oidc-issuer", "https://i.example"],
    "allowlist-missing": lambda c: [c.offline, "--allowlist", str(c.tmp / ".trivyignore")],
    "allowlist-malformed": lambda c: [c.offline, "--rules", _rules(
        c, "allowlists: [bad.yaml]\n", ("bad.yaml", "- [unclosed\n"))],
    "kev-missing": lambda c: [c.offline, "--rules", c.write(
        "rules.yaml", "version: 1\nenvironments:\n  dev:\n    severity: {fail_on: Critical, "
        "kev: kev.json}\n")],
    "template-syntax": lambda c: [c.offline, "--html-template", c.write("t.j2", "{% if %}")],
    "template-unknown-name": lambda c: [c.offline, "--html-template",
                                        c.write("t.j2", "<p>{{ verdict.env }}</p>\n"
                                                        "<p>{{ no_such_thing }}</p>")],
    "template-render": lambda c: [*EXAMPLE, "--html-template",
                                  c.write("t.j2", "{{ verdict.images[7].reference }}")],
    "output-dir": lambda c: [c.offline, "-o", "/dev/null/reports"],
    "report-path-directory": lambda c: _report_path(c, None),
    "reports-disk-full": lambda c: _report_path(c, "/dev/full"),
    "registry-unreachable": lambda c: [f"127.0.0.1:{free_port()}/exit/app:1.0.0"],
    "registry-5xx": lambda c: [f"{c.unavailable}/exit/app:1.0.0", "--timeout", "2"],
    "registry-timeout": lambda c: [c.offline, "--timeout", "1", "--deadline", "2"],
    "digest-mismatch": lambda c: [c.image.pinned],
    "scanner-crashed": _crash_trivy,
}


def test_every_row_has_a_recipe_and_every_recipe_a_row() -> None:
    assert set(table()) == set(RECIPES)


@pytest.mark.registry
@pytest.mark.usefixtures("isolated_auth_env")
@pytest.mark.parametrize(("ident", "code"), sorted(table().items()))
def test_each_cause_ends_with_its_code(ident: str, code: int, tmp_path: Path, never: Counter,
                                       unavailable: str, fresh_image: PushedImage) -> None:
    ctx = Ctx(tmp_path, never, unavailable, fresh_image)
    args = RECIPES[ident](ctx)
    out = tmp_path / "reports"
    if "-o" not in args:
        args = [*args, "-o", str(out)]
    before = never.accepted
    with (tampered(fresh_image.registry, _config_digest(fresh_image))
          if ident == "digest-mismatch" else contextlib.nullcontext()):
        res = run_imggate(["check", *args], env=ctx.env)
    assert res.code == code, f"{ident}: {res.output}"
    assert "Traceback" not in res.output
    if code == 2:
        assert never.accepted == before, f"{ident}: fetched before failing"
        assert res.output.count("imggate: error: ") >= 1 or "Usage:" in res.output
    if code in (0, 1, 3) and (out / "imggate-verdict.json").exists():
        verdict = json.loads((out / "imggate-verdict.json").read_text())
        assert {0: "allow", 1: "deny", 3: "error"}[code] == verdict["decision"]
        assert f"(exit code {code})" in res.stdout
    if ident == "template-render":
        written = sorted(p.name for p in out.iterdir())
        assert written == ["gl-container-scanning-report.json", "imggate-junit.xml",
                           "imggate-verdict.json"]
        assert json.loads((out / "imggate-verdict.json").read_text())["decision"] == "allow"
        assert "Result: ALLOW, but the HTML report was not written: " in res.stdout
        assert "(exit code 2)" in res.stdout


def _config_digest(image: PushedImage) -> str:
    from registry_harness import http_get

    status, _, body = http_get(f"{image.registry.url}/v2/{image.repository}/manifests/"
                               f"{image.digest}",
                               {"Accept": "application/vnd.oci.image.manifest.v1+json,"
                                          "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200
    return str(json.loads(body)["config"]["digest"])

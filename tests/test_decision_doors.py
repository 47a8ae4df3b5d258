"""Every door decides with the one decision function: the same image, rules and registry
fault give the same decision and reasons in ``check``, ``check -f``, ``serve`` and ``audit``.

One table: {reference violation, signature failure, severity violation, severity violation
with the signatures unreadable} x {no fault, registry unreachable, 404, timeout, bytes that
do not match their digest}. A certain violation is a denial (exit 1) whatever failed; an
error with nothing certain is "could not decide" (exit 3). Real components: the
Distribution registry, cosign-format signatures, ``imggate serve`` over TLS, a TCP port
that accepts and never answers (the timeout).
"""

from __future__ import annotations

import contextlib
import json
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admission.conftest import trivy_report_for
from admission.serve_harness import ServeProcess, review, start_serve
from imggate.models import Digest
from registry_harness import Registry, free_port, run_imggate, silent_port, tampered
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env"),
              # A lookup stopped when the image's config fails must unwind on the loop,
              # never be destroyed mid-request when it closes (imggate._aio.run).
              pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")]

DENY, ERROR, ALLOW = "deny", "error", "allow"


@dataclass(frozen=True)
class Pushed:
    """The images of the table, in one registry, one repository each."""

    registry: Registry
    digests: dict[str, Digest]
    configs: dict[str, Digest]
    sig_layers: dict[str, Digest]
    key: Path
    reports: Path

    def ref(self, name: str, host: str | None = None, tag: str | None = None) -> str:
        return f"{host or self.registry.host}/doors/{name}:{tag or TAGS[name]}"


#: name -> tag. "app" is referenced as latest (denied in prod); the others by a version tag.
TAGS = {"app": "latest", "badsig": "v1", "crit": "v1", "critnosig": "v1"}


def _config_digest(repo: InMemoryRepository, digest: Digest) -> Digest:
    manifest = json.loads(repo.manifests[digest])
    return Digest.parse(manifest["config"]["digest"])


@pytest.fixture(scope="module")
def pushed(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    work = tmp_path_factory.mktemp("doors")
    signer, stranger = CosignFormatSigner(), CosignFormatSigner()
    key = work / "release.pub"
    key.write_bytes(signer.public_pem)
    reports = work / "reports"
    reports.mkdir()
    digests, configs, sig_layers = {}, {}, {}
    for name, tag in TAGS.items():
        repo = InMemoryRepository(f"{anon_registry.host}/doors/{name}")
        digest = make_image(repo, tag=tag)
        before = set(repo.blobs)
        (stranger if name == "badsig" else signer).sign_image(repo, digest)
        sig_layers[name] = next(d for d in repo.blobs if d not in before)
        push_repository(repo, anon_registry.url, f"doors/{name}")
        digests[name], configs[name] = digest, _config_digest(repo, digest)
        if name.startswith("crit"):  # a Critical finding, bound to this digest
            (reports / f"{digest.tag_form}.trivy.json").write_bytes(trivy_report_for(
                f"{anon_registry.host}/doors/{name}", digest, "alpine-39-high-critical.json"))
    return Pushed(anon_registry, digests, configs, sig_layers, key, reports)


@pytest.fixture(scope="module")
def black_hole() -> Iterator[str]:
    """``127.0.0.1:PORT`` that accepts connections and never says a word (a timeout)."""
    with silent_port() as host:
        yield host


def rules_text(key: Path) -> str:
    return textwrap.dedent(f"""\
        version: 1
        default_env: dev
        environments:
          dev: {{}}
          prod:
            tags: {{deny: [latest]}}
            signatures: {{keys: ["{key}"]}}
            severity: {{fail_on: Critical}}
        namespaces:
          map:
            - {{match: "*-prod", env: prod}}
        """)


@pytest.fixture(scope="module")
def rules(pushed: Pushed) -> Path:
    path = pushed.reports.parent / "rules.yaml"
    path.write_text(rules_text(pushed.key))
    return path


@pytest.fixture(scope="module")
def webhook(pushed: Pushed, rules: Path) -> Iterator[ServeProcess]:
    server = start_serve(pushed.reports.parent / "serve",
                         ["--rules", str(rules), "--insecure-ignore-tlog", "--reports-dir",
                          str(pushed.reports), "--deadline", "2"])
    yield server
    server.stop()


# "none" last: the webhook caches a verdict by digest, and a fault must not be answered
# from the cache of a clean run.
FAULTS = ("unreachable", "404", "timeout", "bad-digest", "none")

#: image -> (decision without a fault, decision under any registry fault, the rule that
#: denies). A reference violation needs no registry; the others do, except a finding already
#: read, which denies although the signatures could not be read.
TABLE = {
    "app": (DENY, DENY, "tags.denied"),
    "badsig": (DENY, ERROR, "signatures"),
    "crit": (DENY, ERROR, "severity"),
    "critnosig": (DENY, DENY, "severity"),
}


@dataclass(frozen=True)
class Case:
    image: str
    fault: str

    @property
    def expected(self) -> str:
        clean, faulted, _ = TABLE[self.image]
        return clean if self.fault == "none" else faulted

    @property
    def rule(self) -> str:
        return TABLE[self.image][2]


CASES = [Case(i, f) for i in TABLE for f in FAULTS
         # critnosig's fault is built in (its signature layer does not match its digest).
         if i != "critnosig" or f == "none"]


@contextlib.contextmanager
def faulted(case: Case, pushed: Pushed, black_hole: str) -> Iterator[str]:
    """The reference to use, with the case's fault in place."""
    name = case.image
    if case.fault == "unreachable":
        yield pushed.ref(name, host=f"127.0.0.1:{free_port()}")
    elif case.fault == "404":  # latest stays latest: its repository is the one missing
        yield (f"{pushed.registry.host}/doors/{name}-gone:latest" if TAGS[name] == "latest"
               else pushed.ref(name, tag="gone"))
    elif case.fault == "timeout":
        yield pushed.ref(name, host=black_hole)
    elif case.fault == "bad-digest":
        with tampered(pushed.registry, str(pushed.configs[name])):
            yield pushed.ref(name)
    else:
        with (tampered(pushed.registry, str(pushed.sig_layers[name])) if name == "critnosig"
              else contextlib.nullcontext()):
            yield pushed.ref(name)


def _cli_args(case: Case, pushed: Pushed, rules: Path, out: Path) -> list[str]:
    args = ["--rules", str(rules), "-o", str(out), "--insecure-ignore-tlog",
            "--timeout", "1", "--deadline", "3"]
    if case.image.startswith("crit"):
        digest = pushed.digests[case.image]
        args += ["--trivy-report", str(pushed.reports / f"{digest.tag_form}.trivy.json")]
    return args


def _verdict(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "imggate-verdict.json").read_text())
    return doc


EXIT = {ALLOW: 0, DENY: 1, ERROR: 3}


def _door_check(case: Case, ref: str, pushed: Pushed, rules: Path, out: Path
                ) -> tuple[str, set[str], str]:
    res = run_imggate(["check", ref, "--env", "prod", *_cli_args(case, pushed, rules, out)])
    image = _verdict(out)["images"][0]
    assert res.code == EXIT[image["decision"]], res.output
    assert f"(exit code {res.code})" in res.stdout
    return image["decision"], {v["rule"] for v in image["violations"]}, res.stdout


def _door_manifests(case: Case, ref: str, pushed: Pushed, rules: Path, out: Path
                    ) -> tuple[str, set[str], str]:
    manifest = out.parent / f"{out.name}.yaml"
    manifest.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: app, namespace: shop-prod}}
        spec:
          containers:
            - {{name: app, image: "{ref}"}}
        """))
    res = run_imggate(["check", "-f", str(manifest), *_cli_args(case, pushed, rules, out)])
    image = _verdict(out)["images"][0]
    assert res.code == EXIT[image["decision"]], res.output
    assert f"-> prod (namespaces.map[0] '*-prod'): {image['decision']}" in res.stdout
    return image["decision"], {v["rule"] for v in image["violations"]}, res.stdout


def _door_serve(webhook: ServeProcess, ref: str) -> tuple[str, set[str], str]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
           "spec": {"containers": [{"name": "app", "image": ref}]}}
    with webhook.client() as c:
        r = c.post("/validate", json=review(pod, namespace="shop-prod"))
    assert r.status_code == 200, r.text
    response = r.json()["response"]
    if response["allowed"]:
        return ALLOW, set(), ""
    message = response["status"]["message"]
    if ": could not be checked: " in message:
        return ERROR, set(), message
    rules = {rule for rule in TABLE_RULES if f": {rule}: " in message}
    return DENY, rules, message + "\n" + "\n".join(response.get("warnings") or [])


TABLE_RULES = ("tags.denied", "tags.digest-pinning", "signatures", "severity")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.image}-{c.fault}")
def test_every_door_gives_the_same_decision_and_reasons(
        case: Case, pushed: Pushed, rules: Path, webhook: ServeProcess, black_hole: str,
        tmp_path: Path) -> None:
    with faulted(case, pushed, black_hole) as ref:
        started = time.monotonic()
        check = _door_check(case, ref, pushed, rules, tmp_path / "check")
        manifests = _door_manifests(case, ref, pushed, rules, tmp_path / "manifests")
        served = _door_serve(webhook, ref)
        if case.image == "app":  # decided by the reference: no registry deadline waited for
            assert time.monotonic() - started < 12
    for door, (decision, violated, said) in (("check", check), ("check -f", manifests),
                                             ("serve", served)):
        assert decision == case.expected, f"{door}: {said}"
        if decision == DENY:
            assert case.rule in violated, f"{door}: {said}"
    if case.expected == DENY and case.fault != "none" and case.image != "app":
        # Denied for certain with evidence unread: each door says what was not checked.
        assert "also not checked: " in check[2]
        assert "also not checked: " in manifests[2]
        assert "not checked: " in served[2]


def test_audit_judges_a_tag_it_cannot_resolve_by_its_reference(
        pushed: Pushed, rules: Path, tmp_path: Path) -> None:
    """``latest`` whose image cannot be read is denied (the reference decides); a signed
    tag whose image cannot be read is undecided; without the fault both are judged."""
    def audit(name: str, out: Path) -> tuple[int, dict[str, Any]]:
        res = run_imggate(["audit", f"{pushed.registry.host}/doors/{name}", "--rules",
                           str(rules), "--env", "prod", "--insecure-ignore-tlog",
                           "-o", str(out), "-q"])
        doc = json.loads((out / "imggate-audit.json").read_text())
        return res.code, {r["tag"]: r for r in doc["rows"]}

    code, rows = audit("app", tmp_path / "a1")
    assert code == 1 and rows["latest"]["decisions"] == {"prod": DENY}
    with tampered(pushed.registry, str(pushed.configs["app"])):
        code, rows = audit("app", tmp_path / "a2")
    assert code == 1 and rows["latest"]["decisions"] == {"prod": DENY}
    assert rows["latest"]["error"]
    with tampered(pushed.registry, str(pushed.configs["badsig"])):
        code, rows = audit("badsig", tmp_path / "a3")
    assert code == 3 and rows["v1"]["decisions"] == {"prod": ERROR}
    code, rows = audit("badsig", tmp_path / "a4")
    assert code == 1 and rows["v1"]["decisions"] == {"prod": DENY}


def test_a_run_of_one_denied_and_one_undecided_image_is_denied(
        pushed: Pushed, rules: Path, webhook: ServeProcess, tmp_path: Path) -> None:
    """A retry cannot fix the denial: exit 1 in every door, and the verdict says deny."""
    denied = pushed.ref("app")
    undecided = pushed.ref("crit", host=f"127.0.0.1:{free_port()}")
    out = tmp_path / "o"
    res = run_imggate(["check", denied, undecided, "--env", "prod", "--rules", str(rules),
                       "-o", str(out), "--timeout", "1", "--deadline", "3"])
    assert res.code == 1, res.output
    assert _verdict(out)["decision"] == DENY
    assert "Result: DENY (exit code 1)" in res.stdout
    manifest = tmp_path / "two.yaml"
    manifest.write_text("".join(textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: p{n}, namespace: shop-prod}}
        spec:
          containers:
            - {{name: c, image: "{ref}"}}
        """) for n, ref in enumerate((denied, undecided))))
    res = run_imggate(["check", "-f", str(manifest), "--rules", str(rules), "-o", str(out),
                       "--timeout", "1", "--deadline", "3"])
    assert res.code == 1 and _verdict(out)["decision"] == DENY, res.output
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
           "spec": {"containers": [{"name": "a", "image": denied},
                                   {"name": "b", "image": undecided}]}}
    with webhook.client() as c:
        r = c.post("/validate", json=review(pod, namespace="shop-prod")).json()["response"]
    assert r["allowed"] is False
    assert f"{denied}: tags.denied: " in r["status"]["message"]
    assert f"{undecided}: could not be checked: " in r["status"]["message"]


def test_serve_denies_what_it_found_before_a_fetch_ran_out_of_time(
        pushed: Pushed, rules: Path, black_hole: str) -> None:
    """The signatures live on a host that never answers: the review's registry requests are
    cut off a moment before its answer is due, and the Critical finding read before is
    still a denial (with what was not checked), answered within the deadline; not "timed
    out" (which on_undecided: warn would admit)."""
    server = start_serve(pushed.reports.parent / "serve-slow-sigs",
                         ["--rules", str(rules), "--insecure-ignore-tlog", "--reports-dir",
                          str(pushed.reports), "--deadline", "2",
                          "--signature-repository", f"{black_hole}/doors/signatures"])
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow"},
               "spec": {"containers": [{"name": "app", "image": pushed.ref("crit")}]}}
        started = time.monotonic()
        with server.client() as c:
            r = c.post("/validate", json=review(pod, namespace="shop-prod")).json()["response"]
        took = time.monotonic() - started
    finally:
        server.stop()
    assert r["allowed"] is False
    message = r["status"]["message"]
    assert f"{pushed.ref('crit')}: severity: " in message, message
    assert "could not be checked" not in message and "timed out" not in message
    assert any(w.startswith(f"{pushed.ref('crit')}: not checked: ")
               for w in r.get("warnings") or []), r
    assert took < 3.0

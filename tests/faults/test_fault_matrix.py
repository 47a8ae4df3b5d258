"""The fault matrix: resolve, verify and check against every fault of the hostile registry.

For each fault (``catalogue.FAULTS``) the three commands run one after the
other (in this process, through the CLI's ``main``, as ``run_imggate`` does;
output captured as written), each against its own repository on the
hostile registry, with the canary credentials in a docker config and short
bounds (``--timeout 0.5 --deadline 2`` unless the fault needs more). Each run must:

- exit with a code the fault allows (never 0 where the evidence is incomplete),
- finish within the deadline plus start-up slack (no hang),
- never crash (no "internal error", no traceback outside ``-vv``),
- never output a canary secret (stdout, stderr, every report; byte for byte and
  base64), nor a raw control character from the registry (log injection),
- and ``check`` must still write its four reports.

``resolve`` runs with ``-vv``: the HTTP libraries' debug records are on and
must be redacted too. The totals are printed at the end of the pytest run.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from faults import matrix
from faults.catalogue import FAULTS, Fault, actions
from faults.hostile_registry import Canary, Content, HostileRegistry
from fixture_paths import FIXTURES
from imggate.models import Digest
from registry_harness import CliResult, run_imggate
from signatures.cosign_format_signer import CosignFormatSigner, make_image, make_index
from signatures.inmemory import InMemoryRepository

TIMEOUT = "0.5"
#: Report writing and imports on a loaded 2-core machine.
SLACK = 6.0
REPORTS = ("gl-container-scanning-report.json", "imggate-report.html", "imggate-junit.xml",
           "imggate-verdict.json")


@dataclass(frozen=True)
class World:
    """The registry, its content, and the files every run uses."""

    registry: HostileRegistry
    canary: Canary
    key: Path
    report: Path
    docker_config: Path
    tmp: Path


def _content(signer: CosignFormatSigner, name: str) -> Content:
    repo = InMemoryRepository(name)
    child = make_image(repo, None, b"hostile app layer")
    index = make_index(repo, [(child, "linux/amd64")], "1.0.0")
    sig = signer.sign_image(repo, index)
    roles = {index: "index", child: "manifest", sig: "sig"}
    child_doc = json.loads(repo.manifests[child])
    roles[Digest.parse(child_doc["config"]["digest"])] = "config"
    sig_doc = json.loads(repo.manifests[sig])
    roles[Digest.parse(sig_doc["config"]["digest"])] = "sig-config"
    for layer in sig_doc["layers"]:
        roles[Digest.parse(layer["digest"])] = "sig-payload"
    return Content(dict(repo.manifests), dict(repo.blobs), dict(repo.tag_map), roles)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("fault-matrix")
    canary = Canary("canary-user", "CanaryPw-" + secrets.token_hex(8),
                    "CanaryTok-" + secrets.token_hex(12))
    signer = CosignFormatSigner()
    content = _content(signer, "hostile/app")
    registry = HostileRegistry(content, actions(), canary)
    key = tmp / "cosign.pub"
    key.write_bytes(signer.public_pem)
    index = content.tags["1.0.0"]
    doc = json.loads((FIXTURES / "trivy" / "alpine-310.json").read_text())
    doc["ArtifactName"] = f"{registry.host}/hostile/app@{index}"
    doc.setdefault("Metadata", {})["RepoDigests"] = [f"{registry.host}/hostile/app@{index}"]
    doc["Metadata"].pop("ImageID", None)
    report = tmp / "trivy.json"
    report.write_text(json.dumps(doc))
    docker_config = tmp / "docker"
    docker_config.mkdir()
    auth = base64.b64encode(f"{canary.user}:{canary.password}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {registry.host: {
        "auth": auth}}}))
    try:
        yield World(registry, canary, key, report, docker_config, tmp)
    finally:
        registry.stop()


def _run(world: World, fault: Fault, command: str) -> tuple[CliResult, float, Path]:
    ref = f"{world.registry.host}/f/{fault.name}/{command}:1.0.0"
    bounds = ["--timeout", TIMEOUT, "--deadline", str(fault.deadline)]
    out = world.tmp / fault.name / command
    if command == "resolve":
        args = ["-vv", "resolve", *bounds, ref]
    elif command == "verify":
        args = ["verify", "--key", str(world.key), "--insecure-ignore-tlog", *bounds, ref]
    else:
        args = ["check", "-q", "--output-dir", str(out), "--trivy-report", str(world.report),
                "--key", str(world.key), "--insecure-ignore-tlog", *bounds, ref]
    env = {"DOCKER_CONFIG": str(world.docker_config), "DOCKER_AUTH_CONFIG": None,
           "REGISTRY_AUTH_FILE": None, "CI_REGISTRY": None, "CI_ENVIRONMENT_TIER": None,
           "CI_ENVIRONMENT_NAME": None, "NO_COLOR": "1"}
    start = time.monotonic()
    try:
        result = run_imggate(args, env=env)
    except Exception as e:  # anything escaping main() is a crash
        result = CliResult(-1, "", f"internal error: main() raised {e!r}")
    return result, time.monotonic() - start, out


# An exception Python printed and ignored (a registry lookup destroyed mid-request when
# the loop closed, its deadline reset outside its context) fails the row too.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(world: World, fault: Fault,
               record_property: Callable[[str, object], None]) -> None:
    commands = ("resolve", "verify", "check")
    runs = {c: _run(world, fault, c) for c in commands}
    row = matrix.Row(fault.name)
    problems = []
    forms = world.canary.forms()
    for command, (result, elapsed, out) in runs.items():
        row.counts["runs"] += 1
        text = (result.stdout + result.stderr).encode("utf-8", "surrogateescape")
        files = [out / name for name in REPORTS] if command == "check" else []
        blobs = [text] + [f.read_bytes() for f in files if f.exists()]

        def note(column: str, what: str, command: str = command) -> None:
            row.counts[column] += 1
            row.notes.append(f"{command}: {what}")
            problems.append(f"{command}: {what}")

        if result.code == 0 and 0 not in fault.expect[command]:
            note("false allows", "exit 0 with incomplete evidence")
        elif result.code not in fault.expect[command]:
            note("unexpected", f"exit {result.code}, expected {sorted(fault.expect[command])}: "
                               f"{result.stderr[-300:]!r}")
        if elapsed > fault.deadline + SLACK:
            note("hangs", f"took {elapsed:.1f} s (deadline {fault.deadline:g} s)")
        if "internal error" in result.output or (
                "Traceback" in result.output and command != "resolve"):
            note("crashes", result.output[-400:])
        leaked = [f for f in forms if any(f in b for b in blobs)]
        if leaked:
            note("leaks", f"{len(leaked)} canary form(s) in the output or reports")
        if any(c in result.output for c in ("\x1b", "\r", "\u202e")):
            note("injections", "a raw control character from the registry was printed")
        if command == "check":
            missing = [f.name for f in files if not f.exists()]
            if missing:
                note("unexpected", f"reports not written: {missing}")
    if world.registry.cross_host_auth:
        row.counts["leaks"] += 1
        problems.append("credentials were sent to another host after a redirect")
    # The row rides in this test's report to the summary (faults/matrix.py says why).
    record_property(matrix.PROPERTY, matrix.as_property(row))
    assert not problems, "\n".join(problems)

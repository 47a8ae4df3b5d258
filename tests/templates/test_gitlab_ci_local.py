"""The template and examples/gitlab/ run as GitLab runs them: under ``gitlab-ci-local``.

``gitlab-ci-local`` (npm, 4.60.0) evaluates a ``.gitlab-ci.yml`` with GitLab's semantics for
``rules``, ``needs``, ``extends``, ``include`` (``local``, and ``project`` from its include
cache), variable precedence and ``artifacts:reports:dotenv``, and runs the jobs with
``--force-shell-executor`` on this machine. Each project (the three examples and
``minimal.gitlab-ci.yml``, which includes the template with ``local:``) is a throwaway git
repository whose remote is never contacted (the examples' ``include: project:`` is served from
gitlab-ci-local's include cache); the registry is the loopback ``docker-registry`` with Basic
auth (the job's ``CI_REGISTRY_USER``/``PASSWORD``); ``imggate`` is this worktree's code. The
tools the jobs run in their own images (buildah, docker, kaniko, trivy, cosign, kubectl) are
the stand-ins of ``ci_standins``; the gate job is the template's, byte for byte.

Checked once by breaking the template: a rule on ``$CI_MERGE_REQUEST_IID`` fails the
merge-request test of every project, and ``IMGGATE_ARGS: ""`` in the job's ``variables:``
fails the default-branch test of each project that sets it at the top level.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml

from fixture_paths import FIXTURES
from harness_images import ImageSpec, LayoutBuilder
from imggate.evidence.signing_keys import parse_signing_key
from registry_harness import Registry, require_tool
from templates import ci_standins
from templates.gitlab_ci import ROOT, TEMPLATE, jobs, load

pytestmark = pytest.mark.registry  # the slow real-component run only

GCL_VERSION = "4.60.0"
# The projects' git remote: gitlab-ci-local derives CI_SERVER_* and the include cache's path
# from it; `.invalid` can never resolve, so nothing can leave the machine through it.
HOST = "gitlab.example.invalid"
PROJECTS = {
    "minimal": Path(__file__).parent / "minimal.gitlab-ci.yml",
    **{p.name.removesuffix(".gitlab-ci.yml"): p
       for p in sorted((ROOT / "examples" / "gitlab").glob("*.gitlab-ci.yml"))},
}
GATE = "image_gate"
# A job's `image:` or `services:` (a value on the line, or an indented block below it).
JOB_CONTAINERS = re.compile(r"^  (?:image|services):(?: .+\n|\n(?:    .*\n)+)", re.M)
REPORTS = ("gl-container-scanning-report.json", "imggate-junit.xml", "imggate-report.html",
           "imggate-verdict.json")
KEY_FILE = FIXTURES / "evidence" / "keys" / "cosign_generated_encrypted_empty_private.key"
TRIVY_REPORT = FIXTURES / "trivy" / "alpine-310.json"  # 4 Medium, all fixed: passes prod
SUMMARY = re.compile(r"^ (PASS|FAIL|WARN) {2}(\S+) *$", re.M)  # the closing job summary


@pytest.fixture(scope="module")
def gitlab_ci_local() -> str:
    """The ``gitlab-ci-local`` command, at the pinned version, with the ``rsync`` it needs."""
    require_tool("rsync", "by gitlab-ci-local to copy job files and artifacts")
    path = require_tool("gitlab-ci-local", f"to run pipelines (npm gitlab-ci-local@{GCL_VERSION})")
    version = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    assert version == GCL_VERSION, f"gitlab-ci-local {version}, the tests pin {GCL_VERSION}"
    return path


@pytest.fixture(scope="module")
def ci_image(harness_binaries: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image every build stand-in pushes, as ``oci:DIR:TAG`` (built with umoci)."""
    layout = LayoutBuilder(tmp_path_factory.mktemp("gitlab-ci-image") / "layout")
    layout.build(ImageSpec(tag="app", labels={"org.opencontainers.image.title": "ci-app"},
                           content=b"built by a gitlab-ci-local pipeline\n"))
    return f"oci:{layout.path}:app"


@dataclass(frozen=True)
class Signing:
    """The project's signing key: the private half for CI/CD variables, cosign.pub committed."""

    private: str
    public: bytes


@pytest.fixture(scope="module")
def signing() -> Signing:
    """A key ``cosign generate-key-pair`` wrote (empty password) and its public half."""
    text = KEY_FILE.read_bytes()
    return Signing(text.decode(), parse_signing_key(text, KEY_FILE.name, password=b"").public_pem)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.invalid",
                    "-c", "init.defaultBranch=main", *args], cwd=repo, check=True,
                   capture_output=True, timeout=60)


def make_project(root: Path, name: str, signing: Signing,
                 edit: Callable[[str], str] = lambda text: text) -> Path:
    """A git repository holding project ``name``'s pipeline (after ``edit``), on ``main``."""
    repo, state = root / name, root / f"{name}-runner"
    repo.mkdir(parents=True)
    ci_standins.install(state / "bin", state / "kaniko")
    # What the jobs' images were is the stand-ins' part here: the kaniko image's /kaniko is
    # the stand-in's directory; `services:` (docker-in-docker's daemon) and `image:` go, since
    # gitlab-ci-local would start services with a container engine even under
    # --force-shell-executor, and gives a job that names an image the container's
    # CI_PROJECT_DIR (/builds/…) instead of the directory its script runs in.
    text = PROJECTS[name].read_text().replace("/kaniko/", f"{state / 'kaniko'}/")
    text = edit(JOB_CONTAINERS.sub("", text))
    (repo / ".gitlab-ci.yml").write_text(text)
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    (repo / "cosign.pub").write_bytes(signing.public)
    (repo / ".gitignore").write_text("/.gitlab-ci-local/\n")
    for include in yaml.safe_load(text).get("include", []):
        if "local" in include:  # part of the project: committed
            target = repo / include["local"]
        else:  # another project's file: gitlab-ci-local's include cache, as if fetched
            assert include["project"] == "security/imggate", include
            target = (repo / ".gitlab-ci-local" / "includes" / HOST / include["project"]
                      / include["ref"] / include["file"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATE, target)  # byte for byte: the gate job is the template's
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "pipeline")
    _git(repo, "remote", "add", "origin", f"https://{HOST}/group/{name}.git")
    # The remote's default branch, as a clone records it (CI_DEFAULT_BRANCH).
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    _git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    return repo


@dataclass(frozen=True)
class Pipeline:
    """One ``gitlab-ci-local`` run: its exit code, output, and each job's outcome."""

    code: int
    output: str
    jobs: Mapping[str, str]
    repo: Path
    state: Path

    def failed(self, job: str) -> bool:
        """Whether ``job`` failed the pipeline (its exit code is not one it may fail with).

        The job's status, not gitlab-ci-local's exit status: 4.60.0 exits 0 when the failed
        job has any ``allow_failure``, even ``exit_codes: [3]`` and an exit code of 1.
        """
        return self.jobs.get(job) == "FAIL"

    def artifacts(self, job: str) -> Path:
        """Where gitlab-ci-local keeps the artifacts ``job`` uploaded."""
        return self.repo / ".gitlab-ci-local" / "artifacts" / job

    def dotenv(self, job: str, name: str) -> dict[str, str]:
        """The dotenv report ``name`` that ``job`` uploaded."""
        path = self.artifacts(job) / ".gitlab-ci-reports" / "dotenv" / name
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def run_pipeline(gcl: str, repo: Path, registry: Registry, image_repo: str, ci_image: str,
                 signing: Signing, *extra: str) -> Pipeline:
    """Run the repository's pipeline as a push to its current branch would."""
    state = repo.parent / f"{repo.name}-runner"
    bindir = state / "bin"
    (state / "docker-config").mkdir()
    (state / "home").mkdir()
    # `imggate` in the jobs is this worktree's code (imggate's image, under a shell executor).
    (bindir / "imggate").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m imggate "$@"\n')
    (bindir / "imggate").chmod(0o755)
    assert registry.username and registry.password
    env = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("CI_", "IMGGATE_", "GCL_", "COSIGN_", "TRIVY_", "DOCKER_",
                                "REGISTRY_AUTH"))},
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "HOME": str(state / "home"), "DOCKER_CONFIG": str(state / "docker-config"),
        "STANDIN_STATE": str(state), "STANDIN_LAYOUT": ci_image,
        "STANDIN_TRIVY_REPORT": str(TRIVY_REPORT),
        # Anything that tried the internet would meet a closed port; loopback goes direct.
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    variables = {  # what GitLab predefines for the project's registry, and the project's
        "CI_REGISTRY": registry.host,  # CI/CD variables (they win over any YAML variable)
        "CI_REGISTRY_IMAGE": f"{registry.host}/{image_repo}",
        "CI_REGISTRY_USER": registry.username, "CI_REGISTRY_PASSWORD": registry.password,
        "COSIGN_PRIVATE_KEY": signing.private, "COSIGN_PASSWORD": "",
    }
    args = [gcl, "--force-shell-executor", "--shell-isolation", "--no-color",
            *(f"--variable={k}={v}" for k, v in variables.items()), *extra]
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    return Pipeline(proc.returncode, output, dict((j, s) for s, j in SUMMARY.findall(output)),
                    repo, state)



@dataclass(frozen=True)
class Runner:
    """Runs the projects' pipelines against one registry; each run pushes to its own repository."""

    gcl: str
    registry: Registry
    image: str
    signing: Signing
    root: Path

    def project(self, name: str, scenario: str,
                edit: Callable[[str], str] = lambda text: text) -> Path:
        """Project ``name``'s repository for ``scenario`` (after ``edit``), on ``main``."""
        return make_project(self.root / scenario, name, self.signing, edit)

    def run(self, repo: Path, *extra: str) -> Pipeline:
        """The pipeline of a push to the repository's current branch."""
        return run_pipeline(self.gcl, repo, self.registry, f"group/{repo.parent.name}/{repo.name}",
                            self.image, self.signing, *extra)

    def listed(self, repo: Path, *variables: str) -> dict[str, str]:
        """Job name -> ``when`` after rules, for a pipeline with ``variables`` (none run)."""
        # Listing evaluates the rules only; the runs validate against the schema.
        args = [self.gcl, "--list-json", "--no-color", "--no-json-schema-validation",
                *variables]
        env = {**os.environ, "HOME": str(repo.parent), "NO_PROXY": "127.0.0.1,localhost",
               "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
        proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # gitlab-ci-local may print a warning line before the JSON.
        text = proc.stdout
        listed = json.loads(text if text.startswith("[") else text[text.index("\n[") + 1:])
        return {j["name"]: j["when"] for j in listed}


@pytest.fixture
def runner(gitlab_ci_local: str, basic_registry: Registry, ci_image: str, signing: Signing,
           tmp_path: Path) -> Runner:
    """Pipelines for this test, against the Basic-auth loopback registry."""
    return Runner(gitlab_ci_local, basic_registry, ci_image, signing, tmp_path)


def _latest_only(text: str) -> str:
    return text.replace("$CI_COMMIT_SHORT_SHA", "latest")


def _without_signing(text: str) -> str:
    doc = yaml.safe_load(text)
    del doc["sign"]
    doc[GATE]["needs"].remove("sign")
    return yaml.safe_dump(doc, sort_keys=False)


#: scenario -> (branch pushed to, edit of the project's pipeline)
SCENARIOS: dict[str, tuple[str | None, Callable[[str], str]]] = {
    "main": (None, lambda text: text),
    "feature": ("feature/login", lambda text: text),
    "latest": (None, _latest_only),
    "unsigned": (None, _without_signing),
}


@pytest.fixture(scope="module")
def pipelines(gitlab_ci_local: str, basic_registry: Registry, ci_image: str, signing: Signing,
              tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[dict[tuple[str, str], Future[Pipeline]]]:
    """Every project under every scenario, run side by side (each in its own repository and
    image repository); a test waits for the one it asserts on."""
    runner = Runner(gitlab_ci_local, basic_registry, ci_image, signing,
                    tmp_path_factory.mktemp("pipelines"))

    def one(name: str, scenario: str) -> Pipeline:
        branch, edit = SCENARIOS[scenario]
        repo = runner.project(name, scenario, edit)
        if branch:
            _git(repo, "checkout", "-q", "-b", branch)
        return runner.run(repo)

    # Submitted in the order the tests below wait for them.
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {(n, s): pool.submit(one, n, s) for s in SCENARIOS for n in PROJECTS}


def _gate_rules(p: Pipeline) -> dict[str, bool]:
    verdict = json.loads((p.artifacts(GATE) / "reports" / "imggate-verdict.json").read_text())
    return {r["rule"]: r["passed"] for r in verdict["images"][0]["rules"]}


def _jobs_of(name: str) -> set[str]:
    return set(jobs(load(PROJECTS[name])))


def _no_secrets(p: Pipeline, registry: Registry, signing: Signing) -> None:
    """The registry password and the signing key are in no log line and no artifact."""
    secrets_ = [registry.password or "", signing.private.splitlines()[1]]
    texts = [p.output] + [f.read_text(errors="replace")
                          for f in (p.repo / ".gitlab-ci-local" / "artifacts").rglob("*")
                          if f.is_file()]
    for secret in secrets_:
        assert secret and not any(secret in t for t in texts)


@pytest.mark.parametrize("name", PROJECTS)
def test_default_branch_pipeline_passes_end_to_end(
        pipelines: dict[tuple[str, str], Future[Pipeline]], basic_registry: Registry,
        signing: Signing, name: str) -> None:
    p = pipelines[name, "main"].result()
    assert p.code == 0, p.output
    assert p.jobs == dict.fromkeys(_jobs_of(name), "PASS"), p.output
    build = p.dotenv("build", "build.env")
    gate = p.dotenv(GATE, "imggate.env")
    # The gate judged what the build pushed, under prod, and allowed it.
    assert gate["IMGGATE_DIGEST"] == build["IMGGATE_DIGEST"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", build["IMGGATE_DIGEST"])
    assert (gate["IMGGATE_CHECKED_ENV"], gate["IMGGATE_VERDICT"], gate["IMGGATE_EXIT_CODE"]) \
        == ("prod", "allow", "0")
    assert gate["IMGGATE_PINNED"].endswith(f"/group/main/{name}@{build['IMGGATE_DIGEST']}")
    rules = _gate_rules(p)
    assert all(rules.values()) and {"signatures", "report-binding", "tags.denied"} <= set(rules)
    # Uploaded: the four reports (the two GitLab reads as reports among them) and the dotenv.
    reports = p.artifacts(GATE) / "reports"
    assert sorted(f.name for f in reports.iterdir()) == sorted(REPORTS)
    template = yaml.safe_load(TEMPLATE.read_text())[".imggate"]["artifacts"]["reports"]
    for kind in ("container_scanning", "junit"):
        assert (p.artifacts(GATE) / template[kind]).is_file(), kind
    schema = json.loads((FIXTURES / "schema" / "container-scanning-report-format.json")
                        .read_text())
    jsonschema.Draft7Validator(schema).validate(
        json.loads((reports / "gl-container-scanning-report.json").read_text()))
    _no_secrets(p, basic_registry, signing)
    if "deploy" in p.jobs:  # the deploy job set exactly the checked bytes
        deployed = (p.state / "deployed").read_text().split()
        assert deployed == ["deployment/app", f"app={gate['IMGGATE_PINNED']}"]


@pytest.mark.parametrize("name", PROJECTS)
def test_feature_branch_pipeline_runs_with_the_branch_environment(
        pipelines: dict[tuple[str, str], Future[Pipeline]], name: str) -> None:
    p = pipelines[name, "feature"].result()
    assert p.code == 0, p.output
    gate = p.dotenv(GATE, "imggate.env")
    # Not the default branch: the job's environment tier (docker-in-docker's gate prepares
    # "staging"), else the rules' default environment.
    expected = "staging" if name == "docker-in-docker" else "dev"
    assert (gate["IMGGATE_CHECKED_ENV"], gate["IMGGATE_VERDICT"]) == (expected, "allow")
    assert f"env: {expected}" in p.output


@pytest.mark.parametrize("name", PROJECTS)
def test_a_latest_only_image_fails_the_pipeline(
        pipelines: dict[tuple[str, str], Future[Pipeline]], name: str) -> None:
    p = pipelines[name, "latest"].result()
    assert p.failed(GATE), p.output
    gate = p.dotenv(GATE, "imggate.env")
    assert (gate["IMGGATE_VERDICT"], gate["IMGGATE_EXIT_CODE"]) == ("deny", "1")
    assert _gate_rules(p)["tags.denied"] is False
    assert sorted(f.name for f in (p.artifacts(GATE) / "reports").iterdir()) == sorted(REPORTS)
    assert "deploy" not in p.jobs or p.jobs["deploy"] != "PASS"


@pytest.mark.parametrize("name", PROJECTS)
def test_an_unsigned_image_fails_the_pipeline(
        pipelines: dict[tuple[str, str], Future[Pipeline]], name: str) -> None:
    p = pipelines[name, "unsigned"].result()
    assert p.failed(GATE), p.output
    gate = p.dotenv(GATE, "imggate.env")
    assert (gate["IMGGATE_VERDICT"], gate["IMGGATE_EXIT_CODE"]) == ("deny", "1")
    rules = _gate_rules(p)
    assert rules["signatures"] is False and rules["report-binding"] is True


@pytest.mark.parametrize("name", PROJECTS)
def test_no_second_pipeline_for_a_merge_request(runner: Runner, name: str) -> None:
    # A merge-request event: the gate is not created, so GitLab starts no second pipeline
    # beside the branch's (jobs without rules, like build, are branch/tag-only in GitLab;
    # gitlab-ci-local lists them regardless, so only the template's job is asserted). The
    # branch pipeline itself runs the gate: the default- and feature-branch tests.
    repo = runner.project(name, "events")
    mr = ["--unset-variable=CI_COMMIT_BRANCH", "--variable=CI_MERGE_REQUEST_IID=7",
          "--variable=CI_PIPELINE_SOURCE=merge_request_event"]
    assert runner.listed(repo, *mr)[GATE] == "never"


def test_the_gate_runs_for_release_tags_and_can_be_disabled(runner: Runner) -> None:
    repo = runner.project("minimal", "events")  # the rules are the template's in every project
    tag = ["--unset-variable=CI_COMMIT_BRANCH", "--variable=CI_COMMIT_TAG=v1.2.3"]
    assert runner.listed(repo, *tag)[GATE] == "on_success"
    assert runner.listed(repo)[GATE] == "on_success"
    for value in ("true", "1"):
        assert runner.listed(repo, f"--variable=IMGGATE_DISABLED={value}")[GATE] == "never"

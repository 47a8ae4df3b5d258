"""``templates/imggate.gitlab-ci.yml`` and ``examples/gitlab/``: valid, complete, and they run.

The template is checked three ways: against GitLab's own JSON schema; key by key for what
GitLab needs to show imggate's results (reports uploaded whatever the outcome, the digest
taken from the build job's dotenv report); and by running its script with the real imggate
on the bundled example image, as a runner would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from templates.gitlab_ci import ROOT, TEMPLATE, jobs, load, resolve_job, schema

EXAMPLES = sorted((ROOT / "examples" / "gitlab").glob("*.gitlab-ci.yml"))
MINIMAL = Path(__file__).parent / "minimal.gitlab-ci.yml"  # run by test_gitlab_ci_local
EXAMPLE_DIGEST = "sha256:f41e9a845abd009489a7f2ce16ff1294db80ee19b3cb805dfc7d45aad7bf64f5"


def _validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(schema()).validate(doc)


def _as_visible_job(doc: dict[str, Any]) -> dict[str, Any]:
    """The schema lets hidden keys (``.imggate``) hold anything: check the job as a real one."""
    return {**{k: v for k, v in doc.items() if k != ".imggate"}, "imggate": doc[".imggate"]}


def test_the_schema_check_can_fail() -> None:
    doc = yaml.safe_load(TEMPLATE.read_text())
    doc[".imggate"]["artifacts"]["when"] = "sometimes"
    _validate(doc)  # hidden, so unchecked by the schema...
    with pytest.raises(jsonschema.ValidationError):
        _validate(_as_visible_job(doc))  # ...which is why it is checked as a visible job


def test_the_template_is_valid_gitlab_ci() -> None:
    doc = yaml.safe_load(TEMPLATE.read_text())
    _validate(doc)
    _validate(_as_visible_job(doc))


def test_the_hidden_job_has_what_gitlab_needs() -> None:
    job = yaml.safe_load(TEMPLATE.read_text())[".imggate"]
    assert job["stage"] == "test"
    assert job["image"]["name"] == "$IMGGATE_IMAGE" and job["image"]["entrypoint"] == [""]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"  # a denial's reports are the ones people need
    assert artifacts["reports"]["container_scanning"] == "reports/gl-container-scanning-report.json"
    assert artifacts["reports"]["junit"] == "reports/imggate-junit.xml"
    assert artifacts["reports"]["dotenv"] == "imggate.env"
    assert "reports/" in artifacts["paths"]
    script = "\n".join(job["script"])
    # The pushed bytes; the pushed tag, when the build gives one, for the rules' tag patterns.
    assert '"$CI_REGISTRY_IMAGE${IMGGATE_TAG:+:$IMGGATE_TAG}@$IMGGATE_DIGEST"' in script
    assert "--dotenv imggate.env" in script and "--output-dir reports" in script
    assert "allow_failure" not in job  # failing the pipeline on a violation is the default
    # Settings are top-level defaults: a job-level value would override a project's
    # top-level `variables:` (GitLab's precedence), so the job has none.
    assert "variables" not in job
    top = yaml.safe_load(TEMPLATE.read_text())["variables"]
    assert {k: top[k] for k in ("IMGGATE_ENV", "IMGGATE_RULES", "IMGGATE_ARGS")} == \
        dict.fromkeys(("IMGGATE_ENV", "IMGGATE_RULES", "IMGGATE_ARGS"), "")
    # GitLab's Container-Scanning template's rules: branch pipelines, never merge requests.
    assert "CI_MERGE_REQUEST" not in yaml.safe_dump(job["rules"])
    assert {"if": "$CI_COMMIT_BRANCH"} in job["rules"]


@pytest.mark.parametrize("example", [*EXAMPLES, MINIMAL], ids=lambda p: p.name)
def test_each_example_resolves_to_valid_complete_jobs(example: Path) -> None:
    doc = load(example)
    _validate(doc)
    resolved = jobs(doc)
    for name, job in resolved.items():
        _validate({name: job})
        assert job.get("stage", "test") in doc["stages"], (name, job.get("stage"))
        assert job.get("script"), name
    template_script = resolve_job(load(TEMPLATE), ".imggate")["script"]
    gates = [n for n, j in resolved.items() if j["script"] == template_script]
    assert len(gates) == 1, gates
    gate = resolved[gates[0]]
    assert gate["artifacts"]["when"] == "always"
    # The digest comes from the build job named in needs:, as a dotenv report.
    builders = [resolved[n] for n in gate["needs"]]
    assert any(b.get("artifacts", {}).get("reports", {}).get("dotenv") == "build.env"
               and "IMGGATE_DIGEST=" in "\n".join(b["script"]) for b in builders)
    assert doc["stages"].index(builders[0]["stage"]) < doc["stages"].index(gate["stage"])


def test_examples_cover_docker_kaniko_and_buildah_digests() -> None:
    texts = {p.name: p.read_text() for p in EXAMPLES}
    assert "--metadata-file" in texts["docker-in-docker.gitlab-ci.yml"]
    assert "--digest-file" in texts["kaniko.gitlab-ci.yml"]
    assert "--digestfile" in texts["buildah.gitlab-ci.yml"]
    buildah = resolve_job(load(ROOT / "examples/gitlab/buildah.gitlab-ci.yml"), "image_gate")
    assert buildah["allow_failure"] == {"exit_codes": [3]}  # the documented opt-in


def test_extends_merges_hashes_and_the_job_wins() -> None:
    doc = load(ROOT / "examples/gitlab/kaniko.gitlab-ci.yml")
    gate = resolve_job(doc, "image_gate")
    assert gate["variables"]["IMGGATE_ARGS"] == ("--trivy-report trivy.json --key cosign.pub"
                                                 " --insecure-ignore-tlog")
    assert doc["variables"]["IMGGATE_ENV"] == ""  # the template's top-level default
    buildah = load(ROOT / "examples/gitlab/buildah.gitlab-ci.yml")
    assert buildah["variables"]["IMGGATE_ARGS"].startswith("--trivy-report")  # over the default
    assert gate["image"]["name"] == "$IMGGATE_IMAGE"
    with pytest.raises(AssertionError, match="no job or template"):
        resolve_job({"a": {"extends": ".missing", "script": ["x"]}}, "a")


def _run_script(tmp_path: Path, env: dict[str, str], args: str = "") -> tuple[int, dict[str, str]]:
    """Run the template's script in sh, as a runner would, with the real imggate on PATH."""
    job = resolve_job(load(TEMPLATE), ".imggate")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    imggate = bindir / "imggate"
    imggate.write_text(f'#!/bin/sh\nexec {sys.executable} -m imggate "$@"\n')
    imggate.chmod(0o755)
    (tmp_path / "reports").mkdir()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "IMGGATE_"))}
    full.update({k: str(v) for k, v in load(TEMPLATE)["variables"].items()})
    full.update({"PATH": f"{bindir}:{os.environ['PATH']}", "IMGGATE_ARGS": args, **env})
    script = "set -e\n" + "\n".join(job["script"])
    proc = subprocess.run(["sh", "-c", script], cwd=tmp_path, env=full, capture_output=True,
                          text=True, timeout=120)
    dotenv = tmp_path / "imggate.env"
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines()) \
        if dotenv.exists() else {}
    return proc.returncode, values


EXAMPLE_ARGS = (f"--trivy-report {ROOT}/examples/trivy-report.json --key {ROOT}/examples/cosign.pub"
                " --insecure-ignore-tlog")


def test_the_script_checks_the_digest_from_the_build_job(tmp_path: Path) -> None:
    code, values = _run_script(tmp_path, {
        "CI_REGISTRY_IMAGE": f"oci:{ROOT}/examples/app", "IMGGATE_DIGEST": EXAMPLE_DIGEST,
        "CI_COMMIT_BRANCH": "feature/x", "CI_DEFAULT_BRANCH": "main",
        "CI_ENVIRONMENT_TIER": "development"}, EXAMPLE_ARGS)
    assert values["IMGGATE_DIGEST"] == EXAMPLE_DIGEST
    assert values["IMGGATE_EXIT_CODE"] == str(code)
    assert values["IMGGATE_VERDICT"] == {0: "allow", 1: "deny", 3: "error"}[code]
    for report in ("gl-container-scanning-report.json", "imggate-junit.xml",
                   "imggate-report.html", "imggate-verdict.json"):
        assert (tmp_path / "reports" / report).is_file(), report


@pytest.mark.parametrize(("env", "expected"), [
    ({"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}, "prod"),
    ({"CI_COMMIT_TAG": "v1.2.3", "CI_DEFAULT_BRANCH": "main"}, "prod"),
    ({"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", "IMGGATE_ENV": "dev"}, "dev"),
])
def test_the_environment_follows_the_pipeline(tmp_path: Path, env: dict[str, str],
                                              expected: str) -> None:
    code, values = _run_script(tmp_path, {
        "CI_REGISTRY_IMAGE": f"oci:{ROOT}/examples/app", "IMGGATE_DIGEST": EXAMPLE_DIGEST,
        **env}, EXAMPLE_ARGS)
    assert values["IMGGATE_CHECKED_ENV"] == expected
    assert values["IMGGATE_EXIT_CODE"] == str(code)


def test_no_digest_from_the_build_job_stops_the_job_with_the_reason(tmp_path: Path) -> None:
    job = resolve_job(load(TEMPLATE), ".imggate")
    proc = subprocess.run(["sh", "-c", "set -e\n" + "\n".join(job["script"])], cwd=tmp_path,
                          env={"PATH": os.environ["PATH"]}, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert re.search(r"IMGGATE_DIGEST is not set: the build job must publish", proc.stderr)

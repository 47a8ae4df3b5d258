"""``imggate check -f``: manifests gated namespace by namespace against a real registry."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from fixture_paths import FIXTURES
from harness_images import PushedImage
from registry_harness import run_imggate

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

GITLAB_SCHEMA = json.loads((FIXTURES / "schema" / "container-scanning-report-format.json")
                           .read_text())
VERDICT_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "src" / "imggate" / "data"
                             / "verdict.schema.json").read_text())

RULES = textwrap.dedent("""\
    version: 1
    default_env: dev
    environments:
      dev: {}
      prod:
        tags: {require_digest: true}
    namespaces:
      map:
        - {match: "*-prod", env: prod}
        - {match: "*-dev", env: dev}
      exempt: [kube-system]
      exempt_images: ["registry.k8s.io/*"]
    """)


def pod(namespace: str, name: str, image: str) -> str:
    return textwrap.dedent(f"""\
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          containers:
            - name: main
              image: "{image}"
        """)


def deployment(namespace: str, image: str, init: str) -> str:
    return textwrap.dedent(f"""\
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: {namespace}
        spec:
          template:
            spec:
              initContainers:
                - name: init
                  image: "{init}"
              containers:
                - name: web
                  image: "{image}"
        """)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    return tmp_path


def check(workdir: Path, *args: str, stdin: str = "", env: dict[str, str | None] | None = None,
          subprocess_mode: bool = False) -> tuple[int, str, str, dict[str, object]]:
    out = workdir / "reports"
    res = run_imggate(["check", "--rules", str(workdir / "rules.yaml"), "-o", str(out), *args],
                      stdin=stdin, env=env or {}, subprocess_mode=subprocess_mode)
    verdict_path = out / "imggate-verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
    return res.code, res.stdout, res.stderr, verdict


def test_each_namespace_under_its_environment(workdir: Path, anon_image: PushedImage) -> None:
    manifest = workdir / "deploy.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\n"
        + deployment("shop-dev", anon_image.ref, anon_image.pinned)
        + deployment("shop-prod", anon_image.ref, anon_image.pinned)
        # Exempt: never resolved (this registry does not exist).
        + pod("kube-system", "proxy", "unreachable.invalid/kube-proxy:1")
        + pod("shop-dev", "pause", "registry.k8s.io/pause:3.9")
        + pod("elsewhere", "x", anon_image.pinned))
    code, out, err, verdict = check(workdir, "-f", str(manifest))
    lines = out.splitlines()
    f = str(manifest)
    assert f"{f}:19 Deployment shop-dev/web initContainer init: {anon_image.pinned} -> dev " \
           f"(namespaces.map[1] '*-dev'): allow" in lines
    assert f"{f}:22 Deployment shop-dev/web container web: {anon_image.ref} -> dev " \
           f"(namespaces.map[1] '*-dev'): allow" in lines
    assert f"{f}:37 Deployment shop-prod/web container web: {anon_image.ref} -> prod " \
           f"(namespaces.map[0] '*-prod'): deny" in lines
    assert f"{f}:34 Deployment shop-prod/web initContainer init: {anon_image.pinned} -> prod " \
           f"(namespaces.map[0] '*-prod'): allow" in lines
    assert any(line.startswith(f"{f}:45 Pod kube-system/proxy container main: "
                               "unreachable.invalid/kube-proxy:1 -> (exempt)") for line in lines)
    assert f"{f}:53 Pod shop-dev/pause container main: registry.k8s.io/pause:3.9 -> (exempt) " \
           "(namespaces.exempt_images): allow" in lines
    assert any(line.startswith(f"{f}:61 Pod elsewhere/x container main: ")
               and line.endswith("-> (unmapped) (matches no namespaces.map entry, environment "
                                 f"name or alias in {workdir / 'rules.yaml'}, and default_env "
                                 "'dev' is never used for a namespace: add it to namespaces.map, "
                                 "or run serve with --env): deny") for line in lines)
    assert f"{f}: not gated (no pod spec imggate reads): 1 Rollout, 1 Service" in lines
    assert code == 1, err
    by = {(i["reference"], i["env"]): i["decision"] for i in verdict["images"]}  # type: ignore[index]
    assert by == {
        (anon_image.pinned, "dev"): "allow", (anon_image.ref, "dev"): "allow",
        (anon_image.pinned, "prod"): "allow", (anon_image.ref, "prod"): "deny",
        ("unreachable.invalid/kube-proxy:1", "(exempt)"): "allow",
        ("registry.k8s.io/pause:3.9", "(exempt)"): "allow",
        (anon_image.pinned, "(unmapped)"): "deny",
    }
    # The combined verdict says which rules it applied, as check does, and why each
    # namespace got its environment.
    jsonschema.validate(verdict, VERDICT_SCHEMA)
    policy = verdict["policy"]
    assert isinstance(policy, dict)
    rules = workdir / "rules.yaml"
    assert policy["rules_source"] == str(rules)
    assert policy["rules_sha256"] == hashlib.sha256(rules.read_bytes()).hexdigest()
    assert policy["rules_found_by"] == "--rules"
    assert policy["env"] == "dev, prod, (exempt), (unmapped)"
    assert policy["env_origin"] == "namespaces"
    assert policy["env_reason"].split("; ") == [
        "namespace 'shop-dev' -> environment 'dev' (namespaces.map[1] '*-dev')",
        "namespace 'shop-prod' -> environment 'prod' (namespaces.map[0] '*-prod')",
        "namespace 'kube-system' is exempt (namespaces.exempt 'kube-system')",
        "registry.k8s.io/pause:3.9 is exempt (namespaces.exempt_images 'registry.k8s.io/*')",
        "namespace 'elsewhere' maps to no environment (matches no namespaces.map entry, "
        f"environment name or alias in {rules}, and default_env 'dev' is never used for a "
        "namespace: add it to namespaces.map, or run serve with --env)",
    ]


def test_explicit_env_overrides_and_ci_env_is_the_default(workdir: Path,
                                                          anon_image: PushedImage) -> None:
    text = deployment("shop-prod", anon_image.ref, anon_image.pinned) + pod(
        "elsewhere", "x", anon_image.ref)
    manifest = workdir / "m.yaml"
    manifest.write_text(text)
    code, out, err, verdict = check(workdir, "-f", str(manifest), "--env", "dev")
    assert code == 0, out + err
    assert all("-> dev (--env dev): allow" in line for line in out.splitlines()[:3])
    policy = verdict["policy"]
    assert isinstance(policy, dict)
    assert (policy["env"], policy["env_origin"]) == ("dev", "--env")
    # A deploy job's environment is the default for namespaces nothing maps; mapped ones keep
    # their own.
    code, out, err, _ = check(workdir, "-f", str(manifest), env={"CI_ENVIRONMENT_NAME": "dev"})
    assert code == 1
    assert "Pod elsewhere/x container main: " + anon_image.ref + \
        " -> dev (default from CI_ENVIRONMENT_NAME=dev): allow" in out
    assert f"{anon_image.ref} -> prod (namespaces.map[0] '*-prod'): deny" in out


def test_every_image_exempt_is_an_allow_and_a_successful_scan(workdir: Path) -> None:
    # Nothing is resolved (neither registry exists here): exemption is decided from the
    # manifest alone, and the GitLab report says the scan succeeded, as for any allow.
    manifest = workdir / "system.yaml"
    manifest.write_text(pod("kube-system", "proxy", "unreachable.invalid/kube-proxy:1")
                        + pod("shop-dev", "pause", "registry.k8s.io/pause:3.9"))
    code, out, err, verdict = check(workdir, "-f", str(manifest))
    assert code == 0, out + err
    assert verdict["decision"] == "allow"
    assert {i["decision"] for i in verdict["images"]} == {"allow"}  # type: ignore[union-attr]
    policy = verdict["policy"]
    assert isinstance(policy, dict)
    assert (policy["env"], policy["env_origin"]) == ("(exempt)", "namespaces")
    gitlab = json.loads((workdir / "reports" / "gl-container-scanning-report.json").read_text())
    jsonschema.validate(gitlab, GITLAB_SCHEMA)
    assert gitlab["scan"]["status"] == "success"
    assert gitlab["vulnerabilities"] == []


def test_stdin_and_namespace_flag(workdir: Path, anon_image: PushedImage) -> None:
    # helm template output names no namespace: -n gives it, as kubectl apply -n would.
    helm = "# Source: app/templates/pod.yaml\n" + textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: app}}
        spec:
          containers: [{{name: app, image: "{anon_image.pinned}"}}]
        """)
    code, out, err, _ = check(workdir, "-f", "-", "-n", "team-prod", stdin=helm,
                              subprocess_mode=True)
    assert code == 0, out + err
    assert (f"<stdin>:6 Pod team-prod/app container app (app/templates/pod.yaml): "
            f"{anon_image.pinned} -> prod (namespaces.map[0] '*-prod'): allow") in out


@pytest.mark.parametrize(("args", "says"), [
    ([], "give image references to check, or -f FILE"),
    (["x:1", "-f", "m.yaml"], "not both"),
    (["x:1", "-n", "ns"], "--namespace only applies to -f"),
])
def test_usage(workdir: Path, args: list[str], says: str) -> None:
    (workdir / "m.yaml").write_text(pod("a-dev", "p", "x:1"))
    res = run_imggate(["check", "--rules", str(workdir / "rules.yaml"), *args])
    assert res.code == 2
    assert says in res.stderr


def test_bad_manifests_are_exit_2_at_file_line(workdir: Path) -> None:
    bad = workdir / "bad.yaml"
    bad.write_text(pod("a-dev", "p", "UPPER/Case:1"))
    res = run_imggate(["check", "--rules", str(workdir / "rules.yaml"), "-f", str(bad)])
    assert res.code == 2
    assert f"{bad}:8: " in res.stderr
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    res = run_imggate(["check", "--rules", str(workdir / "rules.yaml"), "-f", str(bad)])
    assert res.code == 2
    assert f"no container images in {bad} (only ConfigMap)" in res.stderr
    bad.write_text("apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a, image: 3}]}\n")
    res = run_imggate(["check", "--rules", str(workdir / "rules.yaml"), "-f", str(bad)])
    assert res.code == 2
    assert f"{bad}:3: /spec/containers/0/image: must be a string, not a number" in res.stderr
    assert "Traceback" not in res.stderr

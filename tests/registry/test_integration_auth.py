"""``imggate resolve`` against registries that need credentials.

Basic: Distribution's htpasswd (bcrypt) auth. Token: Distribution's token
auth, validating JWTs from ``harness_token.TokenServer`` (the way GitLab's
registry works). Credentials come from every source users have; wrong ones
are exit 3, and no secret ever shows up in any output, even with ``-v``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness_credentials import write_credential_helper, write_docker_config
from harness_images import APP_SPEC, ImageSpec, LayoutBuilder, PushedImage, Skopeo
from harness_token import TokenServer
from registry_harness import CliResult, Registry, run_imggate

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


def resolve(*args: str, verbose: bool = False, **kwargs: Any) -> CliResult:
    return run_imggate([*(["-v"] if verbose else []), "resolve", *args], **kwargs)


def with_stdin_password(image: PushedImage, password: str | None = None,
                        *extra: str, **kwargs: Any) -> CliResult:
    reg = image.registry
    assert reg.username
    secret = reg.password if password is None else password
    return resolve("--username", reg.username, "--password-stdin", *extra, image.ref,
                   stdin=f"{secret}\n", **kwargs)


def assert_no_secret(result: CliResult, registry: Registry, password: str) -> None:
    assert registry.username
    assert password not in result.output
    basic = base64.b64encode(f"{registry.username}:{password}".encode()).decode()
    assert basic not in result.output
    assert not JWT.search(result.output), "a bearer token leaked into the output"


def token_requests_since(registry: Registry, start: int) -> list[tuple[str | None, tuple[str, ...]]]:
    assert registry.token_server is not None
    return registry.token_server.requests[start:]


# --------------------------------------------------------------------------- Basic (htpasswd)


def test_basic_without_credentials_is_exit_3(basic_image: PushedImage) -> None:
    result = resolve(basic_image.ref)
    assert result.code == 3
    assert result.stdout == ""
    assert basic_image.registry.host in result.stderr
    assert "401" in result.stderr or "auth" in result.stderr.lower()


def test_basic_with_password_stdin(skopeo: Skopeo, basic_image: PushedImage) -> None:
    result = with_stdin_password(basic_image)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{basic_image.pinned}\n"
    assert basic_image.digest == skopeo.digest(basic_image.ref, basic_image.registry)


@pytest.mark.parametrize("split", [False, True], ids=["auth-field", "username-password"])
def test_basic_from_docker_config(isolated_auth_env: Path, basic_image: PushedImage,
                                  split: bool) -> None:
    reg = basic_image.registry
    assert reg.username and reg.password
    write_docker_config(isolated_auth_env, reg.host, reg.username, reg.password, split=split)
    result = resolve("--json", basic_image.ref)
    assert result.code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert doc["digest"] == basic_image.digest
    assert doc["config"]["layers"] == 1


def test_basic_from_registry_auth_file(tmp_path: Path, basic_image: PushedImage) -> None:
    reg = basic_image.registry
    assert reg.username and reg.password
    auth_file = write_docker_config(tmp_path, reg.host, reg.username, reg.password)
    result = resolve(basic_image.ref, env={"REGISTRY_AUTH_FILE": str(auth_file)})
    assert result.code == 0, result.stderr
    assert result.stdout == f"{basic_image.pinned}\n"


def test_basic_from_docker_auth_config_variable(tmp_path: Path, basic_image: PushedImage) -> None:
    reg = basic_image.registry
    assert reg.username and reg.password
    content = write_docker_config(tmp_path, reg.host, reg.username, reg.password).read_text()
    result = resolve(basic_image.ref, env={"DOCKER_AUTH_CONFIG": content})
    assert result.code == 0, result.stderr


def test_basic_from_gitlab_ci_variables(basic_image: PushedImage) -> None:
    reg = basic_image.registry
    assert reg.username and reg.password
    result = resolve(basic_image.ref, env={"CI_REGISTRY": reg.host,
                                           "CI_REGISTRY_USER": reg.username,
                                           "CI_REGISTRY_PASSWORD": reg.password})
    assert result.code == 0, result.stderr


def test_gitlab_ci_credentials_stay_with_their_registry(basic_image: PushedImage) -> None:
    """CI_REGISTRY_* for another host must not be offered to this one."""
    reg = basic_image.registry
    assert reg.username and reg.password
    result = resolve(basic_image.ref, env={"CI_REGISTRY": "registry.gitlab.example.com",
                                           "CI_REGISTRY_USER": reg.username,
                                           "CI_REGISTRY_PASSWORD": reg.password})
    assert result.code == 3


def test_basic_wrong_password_is_exit_3_and_never_printed(basic_image: PushedImage) -> None:
    wrong = "Wr0ng-pa55word-do-not-print"
    result = with_stdin_password(basic_image, wrong, verbose=True, subprocess_mode=True)
    assert result.code == 3
    assert result.stdout == ""
    assert basic_image.registry.host in result.stderr
    assert_no_secret(result, basic_image.registry, wrong)


def test_basic_success_with_verbose_logs_leaks_nothing(basic_image: PushedImage) -> None:
    reg = basic_image.registry
    assert reg.password
    result = with_stdin_password(basic_image, None, verbose=True, subprocess_mode=True)
    assert result.code == 0, result.stderr
    assert_no_secret(result, reg, reg.password)


def test_basic_wrong_docker_config_password_is_exit_3(isolated_auth_env: Path,
                                                      basic_image: PushedImage) -> None:
    reg = basic_image.registry
    assert reg.username
    wrong = "config-json-wrong-password"
    write_docker_config(isolated_auth_env, reg.host, reg.username, wrong)
    result = resolve(basic_image.ref)
    assert result.code == 3
    assert_no_secret(result, reg, wrong)


# --------------------------------------------------------------------------- token auth


def test_token_with_password_stdin(skopeo: Skopeo, token_image: PushedImage) -> None:
    reg = token_image.registry
    start = len(reg.token_server.requests) if reg.token_server else 0
    result = with_stdin_password(token_image)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{token_image.pinned}\n"
    asked = token_requests_since(reg, start)
    assert token_image.digest == skopeo.digest(token_image.ref, reg)
    # Pull scope for the repository, asked as the user; the token is reused for the
    # config blob rather than fetched again per request.
    assert asked, "imggate never asked the token server"
    assert all(user == reg.username for user, _ in asked)
    assert any(f"repository:{token_image.repository}:pull" in scopes for _, scopes in asked)
    assert len(asked) == 1, f"expected one cached token for one scope, got {asked}"


def test_token_json_multiarch_with_platform(token_multiarch: PushedImage) -> None:
    result = with_stdin_password(token_multiarch, None, "--json", "--platform", "linux/arm64")
    assert result.code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert doc["digest"] == token_multiarch.digest
    children = {p["platform"]: p["digest"] for p in doc["platforms"]}
    assert set(children) == {"linux/amd64", "linux/arm64"}
    assert doc["manifestDigest"] == children["linux/arm64"]
    assert doc["config"]["architecture"] == "arm64"


def test_token_from_docker_config(isolated_auth_env: Path, token_image: PushedImage) -> None:
    reg = token_image.registry
    assert reg.username and reg.password
    write_docker_config(isolated_auth_env, reg.host, reg.username, reg.password)
    result = resolve(token_image.ref)
    assert result.code == 0, result.stderr
    assert result.stdout == f"{token_image.pinned}\n"


def test_token_two_repositories_in_one_run(token_image: PushedImage,
                                           token_multiarch: PushedImage) -> None:
    reg = token_image.registry
    assert reg.username
    result = resolve("--username", reg.username, "--password-stdin", token_image.ref,
                     token_multiarch.ref, stdin=f"{reg.password}\n")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [token_image.pinned, token_multiarch.pinned]


def test_token_anonymous_is_refused_with_exit_3(token_image: PushedImage) -> None:
    result = resolve(token_image.ref)
    assert result.code == 3
    assert result.stdout == ""
    assert token_image.registry.host in result.stderr


def test_token_wrong_password_is_exit_3_and_never_printed(token_image: PushedImage) -> None:
    wrong = "t0ken-realm-wrong-password"
    result = with_stdin_password(token_image, wrong, verbose=True, subprocess_mode=True)
    assert result.code == 3
    assert result.stdout == ""
    assert token_image.registry.host in result.stderr
    assert_no_secret(result, token_image.registry, wrong)


def test_token_success_with_verbose_logs_leaks_nothing(token_image: PushedImage) -> None:
    reg = token_image.registry
    assert reg.password
    result = with_stdin_password(token_image, None, verbose=True, subprocess_mode=True)
    assert result.code == 0, result.stderr
    assert_no_secret(result, reg, reg.password)


def test_password_stdin_needs_username(basic_image: PushedImage) -> None:
    result = resolve("--password-stdin", basic_image.ref, stdin="x\n")
    assert result.code == 2


def test_empty_password_stdin_is_usage_error(basic_image: PushedImage) -> None:
    reg = basic_image.registry
    assert reg.username
    result = resolve("--username", reg.username, "--password-stdin", basic_image.ref, stdin="")
    assert result.code == 2


# --------------------------------------------------------------------------- credential helpers


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_credentials_from_a_helper_program(isolated_auth_env: Path, tmp_path: Path,
                                           token_image: PushedImage, key: str) -> None:
    reg = token_image.registry
    assert reg.username and reg.password
    bin_dir = write_credential_helper(tmp_path / "bin", "imggate-standin",
                                      {reg.host: (reg.username, reg.password)})
    config = ({"credHelpers": {reg.host: "imggate-standin"}} if key == "credHelpers"
              else {"credsStore": "imggate-standin"})
    (isolated_auth_env / "config.json").write_text(json.dumps(config))
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    result = resolve(token_image.ref, env={"PATH": path})
    assert result.code == 0, result.stderr
    assert result.stdout == f"{token_image.pinned}\n"


def test_helper_without_entry_means_anonymous(isolated_auth_env: Path, tmp_path: Path,
                                              token_image: PushedImage) -> None:
    bin_dir = write_credential_helper(tmp_path / "bin", "imggate-standin", {})
    (isolated_auth_env / "config.json").write_text(json.dumps({"credsStore": "imggate-standin"}))
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    result = resolve(token_image.ref, env={"PATH": path})
    assert result.code == 3  # anonymous is refused by this registry
    assert token_image.registry.host in result.stderr


# --------------------------------------------------------------------------- config files


@pytest.mark.parametrize("form", ["{host}", "http://{host}", "https://{host}/v2/"])
def test_docker_config_key_forms(isolated_auth_env: Path, basic_image: PushedImage,
                                 form: str) -> None:
    """docker writes ``auths`` keys as host, URL or legacy ``/v1/``-style URL; all match."""
    reg = basic_image.registry
    assert reg.username and reg.password
    write_docker_config(isolated_auth_env, form.format(host=reg.host), reg.username,
                        reg.password)
    result = resolve(basic_image.ref)
    assert result.code == 0, result.stderr


def test_credentials_for_another_host_are_not_used(isolated_auth_env: Path,
                                                   basic_image: PushedImage) -> None:
    reg = basic_image.registry
    assert reg.username and reg.password
    write_docker_config(isolated_auth_env, "registry.example.com", reg.username, reg.password)
    assert resolve(basic_image.ref).code == 3


def test_malformed_docker_config_is_a_config_error(isolated_auth_env: Path,
                                                   basic_image: PushedImage) -> None:
    config = isolated_auth_env / "config.json"
    config.write_text('{"auths": {')
    result = resolve(basic_image.ref)
    assert result.code == 2
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr


def test_undecodable_auth_field_is_not_echoed(isolated_auth_env: Path,
                                              basic_image: PushedImage) -> None:
    secretish = "c2VjcmV0LXdpdGhvdXQtY29sb24-not!base64"
    (isolated_auth_env / "config.json").write_text(
        json.dumps({"auths": {basic_image.registry.host: {"auth": secretish}}}))
    result = resolve(basic_image.ref)
    assert result.code == 2
    assert secretish not in result.output
    assert "config.json" in result.stderr


# --------------------------------------------------------------------------- many images at once


@pytest.fixture(scope="module")
def token_many(skopeo: Skopeo, harness_dir: Path, image_layout: LayoutBuilder,
               token_registry: Registry) -> list[PushedImage]:
    """Eight distinct images under one repository and four more in their own repositories."""
    pushed = []
    for i in range(8):
        tag = f"many-{i}"
        image_layout.configure(APP_SPEC.tag, ImageSpec(tag=tag, labels={"i": str(i)}),
                               new_tag=tag)
        digest = skopeo.push(image_layout.path, tag, token_registry, "group/many", tag)
        pushed.append(PushedImage(token_registry, "group/many", tag, digest))
    for i in range(4):
        digest = skopeo.push(image_layout.path, APP_SPEC.tag, token_registry,
                             f"group/solo-{i}", "v1")
        pushed.append(PushedImage(token_registry, f"group/solo-{i}", "v1", digest))
    return pushed


def test_token_many_images_concurrently(token_many: list[PushedImage]) -> None:
    reg = token_many[0].registry
    assert reg.username
    start = len(reg.token_server.requests) if reg.token_server else 0
    result = resolve("--username", reg.username, "--password-stdin",
                     *(i.ref for i in token_many), stdin=f"{reg.password}\n")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [i.pinned for i in token_many]
    assert len({i.digest for i in token_many[:8]}) == 8
    asked = Counter(s for _, scopes in token_requests_since(reg, start) for s in scopes)
    assert set(asked) == {f"repository:{r}:pull" for r in {i.repository for i in token_many}}
    # Tokens are cached per scope: concurrent requests for one repository share one token.
    assert max(asked.values()) == 1, f"token requests per scope: {dict(asked)}"


# --------------------------------------------------------------------------- token server variants


@pytest.fixture
def token_server(token_registry: Registry) -> Iterator[TokenServer]:
    """The session token server, with ``denied``/``token_fields`` restored afterwards."""
    server = token_registry.token_server
    assert server is not None
    denied, fields = set(server.denied), server.token_fields
    yield server
    server.denied, server.token_fields = denied, fields


def test_oauth2_style_access_token_field(token_server: TokenServer,
                                         token_image: PushedImage) -> None:
    token_server.token_fields = ("access_token",)
    result = with_stdin_password(token_image)
    assert result.code == 0, result.stderr


def test_token_response_without_token_is_exit_3(token_server: TokenServer,
                                                token_image: PushedImage) -> None:
    token_server.token_fields = ()
    result = with_stdin_password(token_image)
    assert result.code == 3
    assert result.stdout == ""
    assert token_image.registry.host in result.stderr


def test_valid_user_without_access_is_exit_3(token_server: TokenServer,
                                            token_image: PushedImage) -> None:
    """GitLab: right password, but not a member of the project: the registry says 401."""
    token_server.denied.add(token_image.repository)
    result = with_stdin_password(token_image)
    assert result.code == 3
    assert result.stdout == ""
    assert token_image.repository in result.stderr
    assert_no_secret(result, token_image.registry, token_image.registry.password or "")

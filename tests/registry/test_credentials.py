"""Credentials come from docker's and GitLab's places, in docker's precedence."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from imggate.errors import ConfigError
from imggate.registry.credentials import Credentials, CredentialStore, normalise_host


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_host_normalisation() -> None:
    assert normalise_host("https://index.docker.io/v1/") == "docker.io"
    assert normalise_host("http://Reg.Example.com:5000/x") == "reg.example.com:5000"


def test_credentials_never_print_their_secret() -> None:
    creds = Credentials("robot", "never-printed-1", origin="a test")
    for shown in (repr(creds), str(creds), repr([creds])):
        assert "never-printed-1" not in shown
        assert "robot" in shown
    assert creds == Credentials("robot", "never-printed-1", origin="a test")


def test_docker_config_auths_auth_and_username_password(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": b64("hub:pw1")},
        "reg.example.com": {"username": "u2", "password": "pw2"},
    }}))
    store = CredentialStore(environ={"DOCKER_CONFIG": str(tmp_path)})
    hub = store.get("docker.io")
    assert hub is not None and (hub.username, hub.secret) == ("hub", "pw1")
    other = store.get("reg.example.com")
    assert other is not None and (other.username, other.secret) == ("u2", "pw2")
    assert store.get("ghcr.io") is None


def test_gitlab_docker_auth_config_beats_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {"reg.example.com": {"auth": b64("file:pw")}}}))
    env = {"DOCKER_CONFIG": str(tmp_path),
           "DOCKER_AUTH_CONFIG": json.dumps({"auths": {"reg.example.com": {"auth": b64("var:pw")}}})}
    c = CredentialStore(environ=env).get("reg.example.com")
    assert c is not None and c.username == "var"


def test_registry_auth_file_and_ci_variables(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {"quay.io": {"auth": b64("podman:pw")}}}))
    env = {"REGISTRY_AUTH_FILE": str(auth), "CI_REGISTRY": "registry.gitlab.example",
           "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "job-token"}
    store = CredentialStore(environ=env)
    q = store.get("quay.io")
    assert q is not None and q.username == "podman"
    ci = store.get("registry.gitlab.example")
    assert ci is not None and (ci.username, ci.secret) == ("gitlab-ci-token", "job-token")


def test_explicit_credentials_only_for_named_hosts() -> None:
    cred = Credentials("me", "pw", False, "flags")
    store = CredentialStore(explicit=cred, explicit_hosts=frozenset({"reg.example.com"}),
                            environ={})
    assert store.get("reg.example.com") is cred
    assert store.get("evil.example.com") is None


def test_credential_helper_program(tmp_path: Path) -> None:
    helper = tmp_path / "docker-credential-standin"
    helper.write_text('#!/bin/sh\nread host\n[ "$host" = "reg.example.com" ] && '
                      'echo \'{"Username":"helper-user","Secret":"helper-secret"}\' && exit 0\n'
                      'echo "credentials not found in native keychain"; exit 1\n')
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "standin"}))
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    old = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        store = CredentialStore(environ=env)
        c = store.get("reg.example.com")
        assert c is not None and (c.username, c.secret) == ("helper-user", "helper-secret")
        assert store.get("other.example.com") is None
    finally:
        os.environ["PATH"] = old


@pytest.mark.parametrize("doc", ['{"auths": []}', '{"auths": {"h": {"auth": "!!"}}}', "[1]", "{"])
def test_broken_config_is_a_config_error_without_secrets(tmp_path: Path, doc: str) -> None:
    (tmp_path / "config.json").write_text(doc)
    with pytest.raises(ConfigError) as e:
        CredentialStore(environ={"DOCKER_CONFIG": str(tmp_path)}).get("h")
    assert "config.json" in str(e.value)


@pytest.mark.parametrize("auth", ["dXNlcjpw\u00e4ss", "\u2603\u2603\u2603\u2603", "dXNlcjp\udc80"])
def test_non_ascii_auth_is_a_config_error_naming_the_entry(auth: str) -> None:
    doc = json.dumps({"auths": {"reg.example.com": {"auth": auth}}})
    store = CredentialStore(environ={"DOCKER_AUTH_CONFIG": doc})
    with pytest.raises(ConfigError, match=r"auths\['reg.example.com'\]: 'auth' is not base64"):
        store.get("reg.example.com")


def test_non_ascii_credentials_are_kept_and_never_shown() -> None:
    from imggate.redact import SECRETS, redact

    try:
        pair = base64.b64encode("j\u00fcrgen:p\u00e4ssw\u00f6rd-1".encode()).decode()
        doc = json.dumps({"auths": {"reg.example.com": {"auth": pair}}})
        found = CredentialStore(environ={"DOCKER_AUTH_CONFIG": doc}).get("reg.example.com")
        assert found is not None and found.secret == "p\u00e4ssw\u00f6rd-1"
        assert "p\u00e4ssw\u00f6rd-1" not in redact(f"echo p\u00e4ssw\u00f6rd-1 {pair}")
        assert pair not in redact(pair)
    finally:
        SECRETS.clear()

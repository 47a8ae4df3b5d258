"""Image references are normalised the way docker does, and bad ones name the bad part."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imggate.errors import InvalidReference
from imggate.models import Digest
from imggate.registry.reference import parse_reference

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app:v1", "localhost:5000", "app", "v1", None),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", None, None),
        ("[::1]:5000/app", "[::1]:5000", "app", None, None),
        ("Registry.Example.COM/app", "registry.example.com", "app", None, None),
        (f"ghcr.io/org/app@sha256:{HEX}", "ghcr.io", "org/app", None, f"sha256:{HEX}"),
        (f"ghcr.io/org/app:1.0@sha256:{HEX}", "ghcr.io", "org/app", "1.0", f"sha256:{HEX}"),
        ("registry.gitlab.com/grp/sub/proj/img:main-1a2b3c", "registry.gitlab.com",
         "grp/sub/proj/img", "main-1a2b3c", None),
        ("a__b/c-d.e_f:TAG_1.x-y", "docker.io", "a__b/c-d.e_f", "TAG_1.x-y", None),
    ],
)
def test_normalises_like_docker(text: str, registry: str, repository: str, tag: str | None,
                                digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("Nginx", "lowercase"),
        ("ghcr.io/Org/app", "lowercase"),
        ("app:", "invalid tag"),
        ("app:-x", "invalid tag"),
        ("app:" + "t" * 129, "invalid tag"),
        ("app@sha256:abc", "invalid digest"),
        ("app@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("ghcr.io//app", "empty path component"),
        ("ghcr.io/app-/x", "invalid repository path component"),
        ("host:99999/app", "invalid registry port"),
        ("bad_host.io/app", "invalid registry host"),
        ("app name", "whitespace"),
        ("ghcr.io/" + "a" * 300, "longer than 255"),
    ],
)
def test_rejects_with_the_bad_part_named(text: str, names: str) -> None:
    with pytest.raises(InvalidReference) as e:
        parse_reference(text)
    assert names in str(e.value)
    assert e.value.exit_code == 2


def test_oci_layout_references() -> None:
    r = parse_reference("oci:/tmp/lay:v1")
    assert (r.source, r.layout_path, r.tag, r.digest) == ("oci-layout", "/tmp/lay", "v1", None)
    r = parse_reference(f"oci:rel/dir@sha256:{HEX}")
    assert (r.layout_path, r.digest) == ("rel/dir", Digest("sha256", HEX))
    r = parse_reference("oci:examples/app")
    assert (r.layout_path, r.tag) == ("examples/app", None)


_component = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_host = st.sampled_from(["ghcr.io", "localhost:5000", "registry.example.com", "10.0.0.1:443"])


# Regex strategies are slow to draw on a loaded 2-core machine: not a failure of the code.
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(host=_host, path=st.lists(_component, min_size=1, max_size=4), tag=st.none() | _tag,
       hx=st.none() | st.from_regex(r"[a-f0-9]{64}", fullmatch=True))
def test_roundtrip(host: str, path: list[str], tag: str | None, hx: str | None) -> None:
    text = f"{host}/{'/'.join(path)}" + (f":{tag}" if tag else "") + (
        f"@sha256:{hx}" if hx else "")
    ref = parse_reference(text)
    assert ref.registry == host
    assert ref.repository == "/".join(path)
    assert ref.tag == tag
    assert str(ref) == text
    assert parse_reference(str(ref)) == ref


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    else:
        # Whatever parses must print back to something that parses the same.
        assert parse_reference(str(ref)) == ref

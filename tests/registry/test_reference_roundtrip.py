"""A printed reference parses back to the same registry, repository, tag and digest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imggate.errors import InvalidReference
from imggate.models import Digest, ImageRef
from imggate.registry.reference import parse_reference

HEX = "0123456789abcdef"


def same(a: ImageRef, b: ImageRef) -> bool:
    return (a.registry, a.repository, a.tag, a.digest) == (b.registry, b.repository, b.tag,
                                                           b.digest)


def roundtrip(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return  # the property is about references that parse
    if ref.source != "registry":
        return
    again = parse_reference(str(ref))
    assert same(ref, again), (text, str(ref), again)
    if ref.digest is not None:
        # What resolve prints: registry/repository@digest.
        pinned = parse_reference(f"{ref.name}@{ref.digest}")
        assert (pinned.registry, pinned.repository) == (ref.registry, ref.repository)


def test_capitalised_single_label_host_keeps_its_case() -> None:
    ref = parse_reference("VM/hostile/app:v1")
    assert ref.registry == "VM" and ref.repository == "hostile/app"
    digest = Digest.parse("sha256:" + "a" * 64)
    assert parse_reference(f"{ref.name}@{digest}").registry == "VM"
    assert parse_reference("Registry.Example.COM/app").registry == "registry.example.com"


label = st.text(alphabet="abcxyzABCXYZ019-", min_size=1, max_size=6).filter(
    lambda s: s[0] != "-" and s[-1] != "-")
host = st.one_of(
    st.lists(label, min_size=1, max_size=3).map(".".join),
    st.sampled_from(["localhost", "LOCALHOST", "docker.io", "index.docker.io", "[::1]", "VM",
                     "registry-1.docker.io", "Docker.IO"]),
)
port = st.one_of(st.none(), st.integers(1, 65535).map(str))
component = st.text(alphabet="ab0z", min_size=1, max_size=4).flatmap(
    lambda a: st.sampled_from(["", ".", "_", "__", "-", "--"]).flatmap(
        lambda sep: st.text(alphabet="ab0z", min_size=1, max_size=3).map(
            lambda b: a + (sep + b if sep else ""))))
path = st.lists(component, min_size=1, max_size=4).map("/".join)
tag = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True))
digest = st.one_of(st.none(), st.text(alphabet=HEX, min_size=64, max_size=64).map(
    lambda h: f"sha256:{h}"))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.tuples(host, port)), path, tag, digest)
def test_parse_print_parse_is_the_identity(where: tuple[str, str | None] | None, repo: str,
                                          t: str | None, d: str | None) -> None:
    text = repo
    if where is not None:
        h, p = where
        text = f"{h}{':' + p if p else ''}/{repo}"
    if t:
        text += f":{t}"
    if d:
        text += f"@{d}"
    roundtrip(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="aAbZ09.-_:/@[]", min_size=1, max_size=40))
def test_every_text_that_parses_roundtrips(text: str) -> None:
    roundtrip(text)

"""The registry client's request URLs: a path it made from a reference, under a root it
parsed once, is the URL httpx would have parsed from the whole string."""

from __future__ import annotations

import httpx
import pytest

from imggate.registry.client import RegistryClient

ROOTS = ["http://127.0.0.1:5000", "https://registry-1.docker.io", "http://[::1]:5000",
         "https://reg.example.com:8443", "http://localhost"]
PATHS = ["/v2/", "/v2/library/alpine/manifests/3.20",
         "/v2/team/app-1/blobs/sha256:" + "ab" * 32,
         "/v2/a/b/c/manifests/v1.2-rc_3", "/v2/team/app/tags/list"]


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("path", PATHS)
def test_a_plain_path_under_a_parsed_root_is_the_url_httpx_parses(root: str, path: str) -> None:
    made = RegistryClient()._under(root, path)
    assert isinstance(made, httpx.URL)
    parsed = httpx.URL(root + path)
    assert made == parsed
    assert made._uri_reference == parsed._uri_reference
    assert (made.raw_path, made.netloc, made.host, made.port, made.scheme) == (
        parsed.raw_path, parsed.netloc, parsed.host, parsed.port, parsed.scheme)


@pytest.mark.parametrize("path", [
    "/v2/team/app/referrers/sha256:" + "ab" * 32 + "?artifactType=x",  # a query
    "/v2/team/../admin/manifests/v1",  # a dot segment httpx removes
    "/v2/team/./app/manifests/v1",
    "/v2/team/app%2Fx/manifests/v1",  # an escape
    "/v2/team/app/manifests/v 1",  # something httpx escapes (or refuses)
    "/v2/team/app/manifests/v1\r\nX: y",
])
def test_any_other_path_is_left_to_httpx(path: str) -> None:
    assert RegistryClient()._under("http://127.0.0.1:5000", path) == \
        "http://127.0.0.1:5000" + path


def test_a_root_httpx_would_normalise_is_left_to_httpx() -> None:
    client = RegistryClient()
    assert client._under("https://reg.example.com:443", "/v2/") == \
        "https://reg.example.com:443/v2/"
    assert client._under("http://bad host", "/v2/") == "http://bad host/v2/"


def test_a_hosts_scheme_is_decided_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from imggate.registry import client as client_module
    from imggate.registry.options import RegistryOptions

    checked: list[str] = []
    real = client_module.is_loopback

    def counted(host: str) -> bool:
        checked.append(host)
        return real(host)

    monkeypatch.setattr(client_module, "is_loopback", counted)

    async def main() -> list[str]:
        async with RegistryClient(RegistryOptions()) as client:
            return [await client.base_url("registry.example") for _ in range(3)]

    assert asyncio.run(main()) == ["https://registry.example"] * 3
    assert checked == ["registry.example"]  # an HTTPS-only host is not checked again

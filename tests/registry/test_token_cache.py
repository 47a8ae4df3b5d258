"""The bearer-token cache against Distribution's token auth: bounded, and every token it
drops leaves the redactor after the grace period (issue 18, finding 2).

The registry and its token server are real (``harness_token.TokenServer``); anonymous
requests get tokens without access, so every request is refused with a token and the
next one fetches a fresh token: a registry that issues a token per request.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from imggate import redact
from imggate.registry.auth import MAX_CACHED_TOKENS, RegistryAuth
from registry_harness import Registry

pytestmark = pytest.mark.registry


def issued_tokens(registry: Registry, fn,  # type: ignore[no-untyped-def]
                  when: dict[str, float] | None = None) -> list[str]:
    """Run ``fn()`` recording every token the token server issues meanwhile (and, in
    ``when``, the monotonic time each was issued)."""
    server = registry.token_server
    assert server is not None
    issued: list[str] = []
    original = server.issue

    def recording(subject: str, access: list[dict[str, object]]) -> str:
        token = original(subject, access)
        issued.append(token)
        if when is not None:
            when[token] = time.monotonic()
        return token

    server.issue = recording  # type: ignore[method-assign]
    try:
        fn()
    finally:
        server.issue = original  # type: ignore[method-assign]
    return issued


def test_renewed_and_evicted_tokens_leave_the_redactor(token_registry: Registry) -> None:
    redact.SECRETS.clear()
    auth = RegistryAuth(token_registry.host, None, plain_http_ok=True)
    scopes = MAX_CACHED_TOKENS + 40

    async def churn() -> None:
        # Generous: the full suite loads the machine, and only the answers matter here.
        async with httpx.AsyncClient(base_url=token_registry.url, auth=auth,
                                     timeout=60) as client:
            for i in range(scopes):  # more repositories than the cache holds
                r = await client.get(f"/v2/churn/r{i}/manifests/v1")
                assert r.status_code == 401
            for _ in range(30):  # one repository, renewed on every request
                assert (await client.get("/v2/churn/r0/manifests/v1")).status_code == 401

    issued_at: dict[str, float] = {}
    tokens = issued_tokens(token_registry, lambda: asyncio.run(churn()), issued_at)
    assert len(tokens) >= scopes + 30
    assert len(auth._tokens) <= MAX_CACHED_TOKENS
    # Every token is still masked (the grace period, which starts when a token is replaced
    # or evicted, so after it was issued: a churn slowed past the grace period by a loaded
    # machine may have let its earliest tokens go), but only those the cache holds are kept
    # longer: the others end within the grace period from now.
    recent = time.monotonic() - redact.GRACE_SECONDS
    assert all(redact.redact(t) == redact.MASK for t in tokens if issued_at[t] > recent)
    assert sum(issued_at[t] > recent for t in tokens) >= min(len(tokens), 30)
    held = {entry[0] for entry in auth._tokens.values()}
    soon = time.monotonic() + redact.GRACE_SECONDS + 1
    ends = redact.SECRETS._ephemeral
    # (A token already forgotten has ended, as it should.)
    assert all(t not in ends or ends[t][0] <= soon for t in tokens if t not in held)
    assert all(ends[t][0] > soon for t in held)
    assert len(redact.SECRETS) <= len(tokens)
    redact.SECRETS.clear()

"""An audit's rules loaded on another thread while the tags are listed
(``imggate.audit.run._alongside``): whichever ends first, the outcome is the one of
reading the rules before any request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from imggate._ahead import ahead, failure
from imggate.audit.run import _alongside
from imggate.errors import ConfigError, RegistryError


def _loading(release: threading.Event, outcome: Callable[[], dict[str, object]]
             ) -> Future[dict[str, object]]:
    def load() -> dict[str, object]:
        release.wait(10)
        return outcome()

    return ahead(load, "test-rules")


def _broken() -> dict[str, object]:
    raise ConfigError("rules.yaml:4: unknown severity")


def test_both_done_give_the_policies_and_the_listing() -> None:
    release = threading.Event()
    release.set()

    async def listing() -> str:
        await asyncio.sleep(0.01)
        return "listed"

    policies, listed = asyncio.run(_alongside(_loading(release, lambda: {"dev": 1}),
                                              listing()))
    assert (policies, listed) == ({"dev": 1}, "listed")


def test_rules_that_fail_stop_the_listing_under_way() -> None:
    release = threading.Event()
    stopped = []

    async def listing() -> str:
        release.set()  # the rules fail while the listing waits on the registry
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(True)
            raise
        return "listed"

    with pytest.raises(ConfigError, match="unknown severity"):
        asyncio.run(asyncio.wait_for(_alongside(_loading(release, _broken), listing()), 10))
    assert stopped == [True]


def test_a_listing_that_fails_first_yields_to_the_rules_error() -> None:
    release = threading.Event()

    async def listing() -> str:
        asyncio.get_running_loop().call_later(0.05, release.set)
        raise RegistryError("cannot reach registry", registry="r")

    with pytest.raises(ConfigError, match="unknown severity"):
        asyncio.run(_alongside(_loading(release, _broken), listing()))


def test_a_listing_that_fails_with_good_rules_is_the_error() -> None:
    release = threading.Event()

    async def listing() -> str:
        asyncio.get_running_loop().call_later(0.05, release.set)
        raise RegistryError("cannot reach registry", registry="r")

    with pytest.raises(RegistryError, match="cannot reach"):
        asyncio.run(_alongside(_loading(release, lambda: {"dev": 1}), listing()))


def test_failure_waits_and_names_the_exception_or_none() -> None:
    assert failure(ahead(lambda: 1, "test")) is None
    error = failure(ahead(_broken, "test"))
    assert isinstance(error, ConfigError)

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


@pytest.mark.parametrize(("rules", "expected", "words"), [
    (_broken, ConfigError, "unknown severity"),  # the rules' error comes first
    (lambda: {"dev": 1}, RegistryError, "cannot reach"),  # good rules: the listing's
], ids=["broken-rules-win", "good-rules-listing-error"])
def test_a_listing_that_fails_first_waits_for_the_rules(
        rules: Callable[[], dict[str, object]], expected: type[Exception], words: str) -> None:
    release = threading.Event()

    async def listing() -> str:
        asyncio.get_running_loop().call_later(0.05, release.set)
        raise RegistryError("cannot reach registry", registry="r")

    with pytest.raises(expected, match=words):
        asyncio.run(_alongside(_loading(release, rules), listing()))


def test_failure_waits_and_names_the_exception_or_none() -> None:
    assert failure(ahead(lambda: 1, "test")) is None
    error = failure(ahead(_broken, "test"))
    assert isinstance(error, ConfigError)

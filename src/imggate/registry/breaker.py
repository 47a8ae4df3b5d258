"""A circuit breaker per registry host: a host that keeps timing out is not waited on.

After :attr:`BreakerSettings.threshold` requests in a row to one host failed
at the transport (no answer: refused, reset, timed out, a body that came too
slowly), the host is *open* for :attr:`BreakerSettings.cool_down` seconds:
every request to it fails at once with :class:`HostUnavailable` instead of
spending the caller's deadline. After the cool-down one request (the probe)
is let through; its success closes the breaker, its failure opens it again.
Any HTTP answer, whatever its status, is a success: the host is there.

Hosts are named by whoever sends a review (any registry, in a warn-mode
namespace), so only hosts with failures are remembered, at most
:data:`MAX_HOSTS` of them (the oldest forgotten first).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from msgspec import Struct

#: How many failing hosts are remembered at once.
MAX_HOSTS = 4096


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class BreakerSettings(Struct, frozen=True):
    """When a host's breaker opens, and for how long."""

    #: Consecutive transport failures that open the breaker (0: never opens).
    threshold: int = 5
    #: Seconds an open breaker refuses requests before letting a probe through.
    cool_down: float = 15.0


class HostUnavailable(Exception):
    """The host's breaker is open (the message names the host and is safe to show)."""


class _State(Struct):
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Breaker:
    """The breakers of every host one registry client talks to."""

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        """A breaker with ``settings`` (the defaults when ``None``)."""
        self.settings = settings or BreakerSettings()
        self._hosts: OrderedDict[str, _State] = OrderedDict()

    def check(self, host: str) -> bool:
        """Raise :class:`HostUnavailable` when ``host`` is open; ``True`` when this request
        is the probe after a cool-down (its outcome must be reported, or :meth:`abandon`)."""
        state = self._hosts.get(host)
        if state is None or state.opened_at is None:
            return False
        left = state.opened_at + self.settings.cool_down - time.monotonic()
        if left > 0 or state.probing:
            wait = max(left, 0.0)
            raise HostUnavailable(
                f"registry {host} unavailable: {state.failures} requests in a row failed or "
                f"timed out; not contacted again for {wait:.0f} s"
                if not state.probing else
                f"registry {host} unavailable: {state.failures} requests in a row failed or "
                "timed out; one request is checking whether it is back")
        state.probing = True
        return True

    def success(self, host: str) -> None:
        """The host answered: close its breaker."""
        self._hosts.pop(host, None)

    def failure(self, host: str) -> None:
        """A request to ``host`` got no usable answer at the transport."""
        threshold = self.settings.threshold
        if threshold <= 0:
            return
        state = self._hosts.pop(host, None) or _State()
        self._hosts[host] = state  # most recently failing last
        state.failures += 1
        if state.probing or state.failures >= threshold:
            state.opened_at = time.monotonic()
            state.probing = False
        while len(self._hosts) > MAX_HOSTS:
            self._hosts.popitem(last=False)

    def abandon(self, host: str) -> None:
        """The probe ended without an outcome (cancelled): let the next request probe."""
        state = self._hosts.get(host)
        if state is not None:
            state.probing = False

    def is_open(self, host: str) -> bool:
        """Whether ``host`` is refused now (its cool-down has not passed)."""
        state = self._hosts.get(host)
        return (state is not None and state.opened_at is not None
                and time.monotonic() < state.opened_at + self.settings.cool_down)

    def open_hosts(self) -> list[str]:
        """The hosts refused now."""
        return [h for h in self._hosts if self.is_open(h)]

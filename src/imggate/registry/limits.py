"""How many registry requests may be in flight: in all, per host, per review; and whether
they still make progress.

:class:`Slots` hands out a slot for each request before it reaches the
connection pool: one of the review's share (when a review applied one with
:func:`review_share`), one of the host's, one of the client's. A request that
is cancelled or fails gives every slot back (:class:`Held` releases exactly
once, whatever interrupts it), so a host that never answers can hold at most
its own share, and no review can take the whole pool.

:class:`Progress` is the watchdog: it notes when requests start waiting for
slots and connections and when they get one. When a request has waited
longer than a threshold without any request getting through in the meantime,
registry access is wedged (:meth:`Progress.stalled_for`), and the webhook's
health endpoints say so, so that Kubernetes restarts the replica.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time

from msgspec import Struct


class _Share:
    """One review's share of request slots; its semaphore is made on first use (a review
    answered from the cache makes no request)."""

    __slots__ = ("limit", "sem")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sem: asyncio.Semaphore | None = None

    def semaphore(self) -> asyncio.Semaphore:
        if self.sem is None:
            self.sem = asyncio.Semaphore(self.limit)
        return self.sem


#: The per-review share applied in this context (see :func:`review_share`).
_REVIEW: contextvars.ContextVar[_Share | None] = contextvars.ContextVar(
    "imggate_review_share", default=None)


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class RequestLimits(Struct, frozen=True):
    """Registry requests in flight at once."""

    #: In all, over every host.
    total: int = 32
    #: To one host (``host:port``): a host that never answers holds at most this many
    #: (the CLI's default keeps the 16 its concurrency uses; the webhook sets 8).
    per_host: int = 16


class review_share:  # noqa: N801 - used as a function: ``with review_share(8):``
    """At most ``limit`` registry requests in flight for the work started in this context
    (one admission review, with its child tasks).

    A class rather than a generator: it costs a contextvar set and reset, nothing more (no
    semaphore until a request needs one). It may be entered again, not nested: every
    entry applies the same share.
    """

    __slots__ = ("_share", "_token")

    def __init__(self, limit: int) -> None:
        self._share = _Share(limit)
        self._token: contextvars.Token[_Share | None] | None = None

    def __enter__(self) -> None:
        # The same share each time it is entered: a review enters it around each task it
        # starts, and they all draw on the one share.
        self._token = _REVIEW.set(self._share)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _REVIEW.reset(self._token)
            self._token = None


class Held:
    """The slots one request holds; :meth:`release` gives them back once."""

    __slots__ = ("_done", "_on_release", "_sems")

    def __init__(self, sems: list[asyncio.Semaphore], on_release: object = None) -> None:
        self._sems = sems
        self._done = False
        self._on_release = on_release

    def release(self) -> None:
        """Give every slot back (later calls do nothing)."""
        if self._done:
            return
        self._done = True
        for sem in reversed(self._sems):
            sem.release()
        if callable(self._on_release):
            self._on_release()


class _HostSlots:
    __slots__ = ("sem", "users")

    def __init__(self, limit: int) -> None:
        self.sem = asyncio.Semaphore(limit)
        self.users = 0


class Slots:
    """The request slots of one registry client (see the module docstring)."""

    def __init__(self, limits: RequestLimits | None = None) -> None:
        """Slots for ``limits`` (the defaults when ``None``)."""
        self.limits = limits or RequestLimits()
        self._total = asyncio.Semaphore(self.limits.total)
        # Hosts come from reviews: an entry lives only while a request uses or awaits it.
        self._hosts: dict[str, _HostSlots] = {}

    async def acquire(self, host: str) -> Held:
        """Wait for a slot of the review's share, of ``host``'s and of the client's.

        Cancellation while waiting gives back what was already taken.
        """
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = _HostSlots(self.limits.per_host)
        entry.users += 1
        taken: list[asyncio.Semaphore] = []

        def forget() -> None:
            entry.users -= 1
            if entry.users == 0 and self._hosts.get(host) is entry:
                del self._hosts[host]

        try:
            share = _REVIEW.get()
            review = share.semaphore() if share is not None else None
            for sem in (review, entry.sem, self._total):
                if sem is not None:
                    await sem.acquire()
                    taken.append(sem)
        except BaseException:
            Held(taken, forget).release()
            raise
        return Held(taken, forget)

    def in_use(self) -> int:
        """Requests holding or awaiting slots now."""
        return sum(h.users for h in self._hosts.values())

    def hosts(self) -> int:
        """Hosts with a request in flight or waiting."""
        return len(self._hosts)


class Progress:
    """The watchdog's view: requests waiting for a slot or a connection, and the last time
    one got through (see the module docstring)."""

    def __init__(self) -> None:
        """Nothing waiting; progress made now."""
        self._ids = itertools.count()
        self._waiting: dict[int, float] = {}
        #: The earliest start of a request that gave up waiting since the last progress.
        self._stuck_since: float | None = None
        self.last_progress = time.monotonic()

    def begin(self) -> int:
        """A request starts waiting; its token for :meth:`through` / :meth:`gave_up`."""
        token = next(self._ids)
        self._waiting[token] = time.monotonic()
        return token

    def through(self, token: int) -> None:
        """The request reached a connection: registry access moves."""
        self._waiting.pop(token, None)
        self._stuck_since = None
        self.last_progress = time.monotonic()

    def gave_up(self, token: int) -> None:
        """The request ended (cancelled, refused) before reaching a connection."""
        start = self._waiting.pop(token, None)
        if start is not None and (self._stuck_since is None or start < self._stuck_since):
            self._stuck_since = start

    def stalled_for(self) -> float:
        """Seconds requests have been waiting without any getting through (0: none)."""
        oldest = min(self._waiting.values(), default=None)
        if self._stuck_since is not None and (oldest is None or self._stuck_since < oldest):
            oldest = self._stuck_since
        if oldest is None:
            return 0.0
        return max(time.monotonic() - max(oldest, self.last_progress), 0.0)

"""Deadlines: how long a command (or an admission review) may spend on registries.

A :class:`Deadline` is a point in time (on the monotonic clock). The CLI
makes one from ``--deadline`` when a command starts; the admission webhook
makes one per review from the API server's timeout. It reaches the registry
client in one of two ways:

- ``RegistryClient(options, deadline=d)``: every request of that client;
- ``with d.applied():`` around the calls of one task (a shared client serving
  many reviews): every request made in that context, child tasks included.

The client keeps each request inside it: a request's connect, header and
body phases are cut off at the deadline, retries are not started when the
deadline would pass during their back-off, and a ``Retry-After`` longer than
what is left fails at once instead of sleeping past it.

Within the deadline each request is also bounded on its own
(:class:`RequestBudget`): it has ``timeout`` seconds for the response to
start and for a first stretch of body, after which the body must keep
arriving at ``min_rate`` bytes per second on average. A registry that
drip-feeds a byte every 20 seconds is cut off after ``timeout`` seconds, not
kept alive forever by the per-read timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from types import TracebackType

from msgspec import Struct

#: The deadline of the current context (see :meth:`Deadline.applied`).
_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "imggate_deadline", default=None)


class DeadlineExceeded(Exception):
    """The deadline passed, or a request's body came too slowly (message is safe to show)."""


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Deadline(Struct, frozen=True):
    """A point on the monotonic clock after which no registry work is started or continued."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now (``inf`` for none)."""
        if math.isnan(seconds) or seconds <= 0:
            raise ValueError(f"a deadline must be a positive number of seconds, not {seconds}")
        return cls(time.monotonic() + seconds, seconds)

    @classmethod
    def never(cls) -> Deadline:
        """No deadline (library callers that bound time themselves)."""
        return cls(math.inf, math.inf)

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(self.at - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.at

    def cap(self, seconds: float) -> float:
        """``seconds``, or what is left of the deadline when that is less."""
        return min(seconds, self.remaining())

    def describe(self) -> str:
        """``the 120 s deadline``: how messages name it."""
        return "the deadline" if math.isinf(self.seconds) else f"the {self.seconds:g} s deadline"

    def applied(self) -> _Applied:
        """Make this the deadline of every registry request in this context
        (``with deadline.applied():``)."""
        return _Applied(self)


class _Applied:
    """:meth:`Deadline.applied`: a class, not a generator (the client enters one around
    every request: a generator-based context manager cost 1% of a resolve)."""

    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline
        self._token: contextvars.Token[Deadline | None] | None = None

    def __enter__(self) -> Deadline:
        self._token = _CURRENT.set(self._deadline)
        return self._deadline

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None


class cutoff:  # noqa: N801 - used as a function: ``with cutoff(seconds):``
    """``asyncio.timeout(seconds)`` as a plain ``with``: past ``seconds``, the current task
    is cancelled and the block ends in ``TimeoutError``; a cancellation from elsewhere
    stays a cancellation.

    The same timer and the same cancel-and-uncancel accounting as asyncio's
    (Python 3.11's ``asyncio.Timeout``), without what a request never uses: an
    ``async with`` (two coroutines to enter and leave), a deadline that can be moved,
    and its state machine. The registry client enters one around every request:
    asyncio's was ~29K instructions a request, 1.5% of a resolve of 200 images; this one
    is ~12K (cachegrind). ``tests/registry/test_deadline.py`` holds the two in step.
    """

    __slots__ = ("_cancelling", "_expired", "_handle", "_seconds", "_task")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._expired = False
        self._cancelling = 0
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("cutoff() is used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = asyncio.get_running_loop()
        self._handle = (loop.call_later(self._seconds, self._expire) if self._seconds > 0
                        else loop.call_soon(self._expire))

    def _expire(self) -> None:
        assert self._task is not None
        self._task.cancel()
        self._expired = True
        self._handle = None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired:
            assert self._task is not None
            # Ours only when no other cancellation arrived meanwhile (as asyncio's).
            if self._task.uncancel() <= self._cancelling and et is asyncio.CancelledError:
                raise TimeoutError from e


def current(default: Deadline | None = None) -> Deadline:
    """The deadline applied in this context, else ``default``, else none."""
    found = _CURRENT.get()
    if found is not None:
        return found
    return default if default is not None else Deadline.never()


class RequestBudget(Struct):
    """The time one request may take: ``timeout`` plus ``received / min_rate``, within a deadline.

    Mutable by design: it belongs to one request and counts its bytes.
    """

    deadline: Deadline
    timeout: float
    min_rate: float
    started: float = 0.0
    received: int = 0
    #: Set by the transport when the request reached a connection (it was sent, or a
    #: connection to the host was being made for it): a failure after that is the host's.
    connected: bool = False

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def left(self) -> float:
        """Seconds this request may still wait for its next bytes."""
        own = self.started + self.timeout + self.received / self.min_rate - time.monotonic()
        return max(min(own, self.deadline.remaining()), 0.0)

    def why(self) -> str:
        """Why the budget ran out: the deadline, or a body that came too slowly."""
        if self.deadline.expired:
            return f"{self.deadline.describe()} passed"
        return (f"the response came too slowly ({self.received} bytes in "
                f"{time.monotonic() - self.started:.0f} s; at least {self.min_rate:.0f} bytes/s "
                f"after the first {self.timeout:g} s)")

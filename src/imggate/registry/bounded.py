"""Every response body the registry client reads is bounded in size and in time.

:func:`bound` wraps each response's body stream, as the registry client's
sender (:mod:`imggate.registry.sending`) receives it (the registry's answers,
its ``401`` bodies, token servers' answers, answers through a proxy), in
:class:`BoundedStream`, which

- stops at the request's byte cap *while streaming* (a chunked body with no
  ``Content-Length`` is never read whole first): the cap the caller set in
  the request's ``imggate.max_body`` extension, :data:`DEFAULT_MAX_BODY`
  when none was set, and at most :data:`MAX_ERROR_BODY` for an answer that
  is not a success;
- waits for each chunk only as long as the request's
  :class:`~imggate.registry.deadline.RequestBudget` allows (the
  ``imggate.budget`` extension, else a fresh budget under the current
  deadline).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from imggate.registry.deadline import DeadlineExceeded, RequestBudget, current, cutoff

#: A response whose request named no cap (a token server's answer) is at most this big.
DEFAULT_MAX_BODY = 1024 * 1024
#: An error answer is read for its message only.
MAX_ERROR_BODY = 64 * 1024
MAX_BODY = "imggate.max_body"
BUDGET = "imggate.budget"


class BodyTooLarge(Exception):
    """A response body passed its cap (the message is safe to show)."""


class BoundedStream(httpx.AsyncByteStream):
    """A response body stream with a byte cap and a time budget."""

    def __init__(self, inner: httpx.AsyncByteStream, budget: RequestBudget, cap: int) -> None:
        self._inner = inner
        self._budget = budget
        self._cap = cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield chunks until the body ends, the cap is passed or the budget runs out."""
        chunks = self._inner.__aiter__()
        # A stream that says the next chunk is there (imggate's HTTP/1.1 bodies: a
        # manifest usually arrives with its head) is read without a timeout: there is no
        # wait to bound, and two asyncio.timeouts a body were 5% of the instructions of a
        # 200-image resolve (cachegrind).
        ready = getattr(self._inner, "ready", None)
        while True:
            left = self._budget.left()
            if left <= 0:
                raise DeadlineExceeded(self._budget.why())
            try:
                if callable(ready) and ready():
                    chunk = await chunks.__anext__()
                else:
                    with cutoff(left):
                        chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise DeadlineExceeded(self._budget.why()) from None
            self._budget.received += len(chunk)
            if self._budget.received > self._cap:
                raise BodyTooLarge(f"response body exceeds the {self._cap} byte limit")
            yield chunk

    def take_complete(self) -> bytes | None:
        """The whole body when it has all arrived and the budget is not spent, checked
        against the cap; else ``None`` (and the caller iterates, as before).

        A small body (a manifest, a config) usually arrives with its head: taken at
        once, it skips two layers of async iteration (3.8% of the instructions of a
        200-image resolve).
        """
        take = getattr(self._inner, "take_complete", None)
        if not callable(take) or self._budget.left() <= 0:
            return None
        data = take()
        if data is None:
            return None
        self._budget.received += len(data)
        if self._budget.received > self._cap:
            raise BodyTooLarge(f"response body exceeds the {self._cap} byte limit")
        return bytes(data)

    async def aclose(self) -> None:
        """Close the underlying stream (and so the connection, when unfinished)."""
        await self._inner.aclose()


def bound(response: httpx.Response, timeout: float, min_rate: float) -> None:
    """Bound ``response``'s body (see the module docstring); ``timeout`` and ``min_rate``
    make the budget of a request that brought none."""
    ext = response.request.extensions
    budget = ext.get(BUDGET)
    if not isinstance(budget, RequestBudget):
        budget = RequestBudget(current(), timeout, min_rate)
    cap = ext.get(MAX_BODY)
    limit = cap if isinstance(cap, int) else DEFAULT_MAX_BODY
    if not response.is_success:
        limit = min(limit, MAX_ERROR_BODY)
    assert isinstance(response.stream, httpx.AsyncByteStream)
    response.stream = BoundedStream(response.stream, budget, limit)

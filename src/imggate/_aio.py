"""Running a coroutine from synchronous code, reading what ``asyncio.gather`` gathered,
and settling a task nobody will wait for.

``asyncio.run`` installs a SIGINT handler that holds the main task; on
Python 3.11, restoring the previous handler builds a ``repr`` of that
handler, and so of the task and its whole result (measured: 0.4 s for
10,000 findings). A plain event loop has no such handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop (uvloop's, when it is installed)
    and close it, once every task left behind has ended (see :func:`_end_tasks`)."""
    loop = _new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            _end_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _end_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Stop the tasks ``coro`` left running and let each unwind on this loop, as
    ``asyncio.run`` does: a lookup :func:`settle` stopped just before the end (the
    image's config failed) has not yet run its cancellation. Left to the loop's closing,
    its coroutine was destroyed mid-request by the garbage collector, outside its own
    context: its request deadline could not be reset (an error Python prints and
    ignores) and its connection was released by no one."""
    left = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not left:
        return
    for task in left:
        # One stop each: asked again while it unwinds, a task would be cut off in its
        # own cleanup (the await that releases its connection).
        if not task.cancelling():
            task.cancel()
    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))


def _new_loop() -> asyncio.AbstractEventLoop:
    # uvloop (installed with uvicorn[standard], for serve) does the registry client's socket
    # I/O and the loop's own work in C: 3% fewer instructions in a resolve of 200 images
    # and in an audit of 1,000 tags (cachegrind), for ~8 M instructions (~3 ms) of import.
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def settled(answer: T | BaseException) -> T:
    """What a task gathered with ``return_exceptions=True`` answered, or its exception
    raised. Read in the gathered order, the first failure in that order is the one raised
    (each task ran to its end: none is left running behind the error)."""
    if isinstance(answer, BaseException):
        raise answer
    return answer


def settle(task: asyncio.Future[T]) -> None:
    """Stop ``task`` if it still runs; an outcome nobody will ask for is taken (asyncio
    would log a failure nobody retrieved), now or when it ends: a task asked to stop may
    still end in an error of its own (a request cut off by its deadline meanwhile)."""
    if not task.done():
        task.cancel()
        task.add_done_callback(_taken)
    else:
        _taken(task)


def _taken(task: asyncio.Future[T]) -> None:
    if not task.cancelled():
        task.exception()
